"""The metric catalogue: selectable groups, the keys each writes, directions, definitions and chance levels.

Names, keys and definitions are those of ``docs/evaluation.md``. A *group* is what ``--metrics`` selects; it
writes one or more *keys* into ``metrics.json`` (for example ``mse`` writes the raw ``mse``, the identification
accuracy ``pairid_mse`` and the baseline ``mse_shuffled``).
"""

import dataclasses

from ttdnet.errors import TtdnetError


@dataclasses.dataclass(frozen=True)
class MetricGroup:
    """One selectable metric.

    Attributes
    ----------
    group : str
        The ``--metrics`` name.
    backbone : str or None
        The network it needs (None: pixels only).
    suite : str
        ``mindeye``, ``ttdnet`` or ``nway`` (for the report's sections).
    """

    group: str
    backbone: str | None
    suite: str


GROUPS: dict[str, MetricGroup] = {
    group.group: group
    for group in (
        MetricGroup("pixcorr", None, "mindeye"),
        MetricGroup("ssim", None, "mindeye"),
        MetricGroup("alexnet2", "alexnet", "mindeye"),
        MetricGroup("alexnet5", "alexnet", "mindeye"),
        MetricGroup("inception", "inception", "mindeye"),
        MetricGroup("clip", "clip", "mindeye"),
        MetricGroup("effnet_b", "effnet_b1", "mindeye"),
        MetricGroup("swav", "swav", "mindeye"),
        MetricGroup("mse", None, "ttdnet"),
        MetricGroup("pcc", None, "ttdnet"),
        MetricGroup("ssim_rgb", None, "ttdnet"),
        MetricGroup("lpips_alex", "lpips", "ttdnet"),
        MetricGroup("fid", "fid_inception", "ttdnet"),
        MetricGroup("kid", "fid_inception", "ttdnet"),
        MetricGroup("nway_cls", "classifier", "nway"),
        MetricGroup("nway_clip", "clip", "nway"),
    )
}

ALIASES = {
    "all": list(GROUPS),
    "mindeye": [name for name, group in GROUPS.items() if group.suite == "mindeye"],
    "ttdnet": [name for name, group in GROUPS.items() if group.suite == "ttdnet"],
    "nway": ["nway_cls", "nway_clip"],
    # Keys that are written by a group select that group.
    "pairid_mse": ["mse"],
    "pairid_pcc": ["pcc"],
    "pairid_ssim_rgb": ["ssim_rgb"],
    "pairid_lpips_alex": ["lpips_alex"],
    "lpips": ["lpips_alex"],
    "kid_mean": ["kid"],
    "nway_cls_top1": ["nway_cls"],
    "nway_clip_top1": ["nway_clip"],
}


def select_groups(names: list[str]) -> list[str]:
    """Expand ``--metrics`` names and aliases into groups, in catalogue order.

    Raises
    ------
    TtdnetError
        On an unknown name (listing the valid ones), or when no name is given.
    """
    if not names:
        raise TtdnetError("--metrics is empty; name at least one metric or group (all, mindeye, ttdnet, nway).")
    chosen: set[str] = set()
    for name in names:
        if name in GROUPS:
            chosen.add(name)
        elif name in ALIASES:
            chosen.update(ALIASES[name])
        else:
            valid = ", ".join(list(GROUPS) + [alias for alias in ALIASES if alias not in GROUPS])
            raise TtdnetError(f"unknown metric {name!r} in --metrics. Valid names: {valid}")
    return [name for name in GROUPS if name in chosen]


# key: (display name, direction, definition)
KEY_INFO: dict[str, tuple[str, str, str]] = {
    "pixcorr": ("PixCorr", "higher", "mean over trials of Pearson r of the flattened RGB pixels (float64)"),
    "ssim": (
        "SSIM",
        "higher",
        "mean SSIM on skimage rgb2gray, 11x11 Gaussian window sigma 1.5, population covariance",
    ),
    "alexnet2": ("AlexNet(2)", "higher", "2-way identification, AlexNet features.4 (184,512-d), Pearson, exhaustive"),
    "alexnet5": ("AlexNet(5)", "higher", "2-way identification, AlexNet features.11 (57,600-d), Pearson, exhaustive"),
    "inception": ("Inception", "higher", "2-way identification, Inception-v3 avgpool (2048-d), Pearson, exhaustive"),
    "clip": ("CLIP", "higher", "2-way identification, CLIP ViT-L/14 image embedding (768-d), Pearson, exhaustive"),
    "effnet_b": ("EffNet-B", "lower", "mean correlation distance 1 - r, EfficientNet-B1 avgpool (1280-d)"),
    "swav": ("SwAV", "lower", "mean correlation distance 1 - r, SwAV ResNet-50 avgpool (2048-d)"),
    "mse": ("MSE", "lower", "mean over trials of mean((rec - gt)^2) on float [0, 1] RGB"),
    "pcc": ("PCC", "higher", "mean over trials of Pearson r of the flattened RGB images"),
    "ssim_rgb": (
        "SSIM (RGB)",
        "higher",
        "skimage structural_similarity defaults on RGB: 7x7 uniform window, sample covariance",
    ),
    "lpips_alex": ("LPIPS (Alex)", "lower", "LPIPS v0.1, AlexNet, inputs in [-1, 1], spatially averaged"),
    "pairid_mse": ("Pair-wise id. MSE", "higher", "pairwise identification accuracy on MSE (lower m wins), strict"),
    "pairid_pcc": ("Pair-wise id. PCC", "higher", "pairwise identification accuracy on PCC (higher m wins), strict"),
    "pairid_ssim_rgb": (
        "Pair-wise id. SSIM (RGB)",
        "higher",
        "pairwise identification accuracy on SSIM (RGB), strict",
    ),
    "pairid_lpips_alex": (
        "Pair-wise id. LPIPS",
        "higher",
        "pairwise identification accuracy on LPIPS (lower m wins), strict",
    ),
    "fid": ("FID", "lower", "Frechet distance of Gaussians fitted to 2048-d FID Inception pool3 features (rec vs GT)"),
    "kid_mean": ("KID", "lower", "unbiased MMD^2, polynomial kernel (x.y/d + 1)^3, mean over seeded subsets"),
    "kid_std": ("KID std", "lower", "standard deviation of the KID subset values (ddof 0)"),
    "nway_cls_top1": (
        "n-way top-1 (classifier)",
        "higher",
        "n-way top-1 with an ImageNet classifier, exact expectation",
    ),
    "nway_cls_top1_mc": (
        "n-way top-1 (classifier, MC)",
        "higher",
        "n-way top-1 with an ImageNet classifier, seeded Monte Carlo",
    ),
}

SHUFFLED_OF = {"pixcorr", "ssim", "effnet_b", "swav", "mse", "pcc", "ssim_rgb", "lpips_alex"}


def key_info(key: str) -> tuple[str, str, str]:
    """``(display name, direction, definition)`` of any key, including ``*_shuffled`` and ``nway_clip_top1_{n}way``."""
    if key.endswith("_shuffled"):
        base = key.removesuffix("_shuffled")
        name, direction, definition = KEY_INFO[base]
        return (
            f"{name} (shuffled pairs)",
            direction,
            f"baseline: {definition}, with rec_i paired to gt of a fixed seeded derangement",
        )
    if key.startswith("nway_clip_top1_"):
        n = key.removeprefix("nway_clip_top1_").removesuffix("way")
        return (
            f"CLIP {n}-way top-1",
            "higher",
            f"{n}-way identification on cosine similarity of L2-normalised CLIP embeddings, "
            "exact expectation over distractor sets",
        )
    return KEY_INFO[key]
