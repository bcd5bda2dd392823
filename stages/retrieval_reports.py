"""The reports of ``ttdnet train-retrieval``: the protocol next to every number, per subject and summarised.

Rows are folds: one per subject, or for ``finetune`` one per subject and training ratio (0 = the start model).
"""

from pathlib import Path

import numpy as np

from ttdnet.data import ThingsEEG2Dataset
from ttdnet.io import atomic_write_json, atomic_write_text
from ttdnet.stages.feature_file import FeatureFile


PROTOCOL_NAMES = {
    "intra": "intra-subject",
    "inter": "inter-subject (leave-one-subject-out)",
    "finetune": "fine-tuned inter-subject (an inter fold's model, fine-tuned on part of the held-out subject's "
    "training concepts)",
}


def protocol_record(config, features: FeatureFile, dataset: ThingsEEG2Dataset) -> dict:
    """Everything that defines the numbers, written next to them (see docs/retrieval.md)."""
    settings = features.settings
    return {
        "protocol": PROTOCOL_NAMES[config.protocol],
        "channels": f"{dataset.n_chans} ({', '.join(dataset.ch_names)})",
        "sfreq_hz": dataset.sfreq,
        "window_s": [float(dataset.times[0]), float(dataset.times[-1] + 1 / dataset.sfreq)],
        "n_times": dataset.n_times,
        "train_averaging": "mean of repetitions" if config.train_average_repetitions else "single repetitions",
        "test_averaging": config.test_averaging,
        "mvnn_fit_partition": "as in the data files (not recorded by them; see their preprocessing provenance)",
        "image_feature_space": {
            "backbone": settings.get("backbone", "user-supplied"),
            "weights": settings.get("weights", "unknown"),
            "layers": features.layer_names,
            "pooling": settings.get("pooling"),
            "normalized": features.normalized,
            "file": str(features.path),
        },
        "layer_mode": config.layer_mode,
        "gallery": f"the {len(features.paths['test'])} test stimulus images (not concept centres)",
        "model_selection": (
            f"best validation {config.selection_metric} on held-out training concepts "
            f"(val_fraction={config.val_fraction}, split_seed={config.split_seed}; galleries of one image per "
            "held-out concept, like the test gallery); test scored once"
            if config.model_selection == "validation"
            else "last epoch; test scored once"
        ),
        "encoder": config.encoder + (f" from {config.encoder_pretrained}" if config.encoder_pretrained else ""),
        "epochs": config.num_train_epochs,
        "seed": config.seed,
        "kway": "exact expectation over all distractor sets; *_mc = seeded Monte-Carlo with 95% CI",
    }


def summarise(folds: list[dict]) -> dict:
    """Mean and sample sd over subjects of every scalar test metric."""
    keys = [key for key, value in folds[0]["test"].items() if isinstance(value, float)]
    summary = {}
    for key in keys:
        values = np.array([fold["test"][key] for fold in folds])
        summary[key] = {"mean": float(values.mean()), "sd": float(values.std(ddof=1)) if len(values) > 1 else 0.0}
    return summary


def summarise_by_ratio(folds: list[dict]) -> dict:
    """:func:`summarise` per training ratio: ``{"ratio-R": {key: {"mean", "sd"}}}``, ratios ascending."""
    ratios = sorted({fold["ratio"] for fold in folds})
    return {f"ratio-{ratio:g}": summarise([fold for fold in folds if fold["ratio"] == ratio]) for ratio in ratios}


def write_reports(output_dir: Path, record: dict, folds: list[dict], summary: dict, config) -> None:
    """``results.json``, ``results.csv`` (one row per fold) and ``results.md``.

    ``finetune`` rows also name the protocol and the training ratio, and ``summary`` is per ratio
    (:func:`summarise_by_ratio`).
    """
    import pandas as pd

    atomic_write_json(output_dir / "results.json", {"protocol": record, "subjects": folds, "summary": summary})
    by_ratio = config.protocol == "finetune"
    keys = [key for key in folds[0]["test"] if isinstance(folds[0]["test"][key], float)]
    rows = [
        {
            **({"protocol": f["protocol"]} if by_ratio else {}),
            "subject": f["subject"],
            **({"ratio": f["ratio"]} if by_ratio else {}),
            "selected_epoch": f["selection"]["epoch"],
            **{k: f["test"][k] for k in keys},
        }
        for f in folds
    ]
    atomic_write_text(output_dir / "results.csv", pd.DataFrame(rows).to_csv(index=False))
    shown = [
        k for k in ("top1", "top5", "top1_2way", "top1_4way", "top1_10way", "top1_50way", "top1_100way") if k in keys
    ]
    lines = ["# Zero-shot EEG-to-image retrieval", "", "Protocol (applies to every number below):", ""]
    for name, value in record.items():
        lines.append(f"- **{name}**: {value}")
    head = ["subject", *(["training ratio"] if by_ratio else []), "selected epoch", *shown]
    lines += ["", "| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for fold in folds:
        cells = [fold["subject"], *([f"{fold['ratio']:g}"] if by_ratio else []), str(fold["selection"]["epoch"])]
        cells += [f"{100 * fold['test'][k]:.1f}" for k in shown]
        lines.append("| " + " | ".join(cells) + " |")
    groups = [(name[len("ratio-") :], values) for name, values in summary.items()] if by_ratio else [(None, summary)]
    for ratio, values in groups:
        cells = ["**mean ± sd**", *([ratio] if by_ratio else []), ""]
        cells += [f"{100 * values[k]['mean']:.1f} ± {100 * values[k]['sd']:.1f}" for k in shown]
        lines.append("| " + " | ".join(cells) + " |")
    chance = folds[0]["chance"]
    lines += ["", "Values in %. Chance: " + ", ".join(f"{k} {100 * chance[k]:.1f}" for k in shown) + "."]
    atomic_write_text(output_dir / "results.md", "\n".join(lines) + "\n")
