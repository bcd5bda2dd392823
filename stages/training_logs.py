"""What a training run logs: the ``--report_to`` trackers and an append-only ``metrics.csv`` per run folder."""

import csv
import os
from pathlib import Path

from ttdnet.errors import TtdnetError


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
