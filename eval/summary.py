"""Combine the ``metrics.json`` of several ``ttdnet evaluate`` runs, one per subject, into one summary.

Each run is read, checked and labelled with its subject (:func:`~ttdnet.eval.summary_runs.load_runs`). The
runs are then compared with the first one, setting by setting (:func:`protocol_mismatches`): the metrics
computed, trials and samples per run, the ttdnet version, the seed, real or random weights, every backbone's
weights (id, file name, SHA-256, implementation, preprocessing) and every metric's own settings (resize, eval
size, SSIM window, n of the n-way, KID subsets, ...). A difference is an error unless ``allow_mismatch``; then
it is listed in the summary's ``warnings``.

:func:`summarise` gives, per metric, the mean and the sample standard deviation (ddof 1) over subjects, min
and max, from each run's ``value`` (its mean over sample sets). An undefined (null) value is left out and
counted; a metric that only some runs computed says in how many. :mod:`~ttdnet.eval.summary_report`
renders and writes the outputs.
"""

import dataclasses
import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ttdnet import __version__
from ttdnet.errors import TtdnetError

from .summary_runs import Run, load_runs, optional_mapping


LOCATION_KEYS = {"file", "linear_heads"}
"""Backbone fields holding a local path: compared by file name (the same file elsewhere is the same weights)."""
SHARED_SETTINGS = {"backbone", "preprocessing"}
"""Parts of a metric's settings that repeat its backbone's record (compared once, under ``backbones``)."""
UNCHECKED_VERSIONS = {"ttdnet", "platform"}
"""Version fields not compared as library versions (ttdnet is a protocol setting; the platform is the machine)."""
CHECKED = (
    "the metrics computed",
    "trials and samples per run (n_trials, n_samples)",
    "ttdnet version",
    "seed",
    "real or random weights",
    "every backbone's weights (id, file name, SHA-256, implementation, preprocessing)",
    "every metric's settings (resize, eval size, SSIM window, n of the n-way, KID subsets, ...)",
)
STATISTICS = {
    "value": "each subject's value is the `value` of its metrics.json (the mean over its sample sets)",
    "mean": "mean over the subjects whose value is defined",
    "sd": "sample standard deviation over those subjects (ddof = 1); null with fewer than 2",
}
MISMATCH_FIX = (
    "evaluate every subject with the same settings and weights, or pass --allow_mismatch to summarise them "
    "anyway (the difference is then listed as a warning)"
)


@dataclasses.dataclass(frozen=True)
class Mismatch:
    """One setting in which a run differs from the reference (first) run."""

    setting: str
    runs: tuple[Run, Run]
    values: tuple[Any, Any]
    detail: str

    def message(self) -> str:
        a, b = self.runs
        return f"runs {a.name} and {b.name} differ in {self.setting}: {self.detail}"

    def to_dict(self) -> dict:
        return {
            "setting": self.setting,
            "runs": [run.label for run in self.runs],
            "values": list(self.values),
            "message": self.message(),
        }


def _flatten(tree: dict, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """``(dotted path, leaf)`` of a nested dict; an empty dict is a leaf."""
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            yield from _flatten(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def _leaves(tree: Any, skip: set[str] = frozenset()) -> dict[str, Any]:
    """The leaves of ``tree`` by path, shallow ones first; local paths as file names (:data:`LOCATION_KEYS`)."""
    if not isinstance(tree, dict):
        return {}
    items = [(path, value) for path, value in _flatten(tree) if path.split(".")[0] not in skip]
    items.sort(key=lambda item: item[0].count("."))
    return {
        path: Path(value).name if path.rsplit(".", 1)[-1] in LOCATION_KEYS and isinstance(value, str) else value
        for path, value in items
    }


def _show(value: Any, limit: int = 120) -> str:
    text = json.dumps(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _listing(names: list[str], limit: int = 4) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _run_settings(run: Run) -> dict[str, Any]:
    """The run-wide settings compared between runs, by name (backbone fields as ``backbones.<name>.<field>``)."""
    document = run.document
    settings = {
        "n_trials": document["n_trials"],
        "n_samples": document["n_samples"],
        "ttdnet_version": document["ttdnet_version"],
        "seed": document.get("seed"),
        "random_weights": optional_mapping(document, "config").get("random_weights", False),
    }
    for name, info in optional_mapping(document, "backbones").items():
        settings |= {f"backbones.{name}.{path}": value for path, value in _leaves(info).items()}
    return settings


def _pair_mismatches(a: Run, b: Run) -> list[Mismatch]:
    """Every setting in which ``b`` differs from ``a``; a metric's setting shared by several metrics once."""
    metrics_a, metrics_b = a.document["metrics"], b.document["metrics"]
    found = []
    only_a = [key for key in metrics_a if key not in metrics_b]
    only_b = [key for key in metrics_b if key not in metrics_a]
    if only_a or only_b:
        sides = [f"{run.label} alone has {_listing(keys)}" for run, keys in ((a, only_a), (b, only_b)) if keys]
        found.append(Mismatch("the metrics computed", (a, b), (only_a, only_b), "; ".join(sides)))
    settings_a, settings_b = _run_settings(a), _run_settings(b)
    for name, value in settings_a.items():
        if name in settings_b and settings_b[name] != value:
            detail = f"{_show(value)} vs {_show(settings_b[name])}"
            found.append(Mismatch(name, (a, b), (value, settings_b[name]), detail))
    grouped: dict[tuple[str, str, str], tuple[Any, Any, list[str]]] = {}
    for key in metrics_a:
        if key not in metrics_b:
            continue
        leaves_a = _leaves(metrics_a[key].get("settings"), SHARED_SETTINGS)
        leaves_b = _leaves(metrics_b[key].get("settings"), SHARED_SETTINGS)
        for path, value in leaves_a.items():
            if path in leaves_b and leaves_b[path] != value:
                group = grouped.setdefault((path, _show(value), _show(leaves_b[path])), (value, leaves_b[path], []))
                group[2].append(key)
    for (path, shown_a, shown_b), (value_a, value_b, keys) in grouped.items():
        setting = f"{path} (settings of {_listing(keys)})"
        found.append(Mismatch(setting, (a, b), (value_a, value_b), f"{shown_a} vs {shown_b}"))
    return found


def protocol_mismatches(runs: list[Run]) -> list[Mismatch]:
    """Every setting in which a run differs from the first run, run by run (see :data:`CHECKED`)."""
    return [mismatch for run in runs[1:] for mismatch in _pair_mismatches(runs[0], run)]


def run_notes(runs: list[Run]) -> list[str]:
    """Warnings that never stop a summary: library versions that differ, unscored trials, random weights."""
    notes = []
    reference = runs[0]
    versions = optional_mapping(reference.document, "versions")
    for run in runs[1:]:
        other = optional_mapping(run.document, "versions")
        differ = [
            f"{name} {versions.get(name)} vs {other.get(name)}"
            for name in sorted(set(versions) | set(other))
            if name not in UNCHECKED_VERSIONS and versions.get(name) != other.get(name)
        ]
        if differ:
            notes.append(
                f"runs {reference.label} and {run.label} used different library versions ({'; '.join(differ)}); "
                "the last digits of some values can differ."
            )
    for run in runs:
        missing = run.document["pairing"].get("missing_trials") or []
        if missing:
            notes.append(
                f"{run.label}: {len(missing)} ground-truth image(s) had no reconstruction and were not scored "
                "(--allow_missing)."
            )
        if run.document.get("warning"):
            notes.append(f"{run.label}: {run.document['warning']}")
    return notes


def metric_summary(key: str, runs: list[Run]) -> dict:
    """Mean, sd (ddof 1), min and max over subjects of one metric, with the per-subject values.

    Returns
    -------
    dict
        ``key``, ``name``, ``direction``, ``chance``, ``chance_key`` (of the first run that has it), ``mean``,
        ``sd``, ``min``, ``max`` (None without a defined value; ``sd`` None with fewer than 2), ``n`` (subjects
        with a defined value), ``n_runs`` (runs that computed it), ``undefined_in`` and ``missing_in`` (labels),
        ``partially_undefined_in`` (label to the count of undefined pairs behind a defined value) and
        ``per_subject`` (label to value, None where undefined; runs without the metric are absent).
    """
    having = [run for run in runs if key in run.document["metrics"]]
    entries = {run.label: run.document["metrics"][key] for run in having}
    first = entries[having[0].label]
    per_subject = {label: entry["value"] for label, entry in entries.items()}
    defined = np.array([value for value in per_subject.values() if value is not None], dtype=np.float64)
    n = len(defined)
    return {
        "key": key,
        "name": first.get("name", key),
        "direction": first.get("direction"),
        "chance": first.get("chance"),
        "chance_key": first.get("chance_key"),
        "mean": float(np.mean(defined)) if n else None,
        "sd": float(np.std(defined, ddof=1)) if n > 1 else None,
        "min": float(np.min(defined)) if n else None,
        "max": float(np.max(defined)) if n else None,
        "n": n,
        "n_runs": len(having),
        "undefined_in": [label for label, value in per_subject.items() if value is None],
        "missing_in": [run.label for run in runs if key not in run.document["metrics"]],
        "partially_undefined_in": {
            label: entry["undefined"]
            for label, entry in entries.items()
            if entry["value"] is not None and isinstance(entry.get("undefined"), int) and entry["undefined"] > 0
        },
        "per_subject": per_subject,
    }


def _run_record(run: Run) -> dict:
    pairing = run.document["pairing"]
    return {
        "label": run.label,
        "label_source": run.label_source,
        "metrics_file": str(run.metrics_file),
        "n_trials": run.document["n_trials"],
        "n_samples": run.document["n_samples"],
        "ttdnet_version": run.document["ttdnet_version"],
        "seed": run.document.get("seed"),
        "ground_truth": pairing.get("ground_truth"),
        "reconstructions": pairing.get("reconstructions"),
        "manifest": pairing.get("manifest"),
        "missing_trials": len(pairing.get("missing_trials") or []),
    }


def summarise(
    paths: Sequence[str | os.PathLike], labels: Sequence[str] | None = None, allow_mismatch: bool = False
) -> dict:
    """The ``summary.json`` content of several subjects' evaluations.

    Parameters
    ----------
    paths : sequence of path-like
        Evaluation folders or ``metrics.json`` files, one per subject.
    labels : sequence of str, optional
        Subject labels replacing those read from the paths (:func:`~ttdnet.eval.summary_runs.subject_label`).
    allow_mismatch : bool
        Summarise runs whose settings differ, listing each difference in ``warnings``.

    Returns
    -------
    dict
        ``ttdnet_version``, ``n_subjects``, ``subjects``, ``statistics`` (the definitions), ``runs``,
        ``protocol`` (what was checked, the reference run's counts, the mismatches), ``warnings`` and
        ``metrics`` (key to :func:`metric_summary`, in the order of the first run, then new keys of the others).

    Raises
    ------
    TtdnetError
        Any problem of :func:`load_runs`, or a protocol mismatch without ``allow_mismatch`` (the first one:
        both runs, the setting and both values).
    """
    runs = load_runs(paths, labels)
    mismatches = protocol_mismatches(runs)
    if mismatches and not allow_mismatch:
        raise TtdnetError(f"{mismatches[0].message()}; {MISMATCH_FIX}.")
    keys = list(dict.fromkeys(key for run in runs for key in run.document["metrics"]))
    reference = runs[0].document
    return {
        "ttdnet_version": __version__,
        "n_subjects": len(runs),
        "subjects": [run.label for run in runs],
        "statistics": STATISTICS,
        "runs": [_run_record(run) for run in runs],
        "protocol": {
            "checked": list(CHECKED),
            "reference": runs[0].label,
            "n_trials": reference["n_trials"],
            "n_samples": reference["n_samples"],
            "seed": reference.get("seed"),
            "ttdnet_version": reference["ttdnet_version"],
            "allow_mismatch": allow_mismatch,
            "mismatches": [mismatch.to_dict() for mismatch in mismatches],
        },
        "warnings": [mismatch.message() for mismatch in mismatches] + run_notes(runs),
        "metrics": {key: metric_summary(key, runs) for key in keys},
    }
