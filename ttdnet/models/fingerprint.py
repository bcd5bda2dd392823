"""A digest of a module's weights: equal iff every parameter and buffer (name, shape, bytes) is identical."""

from collections.abc import Iterator

import torch

from ttdnet.hashing import sha256_chunks


def _state_chunks(module: torch.nn.Module) -> Iterator[bytes]:
    """Name, shape and raw bytes of every entry of ``module.state_dict()``, in name order."""
    for key, value in sorted(module.state_dict().items()):
        yield key.encode()
        yield str(tuple(value.shape)).encode()
        yield value.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()


def state_fingerprint(module: torch.nn.Module) -> str:
    """SHA-256 (hex) over every parameter and buffer of ``module``, in name order."""
    return sha256_chunks(_state_chunks(module))
