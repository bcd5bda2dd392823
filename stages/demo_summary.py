"""The demo's closing summary: retrieval against chance, reconstructions against their shuffled baselines.

Everything is read from the files the steps wrote (``retrieval/results.json``, ``evaluate/metrics.json``), so
the summary says exactly what the reports say. Reconstruction scores are the weight-free ones ``ttdnet
evaluate`` computes without any downloaded network:

* PixCorr, SSIM, MSE, PCC and SSIM (RGB), each against the same score on **shuffled pairs** (every
  reconstruction compared with another trial's ground truth): the value a reconstruction that ignores its
  EEG would get;
* pair-wise identification on MSE, PCC and SSIM (RGB): how often a reconstruction is closer to its own ground
  truth than to another trial's, against chance 0.5.
"""

import json
from pathlib import Path


RECONSTRUCTION_SCORES = ("pixcorr", "ssim", "mse", "pcc", "ssim_rgb")
IDENTIFICATION_SCORES = ("pairid_mse", "pairid_pcc", "pairid_ssim_rgb")


def retrieval_rows(out: Path) -> list[dict]:
    """Top-1 and top-5 of the retrieval run's first subject, with chance for its test gallery."""
    from ttdnet.data import read_image_metadata
    from ttdnet.data.things_eeg2 import locate_image_set

    results = json.loads((out / "retrieval" / "results.json").read_text(encoding="utf-8"))
    gallery = read_image_metadata(locate_image_set(out / "things-eeg2")).n_rows("test")
    test = results["subjects"][0]["test"]
    return [
        {
            "score": f"retrieval top-{k} ({gallery}-way)",
            "value": test[f"top{k}"],
            "baseline": min(k, gallery) / gallery,
            "baseline_kind": "chance",
            "better": test[f"top{k}"] > min(k, gallery) / gallery,
        }  # fmt: skip
        for k in (1, 5)
    ]


def reconstruction_rows(out: Path) -> list[dict]:
    """Weight-free reconstruction scores against their shuffled-pair baselines, identification against 0.5."""
    metrics = json.loads((out / "evaluate" / "metrics.json").read_text(encoding="utf-8"))["metrics"]
    rows = []
    for key in RECONSTRUCTION_SCORES + IDENTIFICATION_SCORES:
        if key not in metrics:
            continue
        entry = metrics[key]
        shuffled = metrics.get(f"{key}_shuffled")
        baseline = shuffled["value"] if shuffled else entry["chance"]
        higher = entry["direction"] == "higher"
        value = entry["value"]  # None: undefined (a correlation on a constant image), never better
        defined = value is not None and baseline is not None
        rows.append(
            {
                "score": entry["name"],
                "value": entry["value"],
                "baseline": baseline,
                "baseline_kind": "shuffled pairs" if shuffled else "chance",
                "better": defined and (value > baseline if higher else value < baseline),
            }  # fmt: skip
        )
    return rows


def demo_summary(out: Path, state: dict, seconds_this_run: float) -> dict:
    """Scores, step times and where the report is."""
    return {
        "retrieval": retrieval_rows(out),
        "reconstruction": reconstruction_rows(out),
        "step_seconds": {name: record.get("seconds") for name, record in state["steps"].items()},
        "seconds_this_run": round(seconds_this_run, 1),
        "report": str(out / "evaluate" / "report.html"),
        "images": str(out / "generate" / "grid.png"),
    }


def number(value: float | None) -> str:
    """A score to four decimals, or "undefined" for a score evaluate reported as null."""
    return "undefined" if value is None else f"{value:.4f}"


def summary_text(summary: dict) -> str:
    """The summary as a Markdown table plus the report's location."""
    lines = ["# ttdnet demo: synthetic THINGS-EEG2, tiny models", "", "| score | value | baseline | better |"]
    lines.append("|---|---|---|---|")
    for row in summary["retrieval"] + summary["reconstruction"]:
        lines.append(
            f"| {row['score']} | {number(row['value'])} | {number(row['baseline'])} ({row['baseline_kind']}) | "
            f"{'yes' if row['better'] else 'no'} |"
        )
    steps = ", ".join(
        f"{name} {seconds} s" for name, seconds in summary["step_seconds"].items() if seconds is not None
    )
    lines += [
        "",
        f"Step times: {steps}. This run: {summary['seconds_this_run']} s.",
        f"Report with the ground-truth / reconstruction grid: {summary['report']}",
        f"Generated images: {summary['images']}",
    ]
    return "\n".join(lines)


def write_summary(out: Path, summary: dict) -> str:
    """Write ``summary.json`` and ``summary.md`` into the demo folder; return the text."""
    from ttdnet.io import atomic_write_json, atomic_write_text

    text = summary_text(summary)
    atomic_write_json(out / "summary.json", summary)
    atomic_write_text(out / "summary.md", text + "\n")
    return text
