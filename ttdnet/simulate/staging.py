"""Build a dataset in a hidden sibling folder and move it into place only when complete.

An interrupted run leaves no half dataset under the requested name, and its hidden staging folder is deleted by
the next run into the same folder. An existing folder is replaced only
when it is empty, or when it is a previous synthetic dataset (its ``simulation.json`` names this generator)
and the user asked to overwrite; anything else is refused, so a user's files are never deleted.
"""

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

from ttdnet.errors import TtdnetError
from ttdnet.io import atomic_directory, remove_stale_temporaries


MARKER_FILE = "simulation.json"
GENERATOR = "ttdnet.simulate"


def is_synthetic_dataset(path: Path) -> bool:
    """Whether ``path`` holds a ``simulation.json`` written by this generator."""
    try:
        marker = json.loads((path / MARKER_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(marker, dict) and marker.get("generator") == GENERATOR


def check_destination(destination: Path, overwrite: bool) -> None:
    """Raise :class:`TtdnetError` unless ``destination`` may be (re)written.

    Parameters
    ----------
    destination : pathlib.Path
        Dataset root.
    overwrite : bool
        Whether a previous synthetic dataset there may be replaced.
    """
    if not destination.exists():
        return
    if not destination.is_dir():
        raise TtdnetError(f"output_dir {destination} exists and is not a folder; choose another --output_dir")
    if not any(destination.iterdir()):
        return
    if not is_synthetic_dataset(destination):
        raise TtdnetError(
            f"output_dir {destination} is not empty and holds no {MARKER_FILE} from `ttdnet simulate`; "
            "refusing to write there. Choose an empty or new --output_dir."
        )
    if not overwrite:
        raise TtdnetError(
            f"output_dir {destination} already holds a synthetic dataset; pass --overwrite to replace it, "
            "or choose another --output_dir"
        )


@contextlib.contextmanager
def staged_directory(destination: str | os.PathLike, overwrite: bool) -> Iterator[Path]:
    """Yield an empty staging folder next to ``destination``; on success it replaces ``destination``.

    Parameters
    ----------
    destination : path-like
        Final dataset root. Checked with :func:`check_destination` before and after the build.
    overwrite : bool
        Whether a previous synthetic dataset at ``destination`` may be replaced.

    Yields
    ------
    pathlib.Path
        The staging folder, a new hidden ``.<name>.ttdnet-<pid>-<host>-partial-*`` folder per run; it is deleted
        if the block raises, and the one a killed run left behind is deleted by the next run.
    """
    destination = Path(destination)
    check_destination(destination, overwrite)
    remove_stale_temporaries(destination.parent, destination.name)
    with atomic_directory(destination, unique=True) as staging:
        yield staging
        check_destination(destination, overwrite)
