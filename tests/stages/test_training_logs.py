import os

import pytest

from ttdnet.errors import TtdnetError
from ttdnet.stages.training_logs import (
    MetricsCSV,
    init_trackers,
    tracker_config,
    tracker_setup,
    wandb_default_mode,
)


def test_metrics_csv_is_trimmed_to_the_resume_step(tmp_path):
    metrics = MetricsCSV(tmp_path / "m.csv", ["split", "loss"])
    for step in (1, 2, 3, 4):
        metrics.log(step, {"split": "train", "loss": step / 10})
    resumed = MetricsCSV(tmp_path / "m.csv", ["split", "loss"], resume_step=2)
    resumed.log(3, {"split": "train", "loss": 0.33})
    assert (tmp_path / "m.csv").read_text().splitlines() == [
        "step,split,loss",
        "1,train,0.1",
        "2,train,0.2",
        "3,train,0.33",
    ]
    with pytest.raises(KeyError):
        resumed.log(4, {"accuracy": 1.0})


def test_trackers(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))  # no netrc and no W&B settings of the user running the tests
    for name in ("WANDB_API_KEY", "WANDB_MODE", "WANDB_IDENTITY_TOKEN_FILE", "WANDB_CONFIG_DIR", "NETRC"):
        monkeypatch.delenv(name, raising=False)
    assert tracker_setup("none") is None
    assert tracker_setup("tensorboard,wandb") == ["tensorboard", "wandb"]
    assert os.environ["WANDB_MODE"] == "offline"
    with pytest.raises(TtdnetError, match="unknown tracker"):
        tracker_setup("mlflo")
    assert tracker_config({"a": [1, 2], "b": None, "c": 1.5}) == {"a": "[1, 2]", "b": "None", "c": 1.5}


def test_init_trackers_keeps_logs_in_the_run_folder(tmp_path):
    class RecordingAccelerator:
        logging_dir = tmp_path / "run" / "logs"

        def init_trackers(self, project_name, config, init_kwargs):
            self.call = (project_name, config, init_kwargs)

    accelerator = RecordingAccelerator()
    init_trackers(accelerator, "ttdnet-x", {"subjects": [1, 2], "lr": 0.1})
    assert accelerator.call == (
        "ttdnet-x",
        {"subjects": "[1, 2]", "lr": 0.1},
        {"wandb": {"dir": str(tmp_path / "run" / "logs")}},
    )
    assert (tmp_path / "run" / "logs").is_dir()


def write_netrc(path, machine):
    path.write_text(f"machine {machine}\n  login user\n  password 0123456789abcdef\n", encoding="utf-8")
    path.chmod(0o600)


def test_wandb_is_offline_only_without_a_user_setup(tmp_path):
    assert wandb_default_mode({}, tmp_path) == "offline"
    assert wandb_default_mode({"WANDB_API_KEY": "k" * 40}, tmp_path) is None
    for mode in ("online", "offline", "disabled"):
        assert wandb_default_mode({"WANDB_MODE": mode}, tmp_path) is None


def test_wandb_login_credentials_in_netrc_are_respected(tmp_path):
    write_netrc(tmp_path / ".netrc", "api.wandb.ai")
    assert wandb_default_mode({}, tmp_path) is None
    assert wandb_default_mode({"WANDB_BASE_URL": "https://wandb.example.org"}, tmp_path) == "offline"
    write_netrc(tmp_path / ".netrc", "example.org")
    assert wandb_default_mode({}, tmp_path) == "offline"
    assert wandb_default_mode({"WANDB_BASE_URL": "https://example.org"}, tmp_path) is None
    elsewhere = tmp_path / "elsewhere" / "netrc"
    elsewhere.parent.mkdir()
    write_netrc(elsewhere, "api.wandb.ai")
    assert wandb_default_mode({"NETRC": str(elsewhere)}, tmp_path) is None
    assert wandb_default_mode({"NETRC": str(tmp_path / "missing")}, tmp_path) == "offline"
    (tmp_path / ".netrc").write_text("machine 'unterminated\n", encoding="utf-8")
    assert wandb_default_mode({}, tmp_path) == "offline"


def test_wandb_settings_file_is_respected(tmp_path):
    settings = tmp_path / ".config" / "wandb" / "settings"
    settings.parent.mkdir(parents=True)
    settings.write_text("[default]\nmode = online\n", encoding="utf-8")
    assert wandb_default_mode({}, tmp_path) is None
    settings.write_text("[default]\nbase_url = https://example.org\n", encoding="utf-8")
    assert wandb_default_mode({}, tmp_path) == "offline"
    write_netrc(tmp_path / ".netrc", "example.org")
    assert wandb_default_mode({}, tmp_path) is None
    config_dir = tmp_path / "wandb-config"
    config_dir.mkdir()
    (config_dir / "settings").write_text("[default]\napi_key = abc\n", encoding="utf-8")
    (tmp_path / ".netrc").unlink()
    assert wandb_default_mode({"WANDB_CONFIG_DIR": str(config_dir)}, tmp_path) is None
    (config_dir / "settings").write_text("not an ini file\n", encoding="utf-8")
    assert wandb_default_mode({"WANDB_CONFIG_DIR": str(config_dir)}, tmp_path) == "offline"


def test_tracker_setup_leaves_a_logged_in_user_online(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    for name in ("WANDB_API_KEY", "WANDB_MODE", "WANDB_IDENTITY_TOKEN_FILE", "WANDB_CONFIG_DIR", "NETRC"):
        monkeypatch.delenv(name, raising=False)
    write_netrc(tmp_path / ".netrc", "api.wandb.ai")
    assert tracker_setup("wandb") == ["wandb"]
    assert "WANDB_MODE" not in os.environ
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert tracker_setup("all") == "all"
    assert os.environ["WANDB_MODE"] == "disabled"
