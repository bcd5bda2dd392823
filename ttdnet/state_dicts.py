"""Weight files read into tensors without running untrusted code.

A ``.safetensors`` file is read with safetensors; any other file with ``torch.load(weights_only=True)``, which
refuses pickled objects other than tensors and plain containers (never a full pickle load).
"""

import os

import torch

from ttdnet.errors import TtdnetError


def read_tensor_file(path: str | os.PathLike, what: str = "weights") -> object:
    """What a weight file holds, as stored (a state dict, or a dict that contains one).

    Parameters
    ----------
    path : path-like
        A ``.safetensors`` file or a torch file (``.pth``, ``.pt``, ``.bin``, ``.pth.tar``).
    what : str
        Named in the error message (``"the torchvision AlexNet weights"``).

    Returns
    -------
    object
        For safetensors, a ``dict[str, torch.Tensor]``; for a torch file, whatever it holds (tensors on the CPU).

    Raises
    ------
    TtdnetError
        The file is missing, corrupt or holds more than tensors and plain containers.
    """
    try:
        if str(path).endswith(".safetensors"):
            from safetensors.torch import load_file

            return load_file(path)
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # safetensors and torch raise their own error types, UnpicklingError or OSError
        reason = (str(error).splitlines() or [type(error).__name__])[0]
        raise TtdnetError(
            f"cannot read {what} from {path} as a tensor file ({reason}); fetch the file again"
        ) from error


def load_state_dict_file(path: str | os.PathLike, what: str = "weights") -> dict[str, torch.Tensor]:
    """The state dict of a weight file: :func:`read_tensor_file`, unwrapping a ``{"state_dict": {...}}`` container.

    Parameters
    ----------
    path : path-like
        A ``.safetensors`` or torch file.
    what : str
        Named in the error message.

    Returns
    -------
    dict
        Parameter and buffer name to tensor, ready for ``module.load_state_dict``.
    """
    state = read_tensor_file(path, what)
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    return state
