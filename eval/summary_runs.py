"""Read, check and label the runs a summary combines: one ``ttdnet evaluate`` output (``metrics.json``) per subject.

:func:`load_runs` finds each run's ``metrics.json`` (:func:`metrics_file_of`), checks the parts the summary
uses (:func:`read_metrics_document`: valid JSON without NaN or Infinity, the keys of ``ttdnet evaluate``,
numbers where numbers belong), names its subject (:func:`subject_label`, or ``--labels``) and refuses a file
given twice, two runs with one label and one evaluation given twice under two names.
"""

import dataclasses
import json
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ttdnet.errors import TtdnetError


REQUIRED_KEYS = ("metrics", "pairing", "ttdnet_version", "n_trials", "n_samples")
"""Keys every ``metrics.json`` of ``ttdnet evaluate`` has and the summary reads."""
SUBJECT = re.compile(r"(?<![A-Za-z0-9])sub-[A-Za-z0-9]+")
"""A BIDS subject label (``sub-01``, ``sub-08``) inside a path."""
LABEL_SOURCES = ("manifest", "reconstructions", "ground_truth")
"""The recorded ``pairing`` paths searched for a subject label, in this order."""
RERUN = "re-run `ttdnet evaluate` to rewrite it"


@dataclasses.dataclass(frozen=True)
class Run:
    """One subject's evaluation.

    Attributes
    ----------
    label : str
        The subject's name in the summary.
    label_source : str
        Where the label came from (``pairing.reconstructions``, ``evaluation folder name``, ``--labels``).
    metrics_file : pathlib.Path
    document : dict
        The ``metrics.json`` content, checked by :func:`read_metrics_document`.
    """

    label: str
    label_source: str
    metrics_file: Path
    document: dict

    @property
    def name(self) -> str:
        """The run as error messages name it: label and file."""
        return f"{self.label} ({self.metrics_file})"


class _NonFinite(ValueError):
    """A NaN or Infinity token in a JSON file."""


def _refuse_constant(constant: str):
    raise _NonFinite(constant)


def metrics_file_of(path: str | os.PathLike) -> Path:
    """The ``metrics.json`` of an evaluation folder, or ``path`` itself when it is a file.

    Raises
    ------
    TtdnetError
        ``path`` does not exist, or is a folder without ``metrics.json``.
    """
    path = Path(path)
    if path.is_dir():
        if not (path / "metrics.json").is_file():
            raise TtdnetError(
                f"{path} holds no metrics.json; pass the --output_dir of a finished `ttdnet evaluate` run (an "
                "interrupted one leaves none: re-run it) or a metrics.json file."
            )
        return path / "metrics.json"
    if not path.exists():
        raise TtdnetError(
            f"{path} does not exist; pass the --output_dir of a `ttdnet evaluate` run or its metrics.json."
        )
    return path


def _check_number(file: Path, where: str, value: Any) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
        raise TtdnetError(f"{file}: {where} is {value!r}; it must be a number or null. {RERUN.capitalize()}.")


def read_metrics_document(file: Path) -> dict:
    """Read one ``metrics.json`` and check the parts the summary uses.

    Raises
    ------
    TtdnetError
        The file cannot be read, is not JSON, holds NaN or Infinity, is not a ``ttdnet evaluate`` document, or
        has a count or value of the wrong type.
    """
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise TtdnetError(
            f"cannot read {file}: {error}; pass the metrics.json that `ttdnet evaluate` wrote."
        ) from None
    try:
        document = json.loads(text, parse_constant=_refuse_constant)
    except _NonFinite as error:
        raise TtdnetError(
            f"{file} holds {error}, which `ttdnet evaluate` never writes (an undefined value is null); {RERUN}."
        ) from None
    except json.JSONDecodeError as error:
        raise TtdnetError(
            f"{file} is not valid JSON ({error.msg} at line {error.lineno}, column {error.colno}); {RERUN}."
        ) from None
    missing = [key for key in REQUIRED_KEYS if not isinstance(document, dict) or key not in document]
    if missing:
        raise TtdnetError(
            f"{file} is not a metrics.json of `ttdnet evaluate` (it lacks {', '.join(map(repr, missing))}); pass "
            "the metrics.json that `ttdnet evaluate` wrote."
        )
    for key in ("n_trials", "n_samples"):
        count = document[key]
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise TtdnetError(f"{file}: {key} is {count!r}; it must be a positive integer. {RERUN.capitalize()}.")
    if not isinstance(document["pairing"], dict):
        raise TtdnetError(f"{file}: 'pairing' is {document['pairing']!r}, not a mapping; {RERUN}.")
    metrics = document["metrics"]
    if not isinstance(metrics, dict) or not metrics:
        raise TtdnetError(f"{file}: 'metrics' holds no metric entry; {RERUN}.")
    for key, entry in metrics.items():
        if not isinstance(entry, dict) or "value" not in entry:
            raise TtdnetError(f"{file}: metrics.{key} is not a metric entry (it has no 'value'); {RERUN}.")
        _check_number(file, f"metrics.{key}.value", entry["value"])
        _check_number(file, f"metrics.{key}.chance", entry.get("chance"))
    return document


def subject_label(document: dict, metrics_file: Path) -> tuple[str, str]:
    """The subject a run belongs to, and where that was read.

    The last ``sub-XX`` in the recorded manifest, reconstructions or ground-truth path (in this order), else
    the name of the folder holding ``metrics.json``.

    Returns
    -------
    label : str
    source : str
        ``pairing.manifest``, ``pairing.reconstructions``, ``pairing.ground_truth`` or ``evaluation folder name``.
    """
    pairing = document["pairing"]
    for key in LABEL_SOURCES:
        found = SUBJECT.findall(pairing[key]) if isinstance(pairing.get(key), str) else []
        if found:
            return found[-1], f"pairing.{key}"
    return metrics_file.resolve().parent.name, "evaluation folder name"


def load_runs(paths: Sequence[str | os.PathLike], labels: Sequence[str] | None = None) -> list[Run]:
    """Read every run and label it.

    Parameters
    ----------
    paths : sequence of path-like
        Evaluation folders or ``metrics.json`` files, one per subject.
    labels : sequence of str, optional
        One label per run, replacing those read from the paths.

    Raises
    ------
    TtdnetError
        No run, a file given twice, a wrong number of labels, two runs with one label, an unreadable or invalid
        ``metrics.json``, or two runs with identical values for every metric (one evaluation given twice).
    """
    if not paths:
        raise TtdnetError(
            "pass the evaluation folders to summarise (the --output_dir of each subject's `ttdnet evaluate`), "
            "e.g. `ttdnet evaluate-summary outputs/evaluate/sub-01 outputs/evaluate/sub-02`."
        )
    if labels is not None and len(labels) != len(paths):
        raise TtdnetError(
            f"--labels gives {len(labels)} label(s) for {len(paths)} run(s); give one label per run, in the "
            "order of the runs."
        )
    files = [metrics_file_of(path) for path in paths]
    seen: dict[Path, str] = {}
    for path, file in zip(paths, files):
        if file.resolve() in seen:
            raise TtdnetError(
                f"{file} is given twice (as {seen[file.resolve()]} and {path}); give each subject's evaluation once."
            )
        seen[file.resolve()] = str(path)
    runs = []
    for i, file in enumerate(files):
        document = read_metrics_document(file)
        label, source = (labels[i], "--labels") if labels is not None else subject_label(document, file)
        if not label.strip():
            raise TtdnetError(f"--labels: label {i + 1} is empty; give every run a name.")
        runs.append(Run(label, source, file, document))
    by_label: dict[str, Run] = {}
    for run in runs:
        if run.label in by_label:
            fix = "give each run its own label" if labels is not None else "name the runs with --labels"
            raise TtdnetError(
                f"runs {by_label[run.label].metrics_file} and {run.metrics_file} both have the subject label "
                f"{run.label!r}; {fix}."
            )
        by_label[run.label] = run
    for i, a in enumerate(runs):
        for b in runs[i + 1 :]:
            if _same_values(a.document, b.document):
                raise TtdnetError(
                    f"runs {a.name} and {b.name} have identical values for every metric: the same evaluation "
                    "given twice; give each subject's evaluation once."
                )
    return runs


def _same_values(a: dict, b: dict) -> bool:
    """Whether two documents hold the same metric keys with equal values and equal per-trial scores."""
    metrics_a, metrics_b = a["metrics"], b["metrics"]
    if metrics_a.keys() != metrics_b.keys() or any(metrics_a[k]["value"] != metrics_b[k]["value"] for k in metrics_a):
        return False
    return optional_mapping(a, "per_trial").get("scores") == optional_mapping(b, "per_trial").get("scores")


def optional_mapping(document: dict, key: str) -> dict:
    """``document[key]`` when it is a mapping, else an empty one (an optional part of ``metrics.json``)."""
    value = document.get(key)
    return value if isinstance(value, dict) else {}
