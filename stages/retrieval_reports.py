"""The reports of ``ttdnet train-retrieval``: the protocol next to every number, per subject and summarised."""

from pathlib import Path

import numpy as np

from ttdnet.data import ThingsEEG2Dataset
from ttdnet.io import atomic_write_json, atomic_write_text
from ttdnet.stages.retrieval_features import FeatureFile


def protocol_record(config, features: FeatureFile, dataset: ThingsEEG2Dataset) -> dict:
    """Everything that defines the numbers, written next to them (see docs/retrieval.md)."""
    settings = features.settings
    return {
        "protocol": "intra-subject" if config.protocol == "intra" else "inter-subject (leave-one-subject-out)",
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


def write_reports(output_dir: Path, record: dict, folds: list[dict], summary: dict, config) -> None:
    """``results.json``, ``results.csv`` (one row per subject) and ``results.md``."""
    import pandas as pd

    atomic_write_json(output_dir / "results.json", {"protocol": record, "subjects": folds, "summary": summary})
    keys = [key for key in folds[0]["test"] if isinstance(folds[0]["test"][key], float)]
    rows = [
        {"subject": f["subject"], "selected_epoch": f["selection"]["epoch"], **{k: f["test"][k] for k in keys}}
        for f in folds
    ]
    atomic_write_text(output_dir / "results.csv", pd.DataFrame(rows).to_csv(index=False))
    shown = [
        k for k in ("top1", "top5", "top1_2way", "top1_4way", "top1_10way", "top1_50way", "top1_100way") if k in keys
    ]
    lines = ["# Zero-shot EEG-to-image retrieval", "", "Protocol (applies to every number below):", ""]
    for name, value in record.items():
        lines.append(f"- **{name}**: {value}")
    lines += ["", "| subject | selected epoch | " + " | ".join(shown) + " |", "|---" * (len(shown) + 2) + "|"]
    for fold in folds:
        cells = [f"{100 * fold['test'][k]:.1f}" for k in shown]
        lines.append(f"| {fold['subject']} | {fold['selection']['epoch']} | " + " | ".join(cells) + " |")
    lines.append(
        "| **mean ± sd** | | "
        + " | ".join(f"{100 * summary[k]['mean']:.1f} ± {100 * summary[k]['sd']:.1f}" for k in shown)
        + " |"
    )
    chance = folds[0]["chance"]
    lines += ["", "Values in %. Chance: " + ", ".join(f"{k} {100 * chance[k]:.1f}" for k in shown) + "."]
    atomic_write_text(output_dir / "results.md", "\n".join(lines) + "\n")
