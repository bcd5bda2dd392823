"""Checkpoint folders of a training run: find, verify, write atomically and rotate.

Checkpoints follow the diffusers examples: ``<folder>/checkpoint-{global_step}`` holds what
``accelerator.save_state`` writes (weights of what is trained, optimizer, scheduler, sampler, one
``random_states_{rank}.pkl`` per process, registered objects), rotated by ``checkpoints_total_limit``.
ttdnet adds two guarantees:

* **Atomic.** Every process writes into a hidden ``.checkpoint-N.tmp`` folder; once all have finished, the
  main process adds a manifest (``ttdnet_checkpoint.json``: step, number of processes, every file and its
  size) and renames the folder into place. An interrupted save never leaves a ``checkpoint-*`` folder.
* **Verified.** Before a resume, the manifest is checked against the folder; a missing or truncated file is an
  error that names it and the previous checkpoint to resume from instead. Nothing falls back silently.

``--resume_from_checkpoint`` is resolved in one way everywhere (:func:`resolve_checkpoint`): ``latest`` (the
highest step, or a fresh start when the folder has no checkpoint yet), a ``checkpoint-N`` name inside the
folder, or a path to such a folder. A name or path that matches nothing is an error, never a silent restart.
"""

import json
import os
import re
import shutil
from pathlib import Path

from ttdnet import __version__
from ttdnet.errors import TtdnetError
from ttdnet.io import atomic_write_json, replace_directory, staging_path


CHECKPOINT_PATTERN = re.compile(r"^checkpoint-(\d+)$")
MANIFEST_NAME = "ttdnet_checkpoint.json"


class CheckpointError(TtdnetError):
    """A checkpoint that was asked for does not exist, is incomplete, or belongs to another set-up."""


def list_checkpoints(folder: str | os.PathLike) -> list[tuple[int, Path]]:
    """``(global_step, path)`` of every ``checkpoint-N`` folder in ``folder``, sorted by step."""
    root = Path(folder)
    if not root.is_dir():
        return []
    found = []
    for entry in root.iterdir():
        match = CHECKPOINT_PATTERN.match(entry.name)
        if match and entry.is_dir():
            found.append((int(match.group(1)), entry))
    return sorted(found)


def resolve_checkpoint(folder: str | os.PathLike, request: str | None) -> tuple[int, Path] | None:
    """The checkpoint ``--resume_from_checkpoint`` asks for in ``folder``, or None to start fresh.

    Parameters
    ----------
    folder : path-like
        Where the run's ``checkpoint-N`` folders live.
    request : str or None
        None (start fresh), ``"latest"`` (the highest step; None when there is none yet), a ``checkpoint-N``
        name in ``folder``, or a path to such a folder.

    Raises
    ------
    CheckpointError
        A name or path that is not a checkpoint folder; the message lists the checkpoints that exist.
    """
    if request is None:
        return None
    if request == "latest":
        checkpoints = list_checkpoints(folder)
        return checkpoints[-1] if checkpoints else None
    path = Path(request)
    if not path.is_absolute() and not path.exists():
        path = Path(folder) / request
    match = CHECKPOINT_PATTERN.match(path.name)
    if not match or not path.is_dir():
        available = ", ".join(p.name for _, p in list_checkpoints(folder)) or "none"
        raise CheckpointError(
            f"checkpoint {request!r} not found (looked for {path}); checkpoints in {folder}: {available}. "
            "Give one of them, or --resume_from_checkpoint latest to take the newest."
        )
    return int(match.group(1)), path


def verify_checkpoint(path: str | os.PathLike, num_processes: int) -> dict:
    """Check that a checkpoint folder is complete and was written by ``num_processes`` processes.

    Returns
    -------
    dict
        The manifest.

    Raises
    ------
    CheckpointError
        The manifest is missing or unreadable, a file it lists is missing or has another size, or the run
        used another number of processes (the data position and per-process random states depend on it).
        The message suggests the previous checkpoint when there is one.
    """
    path = Path(path)

    match = CHECKPOINT_PATTERN.match(path.name)
    step = int(match.group(1)) if match else None

    def fail(problem: str) -> CheckpointError:
        earlier = [other.name for n, other in list_checkpoints(path.parent) if step is not None and n < step]
        hint = (
            f"; resume from the previous one with --resume_from_checkpoint {earlier[-1]}"
            if earlier
            else "; no earlier checkpoint exists, so start a new run (--overwrite)"
        )
        return CheckpointError(f"checkpoint {path} is unusable: {problem}{hint}")

    manifest_path = path / MANIFEST_NAME
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        files = dict(manifest["files"])
    except FileNotFoundError:
        raise fail(f"{MANIFEST_NAME} is missing (not written by a complete ttdnet save)") from None
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise fail(f"{MANIFEST_NAME} is unreadable ({error})") from None
    missing = sorted(name for name in files if not (path / name).is_file())
    if missing:
        raise fail(f"missing {', '.join(missing)}")
    wrong = sorted(name for name, size in files.items() if (path / name).stat().st_size != size)
    if wrong:
        raise fail(f"truncated or changed: {', '.join(wrong)}")
    if manifest.get("num_processes") != num_processes:
        raise CheckpointError(
            f"checkpoint {path} was written by {manifest.get('num_processes')} process(es), this run has "
            f"{num_processes}: the global batch and the data position depend on it. Launch with "
            f"{manifest.get('num_processes')} process(es) to resume, or start a new run (--overwrite)."
        )
    return manifest


def save_checkpoint(accelerator, folder: str | os.PathLike, global_step: int, total_limit: int | None) -> Path:
    """Save the accelerator's state to ``folder/checkpoint-{global_step}`` atomically, then rotate.

    Call it on **every** process: each writes its own random states (and, under DeepSpeed or FSDP, its shard).
    The main process then writes the manifest, renames the folder into place and deletes the oldest
    checkpoints beyond ``total_limit`` (after the rename, so a crash never removes the previous checkpoint
    first). Assumes ``folder`` is on a file system that every process sees.

    Returns
    -------
    pathlib.Path
        The new checkpoint folder.
    """
    root = Path(folder)
    final = root / f"checkpoint-{global_step}"
    temporary = staging_path(final)  # one name that every process computes alike
    if accelerator.is_main_process and temporary.exists():
        shutil.rmtree(temporary)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(temporary))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        files = {entry.name: entry.stat().st_size for entry in sorted(temporary.iterdir()) if entry.is_file()}
        atomic_write_json(
            temporary / MANIFEST_NAME,
            {
                "step": global_step,
                "num_processes": accelerator.num_processes,
                "files": files,
                "ttdnet_version": __version__,
            },
        )
        replace_directory(temporary, final)
        if total_limit is not None:
            checkpoints = list_checkpoints(root)
            for _, stale in checkpoints[: max(0, len(checkpoints) - total_limit)]:
                shutil.rmtree(stale)
    accelerator.wait_for_everyone()
    return final
