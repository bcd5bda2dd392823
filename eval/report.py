"""Build ``metrics.json`` (the source of truth) and render ``report.md`` and a self-contained ``report.html``.

The Markdown and HTML reports only render values already in ``metrics.json``; they compute nothing. The
HTML embeds its images as base64 JPEG data URIs and its plots (:mod:`~ttdnet.eval.plots`) as inline SVG, so
the file can be mailed or archived alone. An undefined value (``None``) is shown as "undefined", with its
reason in the notes. :mod:`~ttdnet.eval.outputs` writes the files.
"""

import base64
import html
import io
import os

import numpy as np

from ttdnet import __version__
from ttdnet.versions import package_versions as installed_versions
from ttdnet.versions import runtime_versions

from .images import read_image
from .metric_entries import json_number
from .pairing import PairedSet
from .plots import identification_figure, nway_figure
from .suite import SuiteResult


PACKAGES = (
    "torch",
    "torchvision",
    "numpy",
    "scipy",
    "scikit-image",
    "torch-fidelity",
    "lpips",
    "open_clip_torch",
    "transformers",
    "pillow",
)
MARKDOWN_TITLE = "# Evaluation report"
HTML_TITLE = "ttdnet evaluation report"
CI_METHODS = {"wilson": "Wilson", "bootstrap": "bootstrap"}
CI_EXPLANATIONS = {
    "wilson": "Wilson = Wilson score interval of the share of successes, each trial's score being one 0/1 outcome",
    "bootstrap": "bootstrap = percentile bootstrap of the mean over trials ({resamples} resamples, "
    "numpy default_rng({seed}))",
}
RANKING_PREFERENCE = ("clip", "alexnet5", "inception", "alexnet2", "pairid_lpips_alex", "pairid_pcc", "pcc", "pixcorr")
SECTIONS = (
    (
        "MindEye reconstruction suite",
        ("pixcorr", "ssim", "alexnet2", "alexnet5", "inception", "clip", "effnet_b", "swav"),
    ),
    ("Raw values (TTD-net suite)", ("mse", "pcc", "ssim_rgb", "lpips_alex")),
    ("Pair-wise identification (TTD-net suite)", ("pairid_mse", "pairid_pcc", "pairid_ssim_rgb", "pairid_lpips_alex")),
    ("Distribution metrics", ("fid", "kid_mean", "kid_std")),
    ("n-way identification", ("nway_cls_top1", "nway_cls_top1_mc", "nway_clip_top1_")),
)


def package_versions() -> dict[str, str]:
    """Installed versions of the libraries that change the numbers."""
    return {"ttdnet": __version__, **runtime_versions(), **installed_versions(PACKAGES)}


def build_metrics_document(result: SuiteResult, pairs: PairedSet, config: dict) -> dict:
    """The ``metrics.json`` content.

    Returns
    -------
    dict
        ``metrics`` (key to entry, as listed in ``docs/evaluation.md``), ``per_trial`` (trial ids and per-trial scores,
        mean over samples and sample 0; None where undefined), ``pairing``, ``backbones``, ``settings``,
        ``versions``, ``seed`` and ``config``.
    """
    n = pairs.n_trials
    seed = result.settings.seed
    metrics = {key: value.to_dict(seed, n) for key, value in result.metrics.items()}
    scores = {
        key: [json_number(v) for v in value.per_trial]
        for key, value in result.metrics.items()
        if value.per_trial is not None
    }
    scores0 = {
        key: [json_number(v) for v in value.per_trial_sample0]
        for key, value in result.metrics.items()
        if value.per_trial_sample0 is not None
    }
    settings = {
        "eval_size": result.settings.eval_size,
        "batch_size": result.settings.batch_size,
        "device": result.settings.device,
        "nway_n": result.settings.nway_n,
        "nway_trials": result.settings.nway_trials,
        "nway_clip_ns": list(result.settings.nway_clip_ns),
        "kid_subsets": result.settings.kid_subsets,
        "kid_subset_size": result.settings.kid_subset_size,
        "shuffled_pair_derangement": result.derangement,
    }
    return {
        "ttdnet_version": __version__,
        "n_trials": n,
        "n_samples": pairs.n_samples,
        "sample_ids": pairs.sample_ids,
        "seed": seed,
        "metrics": metrics,
        "per_trial": {"trial_ids": pairs.trial_ids, "scores": scores, "scores_sample0": scores0},
        "pairing": pairs.source
        | {
            "ground_truth_files": [str(p) for p in pairs.gt_paths],
            "reconstruction_files": [[str(p) for p in row] for row in pairs.rec_paths],
            "missing_trials": pairs.missing_trials,
        },
        "backbones": result.backbones,
        "settings": settings,
        "versions": package_versions(),
        "config": config,
    }


def format_number(value) -> str:
    """A score as the reports print it: "–" for None, four significant decimals for a float."""
    if value is None:
        return "–"
    if isinstance(value, float):
        if value != 0 and (abs(value) >= 1000 or abs(value) < 1e-3):
            return f"{value:.3e}"
        return f"{value:.4f}"
    return str(value)


def _value_text(value) -> str:
    """A value: "undefined" for None (the reason is in the notes)."""
    return "undefined" if value is None else format_number(value)


def value_text(entry: dict) -> str:
    """An entry's value as the reports and the command line show it.

    With the count of defined pairs when some are undefined (``"0.8123 (7 of 10 pairs defined)"``), and
    "undefined" when none is.
    """
    text = _value_text(entry["value"])
    if entry.get("undefined") and entry["value"] is not None:
        total = entry["n"] * entry["n_samples"]
        text += f" ({total - entry['undefined']} of {total} pairs defined)"
    return text


def _ci_text(entry: dict) -> str:
    ci = entry.get("ci95")
    return f"[{format_number(ci[0])}, {format_number(ci[1])}]" if ci else "–"


def _ci_method_text(entry: dict) -> str:
    return CI_METHODS.get(entry.get("ci95_method"), "–")


def ci_explanation(document: dict) -> str | None:
    """The sentence under the tables that says how the intervals were made (None when no entry has one)."""
    settings = {
        entry["ci95_method"]: entry["ci95_settings"] for entry in document["metrics"].values() if entry.get("ci95")
    }
    if not settings:
        return None
    parts = [CI_EXPLANATIONS[method].format(**settings[method]) for method in CI_EXPLANATIONS if method in settings]
    return "95% CI over trials, within the metric's range (column CI method): " + "; ".join(parts) + "."


def _chance_text(entry: dict, metrics: dict) -> str:
    if entry.get("chance") is not None:
        return format_number(entry["chance"])
    baseline = entry.get("chance_key")
    if baseline and baseline in metrics:
        return f"{value_text(metrics[baseline])} (shuffled)"
    return "–"


def notes(document: dict) -> list[str]:
    """The report's notes, one per line: undefined values, caveats and Monte-Carlo intervals."""
    lines = []
    for entry in document["metrics"].values():
        if entry.get("undefined_reason"):
            lines.append(f"`{entry['key']}`: {entry['undefined_reason']}")
        if entry.get("caveat"):
            lines.append(f"`{entry['key']}`: {entry['caveat']}")
        if entry.get("mc_ci95"):
            low, high = entry["mc_ci95"]
            lines.append(
                f"`{entry['key']}`: Monte-Carlo 95% interval [{format_number(low)}, {format_number(high)}] "
                f"({entry['settings'].get('trials')} draws per trial; Wilson score interval at the effective "
                "number of draws)."
            )
    return lines


def _rows(document: dict) -> list[tuple[str, list[dict]]]:
    metrics = document["metrics"]
    out = []
    for title, prefixes in SECTIONS:
        keys = [
            key
            for key in metrics
            if not key.endswith("_shuffled")
            and any(key == p or (p.endswith("_") and key.startswith(p)) for p in prefixes)
        ]
        if keys:
            out.append((title, [metrics[key] for key in keys]))
    return out


def ranking_key(document: dict) -> str | None:
    """The per-trial score used for the best/worst lists: CLIP 2-way when computed, else the first available.

    A score with no defined trial is skipped.
    """
    scores = document["per_trial"]["scores"]
    return next((key for key in RANKING_PREFERENCE if key in scores and any(v is not None for v in scores[key])), None)


def best_and_worst(document: dict, count: int = 5) -> tuple[str | None, list[int], list[int]]:
    """Indices of the ``count`` best and worst trials by :func:`ranking_key` (ties by trial order).

    Trials whose score is undefined are in neither list.
    """
    key = ranking_key(document)
    if key is None:
        return None, [], []
    scores = document["per_trial"]["scores"][key]
    defined = np.array([i for i, value in enumerate(scores) if value is not None])
    values = np.array([scores[i] for i in defined], dtype=np.float64)
    if document["metrics"][key]["direction"] == "lower":
        values = -values
    order = defined[np.argsort(-values, kind="stable")]
    count = min(count, len(order) // 2 or 1)
    return key, [int(i) for i in order[:count]], [int(i) for i in order[::-1][:count]]


def render_markdown(document: dict) -> str:
    """``report.md``: the metrics table with chance levels, then the caveats and the settings."""
    metrics = document["metrics"]
    lines = [
        MARKDOWN_TITLE,
        "",
        f"- Trials: {document['n_trials']}; samples per trial: {document['n_samples']} "
        f"({', '.join(document['sample_ids'])})",
        f"- Ground truth: {document['pairing'].get('ground_truth')} ({document['pairing'].get('ground_truth_kind')}); "
        f"pairing by {document['pairing'].get('mode')}",
        f"- Seed: {document['seed']}; ttdnet {document['ttdnet_version']}",
        "- Value = mean over sample sets of the score of each set (sample s of every trial vs all N ground truths); "
        "sample 0 is shown beside it. The max over samples is never reported.",
        "",
    ]
    for title, entries in _rows(document):
        lines += [
            f"## {title}",
            "",
            "| Metric | Key | Value | Sample 0 | Std | 95% CI | CI method | Chance / baseline | Better |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for entry in entries:
            lines.append(
                f"| {entry['name']} | `{entry['key']}` | {value_text(entry)} | "
                f"{_value_text(entry['value_sample0'])} | {format_number(entry['std'])} | {_ci_text(entry)} | "
                f"{_ci_method_text(entry)} | {_chance_text(entry, metrics)} | {entry['direction']} |"
            )
        lines.append("")
    explanation = ci_explanation(document)
    if explanation:
        lines += [explanation, ""]
    note_lines = notes(document)
    if note_lines:
        lines += ["## Notes", "", *(f"- {line}" for line in note_lines), ""]
    key, best, worst = best_and_worst(document)
    if key:
        ids = document["per_trial"]["trial_ids"]
        scores = document["per_trial"]["scores"][key]
        lines += [
            f"## Best and worst trials by `{key}`",
            "",
            "| Rank | Best | Score | Worst | Score |",
            "|---|---|---|---|---|",
        ]
        for rank, (b, w) in enumerate(zip(best, worst), start=1):
            lines.append(f"| {rank} | {ids[b]} | {format_number(scores[b])} | {ids[w]} | {format_number(scores[w])} |")
        lines.append("")
    lines += ["## Definitions", ""]
    lines += [f"- `{entry['key']}` ({entry['name']}): {entry['definition']}" for entry in metrics.values()]
    lines += [
        "",
        "Settings, weights, per-trial scores and versions are in `metrics.json`; images and plots in `report.html`.",
        "",
    ]
    return "\n".join(lines)


def _thumbnail(path: str | os.PathLike, size: int) -> str:
    from PIL import Image

    image = Image.fromarray(read_image(path))
    image.thumbnail((size, size), Image.Resampling.BICUBIC)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def code_html(text: str) -> str:
    """Escaped HTML of a note, with its `backquoted` keys as ``<code>``."""
    pieces = html.escape(text).split("`")
    return "".join(f"<code>{piece}</code>" if i % 2 else piece for i, piece in enumerate(pieces))


def _figure(src: str, caption: str, alt: str) -> str:
    caption, alt = html.escape(caption), html.escape(alt)
    return f'<figure><img src="{src}" alt="{alt}"><figcaption title="{alt}">{caption}</figcaption></figure>'


def _style(thumbnail_size: int) -> str:
    """The page's CSS. Each image sits in a fixed-width column and a trial id wraps (at most 4 lines, the full
    id in the label's ``title``) inside a fixed-width label, so a long trial id cannot push the images out of line;
    a score shown under it stays visible."""
    return (
        "<style>body{font-family:sans-serif;margin:2em;max-width:1200px}"
        "table{border-collapse:collapse;margin-bottom:1.5em}"
        "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}td:first-child,th:first-child{text-align:left}"
        ".row{display:flex;align-items:center;gap:6px;margin:4px 0}"
        ".label{flex:0 0 16em;width:16em;font-size:0.85em;overflow-wrap:anywhere}"
        ".trial{overflow:hidden;display:-webkit-box;-webkit-box-orient:vertical;-webkit-line-clamp:4;line-clamp:4}"
        f"figure{{margin:0;flex:0 0 {thumbnail_size}px;width:{thumbnail_size}px}}"
        "figcaption{font-size:0.7em;text-align:center;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}"
        "img{display:block;margin:0 auto}.plot svg{max-width:100%;height:auto}</style>"
    )


def _plots_html(document: dict) -> list[str]:
    """The plot sections: per-trial identification scores and n-way accuracy against n (when computed)."""
    parts = []
    histograms = identification_figure(document)
    if histograms:
        parts += [
            "<h2>Per-trial identification scores</h2>",
            "<p>Histogram of each trial's score (mean over samples) per metric; dashed red: chance; "
            "black: the mean over trials.</p>",
            f'<div class="plot">{histograms}</div>',
        ]
    nway = nway_figure(document)
    if nway:
        parts += [
            "<h2>n-way identification against n</h2>",
            "<p>Top-1 accuracy of each n-way score with its 95% interval; dashed red: chance 1/n.</p>",
            f'<div class="plot">{nway}</div>',
        ]
    return parts


def render_html(
    document: dict, pairs: PairedSet, grid_trials: int = 12, thumbnail_size: int = 128, max_samples: int = 4
) -> str:
    """``report.html``: the metrics table, the plots, a GT/reconstruction grid and the best and worst trials."""
    metrics = document["metrics"]
    cache: dict[str, str] = {}

    def thumb(path) -> str:
        key = str(path)
        if key not in cache:
            cache[key] = _thumbnail(path, thumbnail_size)
        return cache[key]

    def trial_row(i: int, score: float | None = None) -> str:
        trial = pairs.trial_ids[i]
        cells = [_figure(thumb(pairs.gt_paths[i]), "GT", f"GT {trial}")]
        for s, sample in enumerate(pairs.sample_ids[:max_samples]):
            cells.append(_figure(thumb(pairs.rec_paths[s][i]), f"sample {sample}", f"{trial} sample {sample}"))
        label = f'<div class="trial">{html.escape(trial)}</div>'
        if score is not None:
            label += f'<div class="score">{format_number(score)}</div>'
        title = html.escape(trial if score is None else f"{trial}: {format_number(score)}")
        return f'<div class="row"><div class="label" title="{title}">{label}</div>{"".join(cells)}</div>'

    parts = [
        "<!DOCTYPE html>",
        f'<html lang="en"><head><meta charset="utf-8"><title>{HTML_TITLE}</title>',
        _style(thumbnail_size) + "</head><body>",
        "<h1>Evaluation report</h1>",
        f"<p>{document['n_trials']} trials, {document['n_samples']} sample(s) per trial. Ground truth: "
        f"{html.escape(str(document['pairing'].get('ground_truth')))}. Seed {document['seed']}. "
        "Values are means over sample sets; "
        "sample 0 beside them; never the max over samples.</p>",
    ]
    for title, entries in _rows(document):
        parts.append(
            f"<h2>{html.escape(title)}</h2><table><tr><th>Metric</th><th>Value</th><th>Sample 0</th><th>Std</th>"
            "<th>95% CI</th><th>CI method</th><th>Chance / baseline</th><th>Better</th></tr>"
        )
        for entry in entries:
            parts.append(
                f'<tr><td title="{html.escape(entry["definition"])}">'
                f"{html.escape(entry['name'])} <code>{entry['key']}</code></td>"
                f"<td>{value_text(entry)}</td><td>{_value_text(entry['value_sample0'])}</td>"
                f"<td>{format_number(entry['std'])}</td><td>{_ci_text(entry)}</td><td>{_ci_method_text(entry)}</td>"
                f"<td>{html.escape(_chance_text(entry, metrics))}</td><td>{entry['direction']}</td></tr>"
            )
        parts.append("</table>")
    explanation = ci_explanation(document)
    if explanation:
        parts.append(f"<p>{html.escape(explanation)}</p>")
    note_lines = notes(document)
    if note_lines:
        parts.append("<h2>Notes</h2><ul>" + "".join(f"<li>{code_html(line)}</li>" for line in note_lines) + "</ul>")
    parts += _plots_html(document)
    parts.append(f"<h2>Ground truth and reconstructions (first {min(grid_trials, pairs.n_trials)} trials)</h2>")
    parts += [trial_row(i) for i in range(min(grid_trials, pairs.n_trials))]
    key, best, worst = best_and_worst(document)
    if key:
        scores = document["per_trial"]["scores"][key]
        name = metrics[key]["name"]
        parts.append(f"<h2>Best trials by {html.escape(name)}</h2>")
        parts += [trial_row(i, scores[i]) for i in best]
        parts.append(f"<h2>Worst trials by {html.escape(name)}</h2>")
        parts += [trial_row(i, scores[i]) for i in worst]
    parts.append(
        "<p>Definitions, settings, weights and per-trial scores: <code>metrics.json</code>.</p></body></html>"
    )
    return "\n".join(parts)
