"""``ttdnet evaluate``: score reconstructions against ground-truth images (any system, plain image folders).

Cheap to import: the heavy modules load inside :func:`run`.
"""

import argparse
import dataclasses
from typing import ClassVar, Literal

from ttdnet.command import Command


@dataclasses.dataclass
class EvaluateConfig:
    """Options of ``ttdnet evaluate``."""

    OPTION_RANGES: ClassVar[dict[str, str]] = {
        "eval_size": "[7, inf)",  # SSIM's 7x7 window
        "batch_size": "[1, inf)",
        "seed": "[0, inf)",  # numpy.random.default_rng takes non-negative seeds
        "nway_n": "[2, inf)",
        "nway_trials": "[0, inf)",
        "nway_clip_ns": "[2, inf)",
        "kid_subsets": "[1, inf)",
        "kid_subset_size": "[2, inf)",  # the unbiased MMD² divides by m(m − 1)
        "grid_trials": "[0, inf)",
    }

    ground_truth: str | None = dataclasses.field(
        default=None,
        metadata={
            "help": "folder of ground-truth images, or a THINGS-EEG2 root or image-set folder (uses its test_images/)"
        },
    )
    reconstructions: str | None = dataclasses.field(
        default=None,
        metadata={
            "help": "folder of reconstructions named <key>.<ext> or <key>_s<k>.<ext> (or holding a manifest.jsonl)"
        },
    )
    manifest: str | None = dataclasses.field(
        default=None,
        metadata={"help": "manifest.jsonl with trial, sample, image, ground_truth per line (overrides name matching)"},
    )
    output_dir: str = dataclasses.field(
        default="outputs/evaluate", metadata={"help": "where metrics.json, report.md and report.html go"}
    )
    metrics: list[str] = dataclasses.field(
        default_factory=lambda: ["all"],
        metadata={
            "help": "metrics to compute: names (pixcorr ssim alexnet2 alexnet5 inception clip effnet_b swav mse pcc "
            "ssim_rgb lpips_alex fid kid nway_cls nway_clip) or groups (all, mindeye, ttdnet, nway)"
        },
    )
    match_by: Literal["path", "stem"] = dataclasses.field(
        default="path",
        metadata={"help": "name-matching key for plain folders: relative path without extension, or file stem"},
    )
    allow_missing: bool = dataclasses.field(
        default=False,
        metadata={"help": "score only the trials that have reconstructions instead of failing on the others"},
    )
    eval_size: int = dataclasses.field(
        default=512, metadata={"help": "square size of the TTD-net suite (MSE, PCC, SSIM RGB, LPIPS)"}
    )
    batch_size: int = dataclasses.field(default=16, metadata={"help": "images per forward pass"})
    device: str | None = dataclasses.field(
        default=None, metadata={"help": "cpu, cuda, cuda:1, ...; default cuda when available"}
    )
    seed: int = dataclasses.field(
        default=0, metadata={"help": "seeds shuffled-pair baselines, KID subsets and Monte-Carlo draws"}
    )
    nway_n: int = dataclasses.field(default=50, metadata={"help": "n of the classifier n-way top-1"})
    nway_trials: int = dataclasses.field(
        default=50, metadata={"help": "Monte-Carlo trials per image for nway_cls_top1_mc (0: off)"}
    )
    nway_clip_ns: list[int] = dataclasses.field(
        default_factory=lambda: [2, 10, 50],
        metadata={"help": "n values of the CLIP n-way (N, full rank, is always added)"},
    )
    kid_subsets: int = dataclasses.field(default=100, metadata={"help": "KID subsets"})
    kid_subset_size: int = dataclasses.field(
        default=100, metadata={"help": "KID subset size (capped at the number of trials)"}
    )
    weights_dir: str | None = dataclasses.field(
        default=None,
        metadata={"help": "folder holding the weight files under their upstream names (see docs/evaluation.md)"},
    )
    download_weights: bool = dataclasses.field(
        default=True,
        metadata={"help": "download missing weights into torch's hub cache (never when HF_HUB_OFFLINE=1)"},
    )
    cache_dir: str | None = dataclasses.field(
        default=None,
        metadata={"help": "model-download cache (Hugging Face hub) of the CLIP model; default: the hub's"},
    )
    alexnet_weights: str | None = dataclasses.field(
        default=None, metadata={"help": "alexnet-owt-7be5be79.pth (AlexNet(2)/(5), LPIPS trunk)"}
    )
    inception_weights: str | None = dataclasses.field(
        default=None, metadata={"help": "inception_v3_google-0cc3c7bd.pth"}
    )
    effnet_weights: str | None = dataclasses.field(default=None, metadata={"help": "efficientnet_b1-c27df63c.pth"})
    swav_weights: str | None = dataclasses.field(default=None, metadata={"help": "swav_800ep_pretrain.pth.tar"})
    fid_inception_weights: str | None = dataclasses.field(
        default=None, metadata={"help": "weights-inception-2015-12-05-6726825d.pth (FID/KID)"}
    )
    classifier_weights: str | None = dataclasses.field(
        default=None, metadata={"help": "weights of the n-way classifier (vit_h_14_swag-80465313.pth)"}
    )
    classifier_arch: str = dataclasses.field(
        default="vit_h_14", metadata={"help": "torchvision architecture of the n-way classifier"}
    )
    classifier_weights_id: str = dataclasses.field(
        default="ViT_H_14_Weights.IMAGENET1K_SWAG_E2E_V1",
        metadata={"help": "torchvision weights enum of the classifier (sets its preprocessing)"},
    )
    clip_model: str = dataclasses.field(
        default="openai/clip-vit-large-patch14",
        metadata={"help": "CLIP ViT-L/14: OpenAI ViT-L-14.pt file (open_clip), Hugging Face folder, or hub id"},
    )
    lpips_weights: str | None = dataclasses.field(
        default=None, metadata={"help": "LPIPS v0.1 linear heads (default: the file inside the lpips package)"}
    )
    grid_trials: int = dataclasses.field(default=12, metadata={"help": "trials shown in the report's image grid"})
    progress: bool = dataclasses.field(default=True, metadata={"help": "show a progress bar"})


def run(config: EvaluateConfig, namespace: argparse.Namespace) -> int:
    from .api import evaluate
    from .report import value_text

    paths, document = evaluate(config)
    rows = [
        (entry["name"], value_text(entry))
        for key, entry in document["metrics"].items()
        if not key.endswith("_shuffled")
    ]
    width = max(len(name) for name, _ in rows)
    print("\n".join(f"{name.ljust(width)}  {value}" for name, value in rows))
    print(f"wrote {paths['metrics']}, {paths['markdown']}, {paths['html']}")
    return 0


COMMAND = Command(
    name="evaluate",
    summary="score reconstructions against ground truth (MindEye and TTD-net suites, FID/KID, n-way) with reports",
    config_class=EvaluateConfig,
    run=run,
    description=(
        "Score reconstructions against ground-truth images. Pairing is by name (<key>.<ext> or <key>_s<k>.<ext>) "
        "or by a manifest.jsonl, never by listing order. See docs/evaluation.md."
    ),
)
