"""The figures of ``report.html``, drawn with matplotlib (Agg, no GUI) as inline SVG.

Two figures, from the ``metrics.json`` content alone (like the rest of the report, they compute no score):

- :func:`identification_figure`: the distribution of the per-trial scores of every identification metric
  (every per-trial metric with a fixed chance level), one histogram per metric, with the chance level
  (dashed) and the mean (solid).
- :func:`nway_figure`: n-way top-1 accuracy against the number of candidates n, with the 95% intervals and
  the chance level 1/n.

:func:`histograms_svg` and :func:`kway_accuracy_svg` draw any such data (a retrieval gallery's top-t
against k-way size too). matplotlib is imported inside them, so importing this module costs nothing. The
SVG is deterministic (no date, fixed id salt) and keeps text as text; each drawn element that a reader or a
test may look for has an ``id``: ``axes-<key>``, ``frame-<key>`` (the plot area), ``bin-<key>-<i>``,
``chance-<key>``, ``mean-<key>``; ``axes-kway`` and ``chance-t<t>``.
"""

import contextlib
import dataclasses
import io
import math
import textwrap
from collections.abc import Sequence

import numpy as np


HISTOGRAM_BINS = 20
SVG_SETTINGS = {"svg.fonttype": "none", "svg.hashsalt": "ttdnet", "font.size": 8}


@dataclasses.dataclass
class Histogram:
    """One panel of :func:`histograms_svg`: the per-trial scores of one metric.

    Attributes
    ----------
    key : str
        Used in the element ids.
    title : str
    scores : numpy.ndarray
        float ``(n,)`` defined per-trial scores, in ``[0, 1]``.
    chance : float
    """

    key: str
    title: str
    scores: np.ndarray
    chance: float


@dataclasses.dataclass
class KwayCurve:
    """One series of :func:`kway_accuracy_svg`: top-t accuracy at several k-way sizes.

    Attributes
    ----------
    label : str
    ways : list of int
        k of each point.
    values : list of float
        Accuracy at each k.
    intervals : list of (float, float) or None
        95% interval of each point (None: none drawn).
    t : int
        Top-t; the chance level is t / k.
    """

    label: str
    ways: list[int]
    values: list[float]
    intervals: list[tuple[float, float] | None]
    t: int = 1


def identification_figure(document: dict) -> str | None:
    """Histograms of the per-trial scores of every metric with a chance level, or None when there is none."""
    metrics = document["metrics"]
    panels = []
    for key, scores in document["per_trial"]["scores"].items():
        entry = metrics.get(key)
        defined = [value for value in scores if value is not None]
        if entry is None or entry.get("chance") is None or not defined:
            continue
        panels.append(Histogram(key, f"{entry['name']} ({key})", np.array(defined, dtype=np.float64), entry["chance"]))
    return histograms_svg(panels) if panels else None


def nway_figure(document: dict) -> str | None:
    """n-way top-1 against n (``nway_clip_top1_*``, ``nway_cls_top1``) with chance 1/n, or None without them."""
    metrics = document["metrics"]
    clip = sorted(
        (entry for key, entry in metrics.items() if key.startswith("nway_clip_top1_") and entry["value"] is not None),
        key=lambda entry: entry["settings"]["n"],
    )
    curves = []
    if clip:
        curves.append(_curve("CLIP, the N ground truths as candidates", clip))
    classifier = metrics.get("nway_cls_top1")
    if classifier and classifier["value"] is not None:
        curves.append(_curve(f"classifier, {classifier['settings']['classes']} classes as candidates", [classifier]))
    return kway_accuracy_svg(curves, "n-way top-1 identification") if curves else None


def _curve(label: str, entries: list[dict]) -> KwayCurve:
    return KwayCurve(
        label,
        [entry["settings"]["n"] for entry in entries],
        [entry["value"] for entry in entries],
        [tuple(entry["ci95"]) if entry.get("ci95") else None for entry in entries],
    )


def histograms_svg(panels: Sequence[Histogram], columns: int = 4) -> str:
    """One histogram per panel over [0, 1] (:data:`HISTOGRAM_BINS` bins), chance dashed, mean solid.

    Returns
    -------
    str
        An ``<svg>`` element (no XML prolog) to embed in HTML.
    """
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    columns = min(columns, len(panels))
    rows = math.ceil(len(panels) / columns)
    with _style():
        figure = Figure(figsize=(2.9 * columns, 2.2 * rows), layout="constrained")
        axes = figure.subplots(rows, columns, squeeze=False).ravel()
        edges = np.linspace(0.0, 1.0, HISTOGRAM_BINS + 1)
        for ax, panel in zip(axes, panels):
            ax.set_gid(f"axes-{panel.key}")
            ax.patch.set_gid(f"frame-{panel.key}")
            _, _, bars = ax.hist(np.clip(panel.scores, 0.0, 1.0), bins=edges, color="#4c78a8")
            for i, bar in enumerate(bars):
                bar.set_gid(f"bin-{panel.key}-{i}")
            ax.axvline(panel.chance, color="#d62728", linestyle="--", gid=f"chance-{panel.key}", label="chance")
            mean = float(panel.scores.mean())
            ax.axvline(mean, color="black", gid=f"mean-{panel.key}", label="mean")
            ax.set_xlim(0.0, 1.0)
            ax.set_title(_wrap(panel.title), fontsize=8)
            ax.set_xlabel(f"per-trial score (n = {len(panel.scores)}, mean {mean:.3f})")
            ax.set_ylabel("trials")
            ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        axes[0].legend(loc="upper left", frameon=False)
        for ax in axes[len(panels) :]:
            ax.set_visible(False)
        return _svg(figure)


def kway_accuracy_svg(curves: Sequence[KwayCurve], title: str) -> str:
    """Accuracy against k-way size (log₂ axis) with 95% intervals, and chance t/k dashed for each t.

    Returns
    -------
    str
        An ``<svg>`` element (no XML prolog).
    """
    from matplotlib.figure import Figure

    with _style():
        figure = Figure(figsize=(5.5, 3.4), layout="constrained")
        ax = figure.subplots()
        ax.set_gid("axes-kway")
        ways = sorted({k for curve in curves for k in curve.ways})
        for curve in curves:
            low = [value - ci[0] if ci else 0.0 for value, ci in zip(curve.values, curve.intervals)]
            high = [ci[1] - value if ci else 0.0 for value, ci in zip(curve.values, curve.intervals)]
            ax.errorbar(curve.ways, curve.values, yerr=[low, high], marker="o", capsize=3, label=curve.label)
        dense = np.geomspace(min(ways), max(ways), 200) if len(ways) > 1 else np.array(ways, dtype=np.float64)
        for t in sorted({curve.t for curve in curves}):
            marker = "" if len(ways) > 1 else "x"
            ax.plot(dense, t / dense, "--", color="#d62728", marker=marker, gid=f"chance-t{t}", label=f"chance {t}/n")
        ax.set_xscale("log", base=2)
        ax.set_xticks(ways, [str(k) for k in ways])
        ax.minorticks_off()
        ax.set_ylim(0.0, 1.02)
        ax.set_xlabel("candidates (n-way)")
        ax.set_ylabel("top-1 accuracy" if {curve.t for curve in curves} == {1} else "top-t accuracy")
        ax.set_title(title)
        ax.legend(frameon=False, fontsize=7)
        return _svg(figure)


@contextlib.contextmanager
def _style():
    import matplotlib

    with matplotlib.rc_context(SVG_SETTINGS):
        yield


def _wrap(text: str, width: int = 36) -> str:
    """``text`` broken into lines of at most ``width`` characters (a long metric name stays in its panel)."""
    return textwrap.fill(text, width, break_long_words=True)


def _svg(figure) -> str:
    """The figure as an ``<svg>`` element: deterministic (no date), without the XML prolog and doctype."""
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", metadata={"Date": None})
    text = buffer.getvalue()
    return text[text.index("<svg") :]
