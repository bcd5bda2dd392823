"""The output folder of ``ttdnet evaluate``: checked before any work, then written as one set.

An evaluation is four files in ``--output_dir``: ``config.yaml``, ``report.md``, ``report.html`` and
``metrics.json``. The folder may hold anything else (other evaluations in sub-folders, the reconstructions
themselves); only these four names are ever replaced, and only when the file there was written by
``ttdnet evaluate`` (:func:`check_output_dir`), so a user's own ``config.yaml`` or ``report.md`` is never
overwritten.

:func:`write_evaluation` renders the four files into a hidden staging folder inside ``--output_dir``
(``.evaluation.ttdnet-<pid>-<host>-partial-*``) and only then moves them into place: first the previous
``metrics.json`` is removed, then ``config.yaml``, ``report.md`` and ``report.html`` are renamed in, and
``metrics.json`` last. A run killed while computing or rendering changes nothing visible; its staging
folder is deleted by the next run (:func:`ttdnet.io.remove_stale_temporaries`). ``metrics.json`` is present
only when the set beside it is complete and belongs to it.
"""

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path

from ttdnet.config import save_config
from ttdnet.errors import TtdnetError
from ttdnet.io import remove_stale_temporaries, temporary_prefix

from .pairing import PairedSet
from .report import HTML_TITLE, MARKDOWN_TITLE, render_html, render_markdown


OUTPUT_FILES = ("config.yaml", "report.md", "report.html", "metrics.json")
"""The files of one evaluation, in the order they are moved into place (``metrics.json`` last)."""
STAGING_NAME = "evaluation"
"""Base name of the hidden staging folder (``.evaluation.ttdnet-<pid>-<host>-partial-*``)."""
PATH_KEYS = {"config.yaml": "config", "report.md": "markdown", "report.html": "html", "metrics.json": "metrics"}


def written_by_evaluate(path: Path) -> bool:
    """Whether the file ``path`` (one of :data:`OUTPUT_FILES`) was written by ``ttdnet evaluate``.

    ``metrics.json`` must be a JSON object with ``metrics``, ``pairing`` and ``ttdnet_version``; ``config.yaml``
    must name ``ttdnet evaluate`` on its first line; the reports must carry their titles.
    """
    if not path.is_file():
        return False
    try:
        if path.name == "metrics.json":
            document = json.loads(path.read_text(encoding="utf-8"))
            return isinstance(document, dict) and {"metrics", "pairing", "ttdnet_version"} <= document.keys()
        with path.open(encoding="utf-8") as handle:
            head = handle.read(4096)
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    if path.name == "config.yaml":
        return "`ttdnet evaluate`" in head.partition("\n")[0]
    if path.name == "report.md":
        return head.startswith(MARKDOWN_TITLE + "\n")
    return f"<title>{HTML_TITLE}</title>" in head


def check_output_dir(output_dir: str | os.PathLike) -> None:
    """Refuse an ``--output_dir`` an evaluation cannot be written to without destroying something.

    Raises
    ------
    TtdnetError
        ``output_dir`` is a file, or one of :data:`OUTPUT_FILES` in it was not written by ``ttdnet evaluate``.
    """
    output_dir = Path(output_dir)
    if output_dir.exists() and not output_dir.is_dir():
        raise TtdnetError(f"--output_dir {output_dir} exists and is not a folder; choose another --output_dir.")
    for name in OUTPUT_FILES:
        target = output_dir / name
        if (target.exists() or target.is_symlink()) and not written_by_evaluate(target):
            raise TtdnetError(
                f"--output_dir {output_dir}: {target} was not written by `ttdnet evaluate` and an evaluation "
                "would replace it; choose another --output_dir, or move that file away."
            )


def write_evaluation(
    output_dir: str | os.PathLike, document: dict, pairs: PairedSet, config, grid_trials: int = 12
) -> dict[str, Path]:
    """Write ``metrics.json``, ``report.md``, ``report.html`` and ``config.yaml`` into ``output_dir`` as one set.

    Parameters
    ----------
    output_dir : path-like
        Created if missing; checked with :func:`check_output_dir`.
    document : dict
        The ``metrics.json`` content. It must hold no NaN or infinity (``json.dumps(allow_nan=False)``):
        undefined values are None.
    pairs : PairedSet
        For the images of ``report.html``.
    config : EvaluateConfig
        Saved as ``config.yaml``.
    grid_trials : int
        Trials in the report's image grid.

    Returns
    -------
    dict
        ``metrics``, ``markdown``, ``html`` and ``config`` paths.

    Raises
    ------
    ValueError
        ``document`` holds a NaN or an infinity; nothing is written.
    """
    output_dir = Path(output_dir)
    check_output_dir(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    for name in (STAGING_NAME, *OUTPUT_FILES):
        remove_stale_temporaries(output_dir, name)
    staging = Path(tempfile.mkdtemp(prefix=temporary_prefix(STAGING_NAME) + "partial-", dir=output_dir))
    try:
        save_config(config, staging / "config.yaml", "evaluate")
        (staging / "metrics.json").write_text(json.dumps(document, indent=2, allow_nan=False) + "\n", encoding="utf-8")
        (staging / "report.md").write_text(render_markdown(document), encoding="utf-8")
        (staging / "report.html").write_text(render_html(document, pairs, grid_trials=grid_trials), encoding="utf-8")
        with contextlib.suppress(FileNotFoundError):
            (output_dir / "metrics.json").unlink()  # from here until the last rename, no set is visible
        for name in OUTPUT_FILES:
            os.replace(staging / name, output_dir / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return {key: output_dir / name for name, key in PATH_KEYS.items()}
