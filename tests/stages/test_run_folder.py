"""A run folder holds one run: new runs need an empty folder, resumes keep the options that shaped the run."""

import dataclasses
import json
import os

import pytest

from ttdnet.config import save_config
from ttdnet.stages.run_folder import MAY_CHANGE_ON_RESUME, RunFolderError, open_run_folder


@dataclasses.dataclass
class ToyRun:
    output_dir: str
    dataset_root: str = "data"
    learning_rate: float = 1e-3
    checkpointing_steps: int = 10
    mixed_precision: str | None = None
    resume_from_checkpoint: str | None = None
    overwrite: bool = False


class OneProcess:
    is_main_process = True
    num_processes = 1

    def __init__(self, mixed_precision="no"):
        self.mixed_precision = mixed_precision

    def wait_for_everyone(self):
        pass


def start(config, accelerator=None):
    folder = open_run_folder(config, "toy", MAY_CHANGE_ON_RESUME)
    folder.commit(accelerator or OneProcess(), config)
    return folder


def history(path):
    return [json.loads(line) for line in (path / "run_history.jsonl").read_text().splitlines()]


def test_a_new_run_writes_its_config_and_history(tmp_path):
    run = tmp_path / "run"
    start(ToyRun(str(run)), OneProcess("bf16"))
    assert "`ttdnet toy`" in (run / "config.yaml").read_text().splitlines()[0]
    assert "mixed_precision: bf16" in (run / "config.yaml").read_text()  # the precision really used
    assert history(run)[0]["changed_options"] == {} and history(run)[0]["resume_from_checkpoint"] is None


def test_a_non_empty_folder_needs_resume_or_overwrite(tmp_path):
    run = tmp_path / "run"
    start(ToyRun(str(run)))
    (run / "checkpoint-10").mkdir()
    with pytest.raises(RunFolderError, match="not empty .*--resume_from_checkpoint latest.*--overwrite"):
        open_run_folder(ToyRun(str(run)), "toy")
    start(ToyRun(str(run), learning_rate=0.5, overwrite=True))
    assert sorted(p.name for p in run.iterdir()) == ["config.yaml", "run_history.jsonl"]
    assert len(history(run)) == 1  # the old run's history went with it


def test_overwrite_never_deletes_a_folder_that_is_not_a_run(tmp_path):
    precious = tmp_path / "thesis"
    precious.mkdir()
    (precious / "chapter1.tex").write_text("...")
    with pytest.raises(RunFolderError, match="not a ttdnet run folder"):
        open_run_folder(ToyRun(str(precious), overwrite=True), "toy")
    with pytest.raises(RunFolderError, match="not a ttdnet run folder"):
        open_run_folder(ToyRun(str(precious), resume_from_checkpoint="latest"), "toy")
    assert (precious / "chapter1.tex").read_text() == "..."


def test_a_resume_with_options_that_change_training_is_refused(tmp_path):
    run = tmp_path / "run"
    start(ToyRun(str(run)))
    changed = ToyRun(str(run), learning_rate=0.1, dataset_root="other", resume_from_checkpoint="latest")
    with pytest.raises(RunFolderError) as error:
        open_run_folder(changed, "toy")
    assert "dataset_root: 'data' -> 'other'; learning_rate: 0.001 -> 0.1" in str(error.value)
    with pytest.raises(RunFolderError, match="mixed_precision: 'no' -> 'bf16'"):
        open_run_folder(ToyRun(str(run), mixed_precision="bf16", resume_from_checkpoint="latest"), "toy")


def test_a_resume_may_change_logging_and_checkpoint_options_and_records_them(tmp_path):
    run = tmp_path / "run"
    start(ToyRun(str(run)), OneProcess("bf16"))
    resumed = ToyRun(str(run), checkpointing_steps=50, resume_from_checkpoint="latest")
    start(resumed, OneProcess("bf16"))
    assert resumed.mixed_precision == "bf16"  # not given on the command line: the saved run's precision
    assert history(run)[1]["changed_options"] == {
        "checkpointing_steps": [10, 50],
        "resume_from_checkpoint": [None, "latest"],
    }


def test_the_same_folder_by_relative_and_absolute_path_is_no_change(tmp_path, monkeypatch):
    (tmp_path / "data").mkdir()
    monkeypatch.chdir(tmp_path)
    run = tmp_path / "run"
    start(ToyRun(str(run), dataset_root="data"))
    open_run_folder(ToyRun(str(run), dataset_root=os.path.abspath("data"), resume_from_checkpoint="latest"), "toy")


def test_a_folder_of_another_command_is_refused(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    save_config(ToyRun(str(run)), run / "config.yaml", command="pretrain")
    with pytest.raises(RunFolderError, match="was not written by `ttdnet toy`"):
        open_run_folder(ToyRun(str(run), resume_from_checkpoint="latest"), "toy")


def test_resume_into_an_empty_folder_starts_fresh_and_overwrite_with_resume_is_refused(tmp_path):
    folder = open_run_folder(ToyRun(str(tmp_path / "new"), resume_from_checkpoint="latest"), "toy")
    assert folder.changes == {} and not folder.clear
    with pytest.raises(RunFolderError, match="give only one"):
        open_run_folder(ToyRun(str(tmp_path), overwrite=True, resume_from_checkpoint="latest"), "toy")
