"""Weight files are read as tensors only: safetensors or ``torch.load(weights_only=True)``, errors as TtdnetError."""

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from ttdnet.errors import TtdnetError
from ttdnet.state_dicts import load_state_dict_file, read_tensor_file


def test_safetensors_and_torch_files_give_the_same_state(tmp_path):
    state = {"weight": torch.arange(6.0).view(2, 3), "bias": torch.zeros(2)}
    save_file(state, tmp_path / "model.safetensors")
    torch.save(state, tmp_path / "model.pth")
    torch.save({"state_dict": state, "epoch": 3}, tmp_path / "checkpoint.pth.tar")
    for name in ("model.safetensors", "model.pth", "checkpoint.pth.tar"):
        loaded = load_state_dict_file(tmp_path / name)
        assert loaded.keys() == state.keys() and all(torch.equal(loaded[k], state[k]) for k in state)
    assert read_tensor_file(tmp_path / "checkpoint.pth.tar")["epoch"] == 3  # as stored, not unwrapped


def test_pickled_objects_missing_and_corrupt_files_are_refused(tmp_path):
    torch.save({"weight": torch.zeros(1), "path": Path("x")}, tmp_path / "pickle.pth")
    (tmp_path / "corrupt.safetensors").write_bytes(b"not a safetensors file")
    for name in ("pickle.pth", "corrupt.safetensors", "missing.pth"):
        with pytest.raises(TtdnetError, match=f"cannot read the test weights from .*{name} as a tensor file"):
            load_state_dict_file(tmp_path / name, "the test weights")
