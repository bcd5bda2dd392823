"""The ``--device`` option: a torch device name checked against the machine before any work starts.

Every command with a ``device`` option takes ``cpu``, ``cuda``, ``cuda:N`` or ``mps``, or nothing for the
default (the first CUDA device when there is one, else the CPU). :class:`ttdnet.config.ConfigParser` checks
the value when the options are parsed, so a device the machine lacks is one clear error before any output
is written, not a CUDA traceback minutes into a run.
"""

import torch

from ttdnet.errors import ConfigError


def default_device() -> torch.device:
    """The first CUDA device when there is one, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def resolve_device(name: str | None) -> torch.device:
    """The torch device a ``--device`` value names, checked to exist on this machine.

    Parameters
    ----------
    name : str or None
        ``cpu``, ``cuda``, ``cuda:N`` or ``mps``; None or ``""`` for :func:`default_device`.

    Returns
    -------
    torch.device

    Raises
    ------
    ConfigError
        The name is not a device, or this machine does not have it. The message lists what it has.
    """
    if name is None or name == "":
        return default_device()
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError) as error:
        raise ConfigError(f"--device {name!r} is not a device name; use cpu, cuda or cuda:N ({error})") from None
    if device.type == "cpu":
        return device
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if (device.index or 0) < count:
            return device
        have = ", ".join(["cpu", *(f"cuda:{index}" for index in range(count))])
        raise ConfigError(f"--device {name}: this machine has {count} CUDA device(s); choose one of {have}")
    if device.type == "mps":
        if torch.backends.mps.is_available():
            return device
        raise ConfigError(f"--device {name}: MPS is not available on this machine; use cpu")
    raise ConfigError(f"--device {name}: ttdnet runs on cpu, cuda, cuda:N or mps")
