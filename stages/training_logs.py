"""What a training run logs: the ``--report_to`` trackers and an append-only ``metrics.csv`` per run folder."""

import configparser
import csv
import netrc
import os
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

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


WANDB_DEFAULT_HOST = "https://api.wandb.ai"


def _wandb_settings(environ: Mapping[str, str], home: Path) -> dict[str, str]:
    """The ``[default]`` section of the user's global W&B settings file (empty when it is missing or unreadable).

    ``wandb`` keeps it at ``$WANDB_CONFIG_DIR/settings``, else ``~/.config/wandb/settings``.
    """
    config_dir = environ.get("WANDB_CONFIG_DIR")
    path = Path(config_dir).expanduser() if config_dir else home / ".config" / "wandb"
    parser = configparser.ConfigParser()
    try:
        parser.read(path / "settings", encoding="utf-8")
    except (OSError, configparser.Error):
        return {}
    return dict(parser["default"]) if parser.has_section("default") else {}


def _netrc_has_key(environ: Mapping[str, str], home: Path, host_url: str) -> bool:
    """Whether ``wandb login`` stored a key for ``host_url`` in the netrc file ``wandb`` reads.

    That file is ``$NETRC``, else ``~/.netrc``, else ``~/_netrc``; an unreadable file holds no key.
    """
    candidates = [Path(environ["NETRC"]).expanduser()] if environ.get("NETRC") else [home / ".netrc", home / "_netrc"]
    path = next((candidate for candidate in candidates if candidate.is_file()), None)
    host = urlsplit(host_url).netloc
    if path is None or not host:
        return False
    try:
        entry = netrc.netrc(path).authenticators(host)
    except (OSError, netrc.NetrcParseError):
        return False
    return bool(entry and entry[2])


def wandb_default_mode(environ: Mapping[str, str] | None = None, home: Path | None = None) -> str | None:
    """The ``WANDB_MODE`` to set for a run: "offline" when the user has no W&B setup of their own, else None.

    The user's setup wins: a ``WANDB_MODE`` they set, credentials in ``WANDB_API_KEY`` or
    ``WANDB_IDENTITY_TOKEN_FILE``, a key that ``wandb login`` wrote to the netrc file for the W&B host
    (``WANDB_BASE_URL``, the settings file's ``base_url``, or api.wandb.ai), or a ``mode`` or ``api_key``
    in the global W&B settings file. Nothing is sent over the network to decide.

    Parameters
    ----------
    environ : mapping, optional
        Environment variables (default ``os.environ``).
    home : Path, optional
        Home folder holding ``.netrc`` and ``.config/wandb`` (default ``Path.home()``).
    """
    environ = os.environ if environ is None else environ
    home = Path.home() if home is None else home
    if any(environ.get(name) for name in ("WANDB_MODE", "WANDB_API_KEY", "WANDB_IDENTITY_TOKEN_FILE")):
        return None
    settings = _wandb_settings(environ, home)
    if settings.get("mode") or settings.get("api_key"):
        return None
    host_url = environ.get("WANDB_BASE_URL") or settings.get("base_url") or WANDB_DEFAULT_HOST
    return None if _netrc_has_key(environ, home, host_url) else "offline"


def tracker_setup(report_to: str) -> str | list[str] | None:
    """The ``log_with`` argument of ``Accelerator`` for ``--report_to``; W&B runs offline without a user setup.

    See :func:`wandb_default_mode` for what counts as the user's own W&B setup.

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
    if ("wandb" in names or "all" in names) and (mode := wandb_default_mode()) is not None:
        os.environ["WANDB_MODE"] = mode
    return "all" if "all" in names else names


def init_trackers(accelerator, project_name: str, config_dict: dict) -> None:
    """Start the ``--report_to`` trackers (call on the main process) with every log inside the run folder.

    The config is flattened for TensorBoard (:func:`tracker_config`); W&B writes its run (offline or not) into the
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
