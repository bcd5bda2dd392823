"""A run folder holds one run: refuse to mix runs, compare options on resume, record what changed.

Every training command writes into ``--output_dir``. The rules, checked on every process before anything is
written (:func:`open_run_folder`), then applied by the main process (:meth:`RunFolder.commit`):

* **A new run needs an empty folder.** A folder with files in it and no ``--resume_from_checkpoint`` is an
  error; ``--overwrite`` deletes its contents first, and only when it is a ttdnet run folder of the same
  command (its ``config.yaml`` says so), so a mistyped path never deletes somebody's files. A run folder
  that holds nothing but its records (``config.yaml``, ``run_history.jsonl``, the tracker folder) — a start
  that failed on bad input before training — counts as empty.
* **A resume continues the same run.** The new resolved options are compared with the saved ``config.yaml``.
  Options that change what is trained (data, model, optimisation, selection) are an error that lists each
  difference and the fix; options that may safely change (logging, checkpoint frequency, data-loader workers
  and, where the stage supports it, a longer schedule) are allowed and recorded in ``run_history.jsonl``.
* **The saved precision is the default on resume.** ``config.yaml`` stores the precision the run really
  used, and a resume that does not say ``--mixed_precision`` continues in it.
"""

import dataclasses
import datetime
import json
import os
import shutil
from pathlib import Path
from typing import Any

import yaml

from ttdnet import __version__
from ttdnet.config import config_to_dict, save_config
from ttdnet.errors import TtdnetError


CONFIG_NAME = "config.yaml"
HISTORY_NAME = "run_history.jsonl"

MAY_CHANGE_ON_RESUME = frozenset(
    {
        "output_dir",
        "resume_from_checkpoint",
        "overwrite",
        "report_to",
        "logging_dir",
        "checkpointing_steps",
        "checkpoints_total_limit",
        "dataloader_num_workers",
        "eeg_cache_dir",
        "cache_dir",
    }
)
"""Options every stage lets a resume change: where logs go, how often checkpoints are written, loader workers, the
location of the float32 EEG cache (which is keyed by its source, so the data stay the same) and of the
model-download cache (which holds the same files wherever it is)."""


class RunFolderError(TtdnetError):
    """The output folder holds another run, or a resume asks for different options than the run used."""


@dataclasses.dataclass
class RunFolder:
    """The checked state of ``--output_dir`` (see :func:`open_run_folder`).

    Attributes
    ----------
    path : pathlib.Path
    command : str
        The subcommand (``pretrain``, ``train-retrieval``, ...), recorded in ``config.yaml``.
    resume_request : str or None
        ``--resume_from_checkpoint`` as given.
    changes : dict
        ``{option: [saved, new]}`` for the allowed changes of a resume (recorded in ``run_history.jsonl``).
    clear : bool
        Whether :meth:`commit` deletes the folder's contents (``--overwrite`` on a run folder).
    """

    path: Path
    command: str
    resume_request: str | None
    changes: dict[str, list[Any]]
    clear: bool

    def commit(self, accelerator, config) -> None:
        """Record the run: clear (``--overwrite``), then write ``config.yaml`` and a history line.

        Call on every process after the accelerator exists: the main process writes, the others wait, so no
        process writes before every process has checked the folder. ``config.mixed_precision`` is set to the
        precision the accelerator really uses, which is what ``config.yaml`` stores.
        """
        config.mixed_precision = accelerator.mixed_precision
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            if self.clear:
                for entry in self.path.iterdir():
                    shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
            self.path.mkdir(parents=True, exist_ok=True)
            save_config(config, self.path / CONFIG_NAME, command=self.command)
            record = {
                "time": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
                "command": self.command,
                "resume_from_checkpoint": self.resume_request,
                "changed_options": self.changes,
                "num_processes": accelerator.num_processes,
                "mixed_precision": accelerator.mixed_precision,
                "ttdnet_version": __version__,
            }
            with open(self.path / HISTORY_NAME, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(record) + "\n")
        accelerator.wait_for_everyone()


def read_saved_config(path: Path, command: str) -> dict[str, Any]:
    """The options stored in a run folder's ``config.yaml``, checked to come from ``ttdnet <command>``."""
    text = path.read_text(encoding="utf-8")
    first = text.splitlines()[0] if text else ""
    if f"`ttdnet {command}`" not in first:
        raise RunFolderError(
            f"{path} was not written by `ttdnet {command}` (its first line: {first!r}); "
            "choose another --output_dir for this command"
        )
    loaded = yaml.safe_load(text)
    if not isinstance(loaded, dict):
        raise RunFolderError(f"{path} is not a ttdnet config (not a mapping); choose another --output_dir")
    return loaded


def _same(saved: Any, new: Any) -> bool:
    if saved == new:
        return True
    if isinstance(saved, str) and isinstance(new, str) and os.path.exists(saved) and os.path.exists(new):
        return os.path.samefile(saved, new)  # one folder given as a relative and an absolute path
    return False


def open_run_folder(config, command: str, may_change: frozenset[str] | set[str] = MAY_CHANGE_ON_RESUME) -> RunFolder:
    """Check ``config.output_dir`` for ``command`` without writing anything.

    Parameters
    ----------
    config : dataclass instance
        A training config with ``output_dir``, ``resume_from_checkpoint``, ``overwrite`` and
        ``mixed_precision``. On a resume that does not set ``mixed_precision``, it is filled in from the
        saved run.
    command : str
    may_change : set of str
        Options a resume may change (:data:`MAY_CHANGE_ON_RESUME` plus what the stage supports).

    Raises
    ------
    RunFolderError
        See the module docstring for the rules.
    """
    path = Path(config.output_dir)
    entries = sorted(entry.name for entry in path.iterdir()) if path.is_dir() else []
    saved_path = path / CONFIG_NAME
    saved = read_saved_config(saved_path, command) if saved_path.is_file() else None
    resume = config.resume_from_checkpoint
    records = {CONFIG_NAME, HISTORY_NAME, getattr(config, "logging_dir", "logs")}
    if resume is None and saved is not None and set(entries) <= records:
        return RunFolder(path, command, None, {}, clear=True)  # nothing was trained here yet
    if resume is None:
        if entries and not config.overwrite:
            shown = ", ".join(entries[:5]) + (", ..." if len(entries) > 5 else "")
            raise RunFolderError(
                f"--output_dir {path} is not empty ({shown}) and a run folder holds one run: resume it with "
                "--resume_from_checkpoint latest, choose a new --output_dir, or add --overwrite to delete its contents"
            )
        if entries and saved is None:
            raise RunFolderError(
                f"--overwrite would delete the contents of {path}, which is not a ttdnet run folder "
                f"(no {CONFIG_NAME}); choose another --output_dir"
            )
        return RunFolder(path, command, None, {}, clear=bool(entries))
    if config.overwrite:
        raise RunFolderError("--overwrite starts a new run and --resume_from_checkpoint continues one: give only one")
    if saved is None:
        if entries:
            raise RunFolderError(
                f"cannot resume in {path}: it holds files but no {CONFIG_NAME}, so it is not a ttdnet run folder"
            )
        return RunFolder(path, command, resume, {}, clear=False)
    if config.mixed_precision is None and saved.get("mixed_precision") is not None:
        config.mixed_precision = saved["mixed_precision"]
    differences = changed_options(saved, config, may_change, f"cannot resume the run in {path}", "trained")
    return RunFolder(path, command, resume, differences, clear=False)


def changed_options(saved: dict, config, may_change, what: str, product: str) -> dict[str, list[Any]]:
    """``{option: [saved, new]}`` for every option of ``config`` that differs from the ``saved`` ones.

    Raises
    ------
    RunFolderError
        Some differing option is not in ``may_change``; the message (starting with ``what``) lists each as
        ``name: saved -> new`` and says that they change what is ``product``.
    """
    differences = {
        key: [saved[key], value]
        for key, value in config_to_dict(config).items()
        if key in saved and not _same(saved[key], value)
    }
    conflicts = {key: pair for key, pair in differences.items() if key not in may_change}
    if conflicts:
        listed = "; ".join(f"{key}: {old!r} -> {value!r}" for key, (old, value) in sorted(conflicts.items()))
        raise RunFolderError(
            f"{what} with different options ({listed}). These change what is {product}: go back to the saved "
            "values (see its config.yaml), or use a new --output_dir"
        )
    return differences
