"""Checkpoint folders: atomic saves, rotation, resolution of --resume_from_checkpoint, verification."""

from pathlib import Path

import pytest

from ttdnet.stages.checkpoints import (
    MANIFEST_NAME,
    CheckpointError,
    list_checkpoints,
    resolve_checkpoint,
    save_checkpoint,
    verify_checkpoint,
)


class FakeAccelerator:
    """One process that writes state files like accelerate does; can crash half-way through a save."""

    is_main_process = True
    num_processes = 1

    def __init__(self, crash=False):
        self.crash = crash

    def wait_for_everyone(self):
        pass

    def save_state(self, directory):
        Path(directory).mkdir(parents=True)
        (Path(directory) / "model.safetensors").write_bytes(b"weights")
        (Path(directory) / "optimizer.bin").write_bytes(b"optimizer state")
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
    assert resolve_checkpoint(tmp_path, str(tmp_path / "checkpoint-9"))[0] == 9


def test_a_name_or_path_that_matches_nothing_is_an_error(tmp_path):
    (tmp_path / "checkpoint-4").mkdir()
    with pytest.raises(CheckpointError, match="checkpoints in .*: checkpoint-4"):
        resolve_checkpoint(tmp_path, "checkpoint-8")
    with pytest.raises(CheckpointError, match="not found"):
        resolve_checkpoint(tmp_path, "chekpoint-4")


def test_a_complete_checkpoint_verifies_and_records_its_files(tmp_path):
    path = save_checkpoint(FakeAccelerator(), tmp_path, 10, total_limit=None)
    manifest = verify_checkpoint(path, num_processes=1)
    assert manifest["step"] == 10
    assert manifest["files"] == {"model.safetensors": len(b"weights"), "optimizer.bin": len(b"optimizer state")}


def test_a_missing_or_truncated_file_names_itself_and_the_previous_checkpoint(tmp_path):
    for step in (10, 20, 100):
        save_checkpoint(FakeAccelerator(), tmp_path, step, total_limit=None)
    (tmp_path / "checkpoint-100" / "optimizer.bin").unlink()
    with pytest.raises(CheckpointError, match=r"missing optimizer.bin; .*--resume_from_checkpoint checkpoint-20"):
        verify_checkpoint(tmp_path / "checkpoint-100", 1)
    (tmp_path / "checkpoint-20" / "model.safetensors").write_bytes(b"w")
    with pytest.raises(CheckpointError, match="truncated or changed: model.safetensors; .*checkpoint-10"):
        verify_checkpoint(tmp_path / "checkpoint-20", 1)
    (tmp_path / "checkpoint-10" / MANIFEST_NAME).unlink()
    with pytest.raises(CheckpointError, match="ttdnet_checkpoint.json is missing .*no earlier checkpoint"):
        verify_checkpoint(tmp_path / "checkpoint-10", 1)


def test_another_number_of_processes_is_refused(tmp_path):
    path = save_checkpoint(FakeAccelerator(), tmp_path, 10, total_limit=None)
    with pytest.raises(CheckpointError, match="written by 1 process.*this run has 2"):
        verify_checkpoint(path, num_processes=2)
