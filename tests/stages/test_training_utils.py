import pytest

from ttdnet.errors import TtdnetError
from ttdnet.stages.training_utils import (
    MetricsCSV,
    list_checkpoints,
    resolve_checkpoint,
    save_checkpoint,
    step_seed,
    tracker_config,
    tracker_setup,
)


class FakeAccelerator:
    """Writes a state file like accelerate does; can crash half-way through a save."""

    def __init__(self, crash=False):
        self.crash = crash

    def save_state(self, directory):
        from pathlib import Path

        Path(directory).mkdir(parents=True)
        (Path(directory) / "model.safetensors").write_bytes(b"partial")
        if self.crash:
            raise KeyboardInterrupt


def test_interrupted_save_never_looks_like_a_checkpoint(tmp_path):
    save_checkpoint(FakeAccelerator(), tmp_path, 10, total_limit=None)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(FakeAccelerator(crash=True), tmp_path, 20, total_limit=None)
    assert [step for step, _ in list_checkpoints(tmp_path)] == [10]
    assert resolve_checkpoint(tmp_path, "latest")[0] == 10


def test_rotation_keeps_the_newest(tmp_path):
    for step in (5, 10, 15, 20):
        save_checkpoint(FakeAccelerator(), tmp_path, step, total_limit=2)
    assert [path.name for _, path in list_checkpoints(tmp_path)] == ["checkpoint-15", "checkpoint-20"]


def test_latest_ignores_stray_files_and_sorts_numerically(tmp_path):
    for name in ("checkpoint-9", "checkpoint-100", "checkpoint-20"):
        (tmp_path / name).mkdir()
    (tmp_path / "checkpoint-500.safetensors").write_text("not a folder")
    (tmp_path / "checkpoint-latest").mkdir()
    assert resolve_checkpoint(tmp_path, "latest")[0] == 100
    assert resolve_checkpoint(tmp_path / "missing", "latest") is None
    assert resolve_checkpoint(tmp_path, "checkpoint-20")[1] == tmp_path / "checkpoint-20"


def test_missing_named_checkpoint_lists_what_exists(tmp_path):
    (tmp_path / "checkpoint-4").mkdir()
    with pytest.raises(TtdnetError, match="available in .*: checkpoint-4"):
        resolve_checkpoint(tmp_path, "checkpoint-8")


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


def test_step_seed_depends_on_every_part():
    seeds = {
        step_seed(0, 1, 0, 0),
        step_seed(1, 1, 0, 0),
        step_seed(0, 2, 0, 0),
        step_seed(0, 1, 1, 0),
        step_seed(0, 1, 0, 1),
    }
    assert len(seeds) == 5 and step_seed(0, 1, 0, 0) == step_seed(0, 1, 0, 0)


def test_trackers(monkeypatch):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    assert tracker_setup("none") is None
    assert tracker_setup("tensorboard,wandb") == ["tensorboard", "wandb"]
    import os

    assert os.environ["WANDB_MODE"] == "offline"
    with pytest.raises(TtdnetError, match="unknown tracker"):
        tracker_setup("mlflo")
    assert tracker_config({"a": [1, 2], "b": None, "c": 1.5}) == {"a": "[1, 2]", "b": "None", "c": 1.5}


def test_best_on_validation_min_and_max():
    import torch

    from ttdnet.stages.training_utils import BestOnValidation

    model = torch.nn.Linear(2, 1)
    lowest = BestOnValidation("min")
    assert lowest.update(0.5, 1, model) and not lowest.update(0.5, 2, model) and lowest.update(0.4, 3, model)
    assert (lowest.value, lowest.at) == (0.4, 3)
    with torch.no_grad():
        model.weight.fill_(7.0)
    assert not lowest.update(0.9, 4, model) and not torch.equal(lowest.weights["weight"], model.weight)
    highest = BestOnValidation("max")
    assert highest.update(0.1, 1, model) and not highest.update(0.05, 2, model)
    restored = BestOnValidation("max")
    restored.load_state_dict(highest.state_dict())
    assert (restored.value, restored.at) == (0.1, 1) and torch.equal(restored.weights["weight"], model.weight)
    highest.reset()
    assert highest.value == float("-inf") and highest.weights == {}


def test_init_trackers_keeps_logs_in_the_run_folder(tmp_path):
    from ttdnet.stages.training_utils import init_trackers

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
