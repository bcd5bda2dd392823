"""A digest of a module's weights: equal iff every parameter and buffer (name, shape, bytes) is identical."""

import hashlib

import torch


def state_fingerprint(module: torch.nn.Module) -> str:
    """SHA-256 over every parameter and buffer of ``module``, in name order."""
    digest = hashlib.sha256()
    for key, value in sorted(module.state_dict().items()):
        digest.update(key.encode())
        digest.update(str(tuple(value.shape)).encode())
        digest.update(value.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()
