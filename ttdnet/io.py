"""Atomic file writes: a reader never sees a half-written output or checkpoint.

Every writer goes to a temporary file in the destination's folder and is moved into place with
:func:`os.replace`, which is atomic on POSIX and Windows when source and destination share a file system.
"""

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np
import yaml


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


FILE_MODE = 0o666 & ~_umask()
"""Mode of files written here: what ``open()`` would give (``mkstemp`` alone creates them 0600)."""


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO]:
    """Open a temporary file next to ``path`` and move it onto ``path`` when the block exits cleanly.

    Parameters
    ----------
    path : path-like
        Final destination. Its parent folder is created if missing.
    mode : {"wb", "w"}
        Binary or text mode.

    Yields
    ------
    file object
        The temporary file. On an exception it is deleted and ``path`` is left untouched.
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_open supports mode 'wb' or 'w', got {mode!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode, **({"encoding": "utf-8"} if mode == "w" else {})) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp_name, FILE_MODE)
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_open(path, "wb") as handle:
        handle.write(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_open(path, "w") as handle:
        handle.write(text)


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def atomic_write_yaml(path: str | os.PathLike, obj: Any, header: str = "") -> None:
    """Write ``obj`` as YAML to ``path`` atomically, after an optional ``# comment`` header."""
    body = yaml.safe_dump(obj, sort_keys=False, default_flow_style=False)
    atomic_write_text(path, header + body)


def atomic_np_save(path: str | os.PathLike, obj: Any, allow_pickle: bool = False) -> None:
    """``np.save`` to ``path`` atomically. ``allow_pickle`` is needed for dicts (the THINGS-EEG2 container)."""
    with atomic_open(path, "wb") as handle:
        np.save(handle, obj, allow_pickle=allow_pickle)
