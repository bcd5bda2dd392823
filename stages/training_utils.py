"""Pieces every ``accelerate`` training stage shares: checkpoints, resume, trackers, metric CSVs, step seeding.

Checkpoints follow the diffusers examples: ``output_dir/checkpoint-{global_step}`` written by
``accelerator.save_state`` and rotated by ``checkpoints_total_limit``; ``--resume_from_checkpoint latest``
picks the highest step. Unlike the examples, a checkpoint is first written to a hidden temporary folder and
renamed into place, so an interrupted save never leaves a ``checkpoint-*`` folder that ``latest`` would pick.
"""

import csv
import math
import os
import re
import shutil
from pathlib import Path

import numpy as np
import torch

from ttdnet.errors import TtdnetError


CHECKPOINT_PATTERN = re.compile(r"^checkpoint-(\d+)$")


def list_checkpoints(output_dir: str | os.PathLike) -> list[tuple[int, Path]]:
    """``(global_step, path)`` of every complete checkpoint folder in ``output_dir``, sorted by step."""
    root = Path(output_dir)
    if not root.is_dir():
        return []
    found = []
    for entry in root.iterdir():
        match = CHECKPOINT_PATTERN.match(entry.name)
        if match and entry.is_dir():
            found.append((int(match.group(1)), entry))
    return sorted(found)


def resolve_checkpoint(output_dir: str | os.PathLike, resume_from_checkpoint: str | None) -> tuple[int, Path] | None:
    """The checkpoint to resume from, or None to start fresh.

    Parameters
    ----------
    output_dir : path-like
    resume_from_checkpoint : str or None
        None, ``"latest"`` (None when there is no checkpoint yet), a ``checkpoint-N`` folder name in
        ``output_dir``, or a path to such a folder.

    Raises
    ------
    TtdnetError
        A named checkpoint that does not exist.
    """
    if resume_from_checkpoint is None:
        return None
    if resume_from_checkpoint == "latest":
        checkpoints = list_checkpoints(output_dir)
        return checkpoints[-1] if checkpoints else None
    path = Path(resume_from_checkpoint)
    if not path.is_absolute() and not path.exists():
        path = Path(output_dir) / resume_from_checkpoint
    match = CHECKPOINT_PATTERN.match(path.name)
    if not match or not path.is_dir():
        available = ", ".join(p.name for _, p in list_checkpoints(output_dir)) or "none"
        raise TtdnetError(
            f"checkpoint {resume_from_checkpoint!r} not found (looked for {path}); available in {output_dir}: "
            f"{available}. Use --resume_from_checkpoint latest to take the newest."
        )
    return int(match.group(1)), path


def save_checkpoint(accelerator, output_dir: str | os.PathLike, global_step: int, total_limit: int | None) -> Path:
    """Save ``accelerator``'s state to ``output_dir/checkpoint-{global_step}`` atomically, then rotate.

    The state goes to ``output_dir/.checkpoint-{global_step}.tmp`` first and is renamed when complete. After
    the rename, the oldest checkpoints beyond ``total_limit`` are deleted (so the limit holds after every save,
    and a crash during saving never deletes the previous checkpoint first).

    Returns
    -------
    pathlib.Path
        The new checkpoint folder.
    """
    root = Path(output_dir)
    final = root / f"checkpoint-{global_step}"
    temporary = root / f".checkpoint-{global_step}.tmp"
    if temporary.exists():
        shutil.rmtree(temporary)
    accelerator.save_state(str(temporary))
    if final.exists():
        shutil.rmtree(final)
    os.replace(temporary, final)
    if total_limit is not None:
        checkpoints = list_checkpoints(root)
        for _, stale in checkpoints[: max(0, len(checkpoints) - total_limit)]:
            shutil.rmtree(stale)
    return final


def step_seed(seed: int, global_step: int, micro_step: int, process_index: int) -> int:
    """A 63-bit seed that depends only on (seed, step, micro-step, process).

    Seeding torch from it before each micro-batch makes the random draws of a step (masks, dropout,
    augmentation) independent of anything consumed before, so a resumed run repeats an uninterrupted one.
    """
    state = np.random.SeedSequence([seed, global_step, micro_step, process_index]).generate_state(2, dtype=np.uint32)
    return int((int(state[0]) << 31) ^ int(state[1]))


def seed_micro_step(seed: int, global_step: int, micro_step: int, process_index: int) -> None:
    """Seed torch's global generator (CPU and CUDA) with :func:`step_seed`."""
    torch.manual_seed(step_seed(seed, global_step, micro_step, process_index))


class MetricsCSV:
    """Append-only CSV of logged metrics (``step`` first), trimmed back to the resume step on restart.

    Parameters
    ----------
    path : path-like
    columns : list of str
        Column names after ``step``.
    resume_step : int or None
        When resuming, rows with ``step > resume_step`` (written by the interrupted run after its last
        checkpoint) are dropped so the file matches the restored state.
    """

    def __init__(self, path: str | os.PathLike, columns: list[str], resume_step: int | None = None):
        self.path = Path(path)
        self.columns = ["step", *columns]
        rows = []
        if resume_step is not None and self.path.is_file():
            with open(self.path, newline="", encoding="utf-8") as handle:
                rows = [row for row in csv.DictReader(handle) if int(row["step"]) <= resume_step]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(f".{self.path.name}.tmp")
        with open(temporary, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=self.columns)
            writer.writeheader()
            writer.writerows(rows)
        os.replace(temporary, self.path)

    def log(self, step: int, values: dict[str, float | str]) -> None:
        """Append one row; missing columns stay empty."""
        unknown = set(values) - set(self.columns)
        if unknown:
            raise KeyError(f"columns {sorted(unknown)} are not in {self.path} ({self.columns})")
        with open(self.path, "a", newline="", encoding="utf-8") as handle:
            csv.DictWriter(handle, fieldnames=self.columns).writerow({"step": step, **values})


def tracker_setup(report_to: str) -> str | list[str] | None:
    """The ``log_with`` argument of ``Accelerator`` for ``--report_to``, with W&B offline unless a key is set.

    Parameters
    ----------
    report_to : {"tensorboard", "wandb", "all", "none"} or a comma-separated list of them
    """
    names = [name.strip() for name in report_to.split(",") if name.strip()]
    allowed = {"tensorboard", "wandb", "all", "none"}
    unknown = [name for name in names if name not in allowed]
    if unknown:
        raise TtdnetError(f"--report_to {report_to!r}: unknown tracker(s) {unknown}; choose from {sorted(allowed)}")
    if not names or names == ["none"]:
        return None
    if ("wandb" in names or "all" in names) and not os.environ.get("WANDB_API_KEY"):
        os.environ.setdefault("WANDB_MODE", "offline")
    return "all" if "all" in names else names


def init_trackers(accelerator, project_name: str, config_dict: dict) -> None:
    """Start the ``--report_to`` trackers (call on the main process) with every log inside the run folder.

    The config is flattened for TensorBoard (:func:`tracker_config`); W&B writes its (offline) run into the
    accelerator's logging folder rather than the current directory.
    """
    logging_dir = Path(accelerator.logging_dir)
    logging_dir.mkdir(parents=True, exist_ok=True)
    accelerator.init_trackers(
        project_name, config=tracker_config(config_dict), init_kwargs={"wandb": {"dir": str(logging_dir)}}
    )


def tracker_config(config_dict: dict) -> dict:
    """Flatten a config for trackers: TensorBoard's hparams accept only scalars and strings."""
    flat = {}
    for key, value in config_dict.items():
        flat[key] = value if isinstance(value, int | float | str | bool) else str(value)
    return flat


class BestOnValidation:
    """The best validation value so far, when it was reached, and the model weights that reached it.

    Register it with ``accelerator.register_for_checkpointing`` so a resumed run restores the exact weights
    it would ship. Selection is on validation data only, never on the test set.

    Parameters
    ----------
    mode : {"min", "max"}
        Whether a lower value (a loss) or a higher value (an accuracy) is better.

    Attributes
    ----------
    value : float
        Best value so far (``inf`` or ``-inf`` before the first update).
    at : int
        Step or epoch of the best value (-1 before the first update).
    weights : dict of str to torch.Tensor
        CPU copy of the state dict at the best value (empty before the first update).
    """

    def __init__(self, mode: str = "min"):
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        self.mode = mode
        self.reset()

    def reset(self) -> None:
        """Forget the best value (e.g. before the next cross-validation fold)."""
        self.value = math.inf if self.mode == "min" else -math.inf
        self.at = -1
        self.weights: dict = {}

    def update(self, value: float, at: int, model: torch.nn.Module) -> bool:
        """Record ``value`` reached at step/epoch ``at`` if it is strictly better; return whether it was."""
        better = value < self.value if self.mode == "min" else value > self.value
        if not better:
            return False
        self.value, self.at = value, at
        self.weights = {key: tensor.detach().cpu().clone() for key, tensor in model.state_dict().items()}
        return True

    def state_dict(self) -> dict:
        return {
            "value": torch.tensor(self.value, dtype=torch.float64),
            "at": torch.tensor(self.at),
            "weights": self.weights,
        }

    def load_state_dict(self, state: dict) -> None:
        self.value, self.at, self.weights = float(state["value"]), int(state["at"]), dict(state["weights"])
