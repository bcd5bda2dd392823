"""Atomic writes: a reader never sees a half-written file, model folder or checkpoint.

Every writer goes to a temporary file or folder in the destination's folder and is moved into place with
:func:`os.replace`, which is atomic on POSIX and Windows when source and destination share a file system.
Files and folders get the mode ``open()`` and ``mkdir()`` would give them under the process umask.

Temporary names carry their writer, ``.<name>.ttdnet-<pid>-<host>-<random>``, so that the next run can
tell a left-over of a killed process from the work of one still running: :func:`remove_stale_temporaries`
deletes those whose process, on this host, is gone.
"""

import contextlib
import hashlib
import json
import os
import re
import shutil
import socket
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np
import yaml


_UMASK_LOCK = threading.Lock()

_HOST_TAG = hashlib.sha1(socket.gethostname().encode()).hexdigest()[:8]
_TEMPORARY_NAME = re.compile(r"^\..+\.ttdnet-(?P<pid>\d+)-(?P<host>[0-9a-f]{8})-")


def temporary_prefix(name: str) -> str:
    """The start of a temporary name for ``name`` written by this process: ``.<name>.ttdnet-<pid>-<host>-``."""
    return f".{name}.ttdnet-{os.getpid()}-{_HOST_TAG}-"


def _process_is_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, owned by another user
        return True
    return True


def remove_stale_temporaries(folder: str | os.PathLike, name: str | None = None) -> list[Path]:
    """Delete the temporary files and folders that killed ttdnet processes left in ``folder``.

    Only names made with :func:`temporary_prefix` are considered, and only those written on this host by a
    process that no longer runs; a temporary of a live process (another run writing there now) or of another
    host (a shared file system) is left alone.

    Parameters
    ----------
    folder : path-like
        Where to look (not recursive). A missing folder holds nothing.
    name : str, optional
        Only the temporaries of this file or folder name (``.<name>.ttdnet-...``).

    Returns
    -------
    list of pathlib.Path
        What was deleted.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    for entry in folder.iterdir():
        match = _TEMPORARY_NAME.match(entry.name)
        if match is None or (name is not None and not entry.name.startswith(f".{name}.ttdnet-")):
            continue
        if match["host"] != _HOST_TAG or _process_is_running(int(match["pid"])):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                entry.unlink()
        removed.append(entry)
    return removed


def current_umask() -> int:
    """The process umask, read without changing it where the system allows.

    Linux reports it as ``Umask:`` in ``/proc/self/status``. Elsewhere it is read with the ``os.umask`` pair,
    which sets it for an instant: to ``0o077``, so a file another thread creates meanwhile is only ever more
    private than asked, never less.
    """
    with contextlib.suppress(OSError, ValueError):
        with open("/proc/self/status", encoding="ascii", errors="replace") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    with _UMASK_LOCK:
        umask = os.umask(0o077)
        os.umask(umask)
    return umask


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
    fd, tmp_name = tempfile.mkstemp(prefix=temporary_prefix(path.name), suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode, **({"encoding": "utf-8"} if mode == "w" else {})) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp_name, 0o666 & ~current_umask())  # mkstemp alone creates it 0600
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


def staging_path(path: str | os.PathLike) -> Path:
    """The hidden sibling ``.<name>.tmp`` in which the folder ``path`` is built before it is moved into place."""
    path = Path(path)
    return path.with_name(f".{path.name}.tmp")


def replace_directory(staging: str | os.PathLike, destination: str | os.PathLike) -> None:
    """Move the folder ``staging`` onto ``destination``, replacing a folder already there.

    An existing ``destination`` is first renamed into a hidden ``.<name>.ttdnet-...-replaced-*`` sibling and
    deleted only once ``staging`` has taken its name, so the old folder is never deleted before the new one is
    in place.

    Raises
    ------
    NotADirectoryError
        ``destination`` exists and is not a folder (it is left alone).
    """
    staging, destination = Path(staging), Path(destination)
    if not destination.exists() and not destination.is_symlink():
        os.replace(staging, destination)
        return
    if not destination.is_dir():
        raise NotADirectoryError(f"{destination} exists and is not a folder; it is not replaced")
    retired = Path(tempfile.mkdtemp(prefix=temporary_prefix(destination.name) + "replaced-", dir=destination.parent))
    os.replace(destination, retired / destination.name)
    os.replace(staging, destination)
    shutil.rmtree(retired)


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike, unique: bool = False) -> Iterator[Path]:
    """Yield an empty folder next to ``path``; when the block exits cleanly it replaces ``path``.

    Parameters
    ----------
    path : path-like
        Final folder. Its parent is created if missing; a folder already there is replaced
        (:func:`replace_directory`).
    unique : bool
        False: the staging folder is :func:`staging_path` (``.<name>.tmp``), and a leftover of an interrupted
        run is deleted first. True: a new ``.<name>.ttdnet-<pid>-<host>-partial-*`` folder per call, so two
        runs never write into the same one.

    Yields
    ------
    pathlib.Path
        The staging folder. If the block raises it is deleted and ``path`` is left untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if unique:
        staging = Path(tempfile.mkdtemp(prefix=temporary_prefix(path.name) + "partial-", dir=path.parent))
        os.chmod(staging, 0o777 & ~current_umask())  # mkdtemp alone creates it 0700
    else:
        staging = staging_path(path)
        if staging.exists():
            shutil.rmtree(staging)
        staging.mkdir()
    try:
        yield staging
        replace_directory(staging, path)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
