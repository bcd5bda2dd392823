"""Render ``summary.md`` and a self-contained ``summary.html`` from ``summary.json``, and write the four as one set.

The reports only render values already in ``summary.json`` (:func:`ttdnet.eval.summary.summarise`); they
compute nothing. A summary is four files in ``--output_dir``: ``config.yaml``, ``summary.md``,
``summary.html`` and ``summary.json``, written as ``ttdnet evaluate`` writes its outputs
(:mod:`~ttdnet.eval.outputs`): only files that ``ttdnet evaluate-summary`` wrote are ever replaced
(:meth:`OutputSet.check`); the four are rendered into a hidden staging folder
(``.evaluation-summary.ttdnet-<pid>-<host>-partial-*``), the previous ``summary.json`` is removed, the others
are moved in and ``summary.json`` last, so a ``summary.json`` always belongs to the complete set beside it.
"""

import html
import os
from pathlib import Path

from .outputs import OutputSet
from .report import code_html, format_number


MARKDOWN_TITLE = "# Evaluation summary"
HTML_TITLE = "ttdnet evaluation summary"
STYLE = (
    "body{font-family:sans-serif;margin:2em;max-width:1400px}table{border-collapse:collapse;margin-bottom:1.5em}"
    "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}td:first-child,th:first-child{text-align:left}"
    ".wide{overflow-x:auto}.warning{color:#a30}"
)


def mean_sd_text(entry: dict) -> str:
    """``"0.8123 ± 0.0412"``; the mean alone when the SD is undefined (one subject); "undefined" with no value."""
    if entry["mean"] is None:
        return "undefined"
    return format_number(entry["mean"]) + (f" ± {format_number(entry['sd'])}" if entry["sd"] is not None else "")


def subjects_text(entry: dict, n_subjects: int) -> str:
    """How many subjects the mean is over: ``"3"``, or ``"2 of 3"`` when some are undefined or missing."""
    return str(entry["n"]) if entry["n"] == n_subjects else f"{entry['n']} of {n_subjects}"


def baseline_text(entry: dict, metrics: dict) -> str:
    """The chance level, or the mean of the shuffled-pair baseline over subjects, or "–"."""
    if entry["chance"] is not None:
        return format_number(entry["chance"])
    baseline = metrics.get(entry["chance_key"] or "")
    return f"{mean_sd_text(baseline)} (shuffled)" if baseline else "–"


def _value(value) -> str:
    return "undefined" if value is None else format_number(value)


def main_keys(document: dict) -> list[str]:
    """The metrics of the tables: every key but the shuffled-pair baselines (shown beside their metric)."""
    return [key for key in document["metrics"] if not key.endswith("_shuffled")]


def protocol_text(document: dict) -> str:
    """One sentence on the protocol check and its outcome."""
    protocol = document["protocol"]
    text = f"every run was compared with {protocol['reference']} in: {'; '.join(protocol['checked'])}."
    if protocol["mismatches"]:
        return text + f" {len(protocol['mismatches'])} difference(s), allowed by --allow_mismatch: see Warnings."
    return text + " All runs agree."


def notes(document: dict) -> list[str]:
    """Per metric: subjects left out (undefined or not computed) and subjects whose value has undefined pairs."""
    total = document["n_subjects"]
    lines = []
    missing: dict[tuple[str, ...], list[str]] = {}
    for key, entry in document["metrics"].items():
        if entry["missing_in"]:
            missing.setdefault(tuple(entry["missing_in"]), []).append(f"`{key}`")
    for labels, keys in missing.items():
        lines.append(
            f"{', '.join(keys)}: computed in {total - len(labels)} of {total} runs (not for {', '.join(labels)}); "
            "the mean and SD are over those runs only."
        )
    for key, entry in document["metrics"].items():
        if entry["undefined_in"]:
            lines.append(
                f"`{key}`: undefined (no defined pair) for {', '.join(entry['undefined_in'])}; left out of the "
                "mean and SD."
            )
        if entry["partially_undefined_in"]:
            counts = ", ".join(f"{label} ({count})" for label, count in entry["partially_undefined_in"].items())
            lines.append(f"`{key}`: undefined pairs left out of the value of {counts}; see those runs' reports.")
    return lines


def _cell(text) -> str:
    """Text for a Markdown table cell."""
    return str(text).replace("|", "\\|")


def render_markdown(document: dict) -> str:
    """``summary.md``: mean ± SD per metric, the per-subject values, warnings, notes and the runs."""
    metrics = document["metrics"]
    protocol = document["protocol"]
    keys = main_keys(document)
    lines = [
        MARKDOWN_TITLE,
        "",
        f"- Subjects: {document['n_subjects']} ({', '.join(document['subjects'])}); trials per subject: "
        f"{protocol['n_trials']}; samples per trial: {protocol['n_samples']}; seed {protocol['seed']}; "
        f"evaluated with ttdnet {protocol['ttdnet_version']}",
        "- Mean ± SD over subjects. SD is the sample standard deviation (ddof = 1) over the subjects whose value "
        "is defined; with fewer than 2 only the mean is shown. Each subject's value is the `value` of its "
        "metrics.json (the mean over its sample sets).",
        f"- Protocol: {protocol_text(document)}",
        "",
        "## Mean ± SD over subjects",
        "",
        "| Metric | Key | Mean ± SD | Subjects | Min | Max | Chance / baseline | Better |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for key in keys:
        entry = metrics[key]
        lines.append(
            f"| {_cell(entry['name'])} | `{key}` | {mean_sd_text(entry)} | "
            f"{subjects_text(entry, document['n_subjects'])} | {_value(entry['min'])} | {_value(entry['max'])} | "
            f"{baseline_text(entry, metrics)} | {entry['direction'] or '–'} |"
        )
    lines += [
        "",
        "## Per subject",
        "",
        "| Subject | Trials | Samples | " + " | ".join(f"`{key}`" for key in keys) + " |",
        "|---|---|---|" + "---|" * len(keys),
    ]
    for run in document["runs"]:
        label = run["label"]
        cells = [
            _value(metrics[key]["per_subject"][label]) if label in metrics[key]["per_subject"] else "–" for key in keys
        ]
        lines.append(f"| {_cell(label)} | {run['n_trials']} | {run['n_samples']} | " + " | ".join(cells) + " |")
    lines.append("")
    if document["warnings"]:
        lines += ["## Warnings", "", *(f"- {_cell(line)}" for line in document["warnings"]), ""]
    note_lines = notes(document)
    if note_lines:
        lines += ["## Notes", "", *(f"- {line}" for line in note_lines), ""]
    lines += ["## Runs", "", "| Subject | Label from | metrics.json |", "|---|---|---|"]
    lines += [
        f"| {_cell(run['label'])} | {run['label_source']} | {_cell(run['metrics_file'])} |" for run in document["runs"]
    ]
    lines += ["", "Per-metric settings, per-trial scores and versions are in each run's `metrics.json`.", ""]
    return "\n".join(lines)


def _row(cells: list[str], tag: str = "td") -> str:
    return "<tr>" + "".join(f"<{tag}>{cell}</{tag}>" for cell in cells) + "</tr>"


def render_html(document: dict) -> str:
    """``summary.html``: the tables of ``summary.md`` in one self-contained page (no external resources)."""
    metrics = document["metrics"]
    protocol = document["protocol"]
    keys = main_keys(document)
    escape = html.escape
    parts = [
        "<!DOCTYPE html>",
        f'<html lang="en"><head><meta charset="utf-8"><title>{HTML_TITLE}</title><style>{STYLE}</style></head><body>',
        "<h1>Evaluation summary</h1>",
        f"<p>{document['n_subjects']} subjects ({escape(', '.join(document['subjects']))}); "
        f"{protocol['n_trials']} trials per subject, {protocol['n_samples']} sample(s) per trial; seed "
        f"{protocol['seed']}; evaluated with ttdnet {escape(str(protocol['ttdnet_version']))}.</p>",
        "<p>Mean ± SD over subjects. SD is the sample standard deviation (ddof = 1) over the subjects whose value "
        "is defined; with fewer than 2 only the mean is shown. Each subject's value is the <code>value</code> of "
        "its metrics.json (the mean over its sample sets).</p>",
        f"<p>Protocol: {escape(protocol_text(document))}</p>",
        "<h2>Mean ± SD over subjects</h2><table>",
        _row(["Metric", "Mean ± SD", "Subjects", "Min", "Max", "Chance / baseline", "Better"], "th"),
    ]
    for key in keys:
        entry = metrics[key]
        parts.append(
            _row(
                [
                    f"{escape(entry['name'])} <code>{escape(key)}</code>",
                    mean_sd_text(entry),
                    subjects_text(entry, document["n_subjects"]),
                    _value(entry["min"]),
                    _value(entry["max"]),
                    escape(baseline_text(entry, metrics)),
                    escape(entry["direction"] or "–"),
                ]
            )
        )
    parts += [
        "</table>",
        '<h2>Per subject</h2><div class="wide"><table>',
        _row(["Subject", "Trials", "Samples", *(f"<code>{escape(key)}</code>" for key in keys)], "th"),
    ]
    for run in document["runs"]:
        label = run["label"]
        values = [
            _value(metrics[key]["per_subject"][label]) if label in metrics[key]["per_subject"] else "–" for key in keys
        ]
        parts.append(_row([escape(label), str(run["n_trials"]), str(run["n_samples"]), *values]))
    parts.append("</table></div>")
    if document["warnings"]:
        items = "".join(f'<li class="warning">{escape(line)}</li>' for line in document["warnings"])
        parts.append(f"<h2>Warnings</h2><ul>{items}</ul>")
    note_lines = notes(document)
    if note_lines:
        parts.append("<h2>Notes</h2><ul>" + "".join(f"<li>{code_html(line)}</li>" for line in note_lines) + "</ul>")
    parts += ["<h2>Runs</h2><table>", _row(["Subject", "Label from", "metrics.json"], "th")]
    parts += [
        _row([escape(run["label"]), escape(run["label_source"]), escape(run["metrics_file"])])
        for run in document["runs"]
    ]
    parts.append("</table><p>Settings and versions: <code>summary.json</code>.</p></body></html>")
    return "\n".join(parts)


SUMMARY_OUTPUTS = OutputSet(
    command="evaluate-summary",
    document="summary.json",
    document_keys=("runs", "protocol", "metrics", "ttdnet_version"),
    markdown="summary.md",
    markdown_title=MARKDOWN_TITLE,
    html="summary.html",
    html_title=HTML_TITLE,
    staging="evaluation-summary",
    what="a summary",
)
"""The files of one summary, written as an evaluation's are (:mod:`~ttdnet.eval.outputs`)."""


def write_summary(output_dir: str | os.PathLike, document: dict, config) -> dict[str, Path]:
    """Write ``summary.json``, ``summary.md``, ``summary.html`` and ``config.yaml`` into ``output_dir`` as one set.

    Returns
    -------
    dict
        ``summary``, ``markdown``, ``html`` and ``config`` paths.
    """
    return SUMMARY_OUTPUTS.write(output_dir, document, config, render_markdown(document), render_html(document))
