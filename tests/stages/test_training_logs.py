import os

import pytest

from ttdnet.errors import TtdnetError
from ttdnet.stages.training_logs import MetricsCSV, init_trackers, tracker_config, tracker_setup


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


def test_trackers(monkeypatch):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
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
