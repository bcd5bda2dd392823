"""The scores of one image set: every backbone once per image, then every selected metric.

:func:`score_ground_truth` runs the backbones over the N ground-truth images once; :func:`score_sample_set`
runs them over one sample set (sample s of every trial) and scores it against all N ground truths. Each
backbone feeds every metric that uses it (AlexNet for AlexNet(2)/(5), CLIP for ``clip`` and ``nway_clip``).
The metric definitions are written out in ``docs/evaluation.md``.
"""

import dataclasses
from collections.abc import Callable

import numpy as np
import torch

from . import fid as fid_lib
from . import identification as ident
from .feature_backbone import Backbone
from .images import ImageStore, ResizeSpec
from .pixels import (
    COMPILE_MIN_PIXEL_PAIRS,
    SSIM_DEFAULT,
    SSIM_MINDEYE,
    SsimStatistics,
    mse_and_pearson_matrices,
    pearson_pairs,
    rgb_to_gray,
    squared_distance_matrix,
    ssim_matrix,
    ssim_pairs,
    ssim_statistics,
)


# The resize of MindEye's pixel metrics (PixCorr, SSIM).
MINDEYE_PIXEL_RESIZE = ResizeSpec(425, "bilinear", antialias=False)


@dataclasses.dataclass
class SuiteSettings:
    """Settings that change the numbers (all recorded in ``metrics.json``).

    Attributes
    ----------
    eval_size : int
        Side of the TTD-net suite's evaluation size (MSE, PCC, SSIM (RGB), LPIPS); 512 as TTD-net.
    batch_size : int
    device : str
    seed : int
        Seeds the shuffled-pair derangement, KID subsets and Monte-Carlo draws.
    nway_n : int
        n of the classifier n-way (50 as TTD-net/DreamDiffusion).
    nway_trials : int
        Monte-Carlo trials per image for ``nway_cls_top1_mc`` (0 disables it).
    nway_clip_ns : list of int
        n values of the CLIP n-way; values above N are skipped, N (full rank) is always added.
    kid_subsets, kid_subset_size : int
        ``subset_size`` is capped at N.
    progress : bool
    """

    eval_size: int = 512
    batch_size: int = 16
    device: str = "cpu"
    seed: int = 0
    nway_n: int = 50
    nway_trials: int = 50
    nway_clip_ns: list[int] = dataclasses.field(default_factory=lambda: [2, 10, 50])
    kid_subsets: int = 100
    kid_subset_size: int = 100
    progress: bool = True


@dataclasses.dataclass
class ScoringPlan:
    """What stays the same for the ground truth and every sample set of one run.

    Attributes
    ----------
    settings : SuiteSettings
    groups : set of str
        The selected metric groups (see :data:`ttdnet.eval.metrics.GROUPS`).
    backbones : dict
        Name to :class:`Backbone` of every backbone the groups need, in sorted name order, on ``device``.
    derangement : numpy.ndarray
        int ``(N,)``: the shuffled-pair baselines pair rec_i with gt_derangement[i].
    batches : list of list of int
        Trial indices of each batch.
    ttd_resize : ResizeSpec
        The TTD-net suite's resize to ``settings.eval_size``.
    device : torch.device
    """

    settings: SuiteSettings
    groups: set[str]
    backbones: dict[str, Backbone]
    derangement: np.ndarray
    batches: list[list[int]]
    ttd_resize: ResizeSpec
    device: torch.device

    @property
    def ttd_pixels(self) -> bool:
        """Whether a selected metric compares pixels at the evaluation size (MSE, PCC, SSIM (RGB))."""
        return bool(self.groups & {"mse", "pcc", "ssim_rgb"})


@dataclasses.dataclass
class GroundTruth:
    """The ground-truth pass, computed once and scored against by every sample set.

    Attributes
    ----------
    store : ImageStore
        The N ground-truth images.
    features : dict
        Backbone name to output name to ``(N, ...)`` features.
    pixels : torch.Tensor or None
        float32 ``(N, 3, eval_size, eval_size)`` on the device when :attr:`ScoringPlan.ttd_pixels`.
    ssim_rgb : SsimStatistics or None
        The per-image SSIM (RGB) statistics of ``pixels`` when ``ssim_rgb`` is selected, computed once and
        compared with every reconstruction of every sample set (about twice the memory of ``pixels``).
    labels : numpy.ndarray or None
        int ``(N,)``: the classifier's argmax on each ground truth, when ``nway_cls`` is selected.
    """

    store: ImageStore
    features: dict[str, dict[str, np.ndarray]]
    pixels: torch.Tensor | None
    ssim_rgb: SsimStatistics | None
    labels: np.ndarray | None


def run_backbone(
    name: str, backbone: Backbone, store: ImageStore, batch: list[int], ttd_resize: ResizeSpec
) -> dict[str, np.ndarray]:
    """Features of ``batch``; images of different stored sizes go through in separate same-size groups."""
    if name == "lpips":
        return backbone(store.batch(batch, ttd_resize))
    groups: dict[tuple, list[int]] = {}
    for i in batch:
        groups.setdefault(store.uint8(i).shape, []).append(i)
    rows: dict[int, dict[str, np.ndarray]] = {}
    for group in groups.values():
        images = store.batch_uint8(group) if backbone.input_kind == "uint8" else store.batch(group, None)
        result = backbone(images)
        for row, i in enumerate(group):
            rows[i] = {key: value[row : row + 1] for key, value in result.items()}
    return {key: np.concatenate([rows[i][key] for i in batch]) for key in rows[batch[0]]}


def score_ground_truth(plan: ScoringPlan, store: ImageStore, after_batch: Callable[[], None]) -> GroundTruth:
    """Backbone features (and evaluation-size pixels) of the ground truth; ``after_batch`` runs after each batch."""
    parts: dict[str, dict[str, list[np.ndarray]]] = {name: {} for name in plan.backbones}
    pixels = [] if plan.ttd_pixels else None
    for batch in plan.batches:
        for name, backbone in plan.backbones.items():
            for key, value in run_backbone(name, backbone, store, batch, plan.ttd_resize).items():
                parts[name].setdefault(key, []).append(value)
        if pixels is not None:
            pixels.append(store.batch(batch, plan.ttd_resize).to(plan.device))
        after_batch()
    features = {name: {key: np.concatenate(chunks) for key, chunks in outs.items()} for name, outs in parts.items()}
    labels = features["classifier"]["probs"].argmax(axis=1) if "nway_cls" in plan.groups else None
    pixels = torch.cat(pixels) if pixels is not None else None
    ssim_rgb = ssim_statistics(pixels, SSIM_DEFAULT) if "ssim_rgb" in plan.groups else None
    return GroundTruth(store, features, pixels, ssim_rgb, labels)


def score_sample_set(
    plan: ScoringPlan, truth: GroundTruth, rec_store: ImageStore, after_batch: Callable[[], None]
) -> dict[str, dict]:
    """Scores of one sample set against all N ground truths; ``after_batch`` runs after each batch.

    Returns
    -------
    dict
        ``{key: {"per_trial": (N,) array or None, "value": float (set-level metrics), ...}}``; extra
        entries (``n``, ``classes``, ``subset_size``, ``outcomes``) describe the score. A per-trial score
        is NaN where it is undefined (the Pearson r of a constant image or feature vector). Identification
        scores are always defined (a comparison with an undefined similarity fails, the tie rule) and
        carry ``compared_undefined``, bool ``(N,)``: which trials had such a comparison.
    """
    want, perm, gt_store = plan.groups, plan.derangement, truth.store
    n = len(rec_store)
    rec_feats: dict[str, dict[str, list[np.ndarray]]] = {name: {} for name in plan.backbones}
    pix = {key: [] for key in ("pixcorr", "pixcorr_shuffled", "ssim", "ssim_shuffled")}
    ttd_rows = {key: [] for key in ("mse", "pcc", "ssim_rgb", "lpips_alex")}
    for batch in plan.batches:
        for name, backbone in plan.backbones.items():
            out = run_backbone(name, backbone, rec_store, batch, plan.ttd_resize)
            if name == "lpips":
                distances = squared_distance_matrix(
                    torch.from_numpy(out["lpips"]), torch.from_numpy(truth.features["lpips"]["lpips"])
                )
                ttd_rows["lpips_alex"].append(distances.numpy())
                continue
            for key, value in out.items():
                rec_feats[name].setdefault(key, []).append(value)
        if "pixcorr" in want or "ssim" in want:
            rec = rec_store.batch(batch, MINDEYE_PIXEL_RESIZE).to(plan.device)
            gt = gt_store.batch(batch, MINDEYE_PIXEL_RESIZE).to(plan.device)
            gt_shuffled = gt_store.batch([int(perm[i]) for i in batch], MINDEYE_PIXEL_RESIZE).to(plan.device)
            if "pixcorr" in want:
                pix["pixcorr"].append(pearson_pairs(rec, gt).cpu().numpy())
                pix["pixcorr_shuffled"].append(pearson_pairs(rec, gt_shuffled).cpu().numpy())
            if "ssim" in want:
                rec_gray = rgb_to_gray(rec)
                pix["ssim"].append(ssim_pairs(rec_gray, rgb_to_gray(gt), SSIM_MINDEYE).double().cpu().numpy())
                pix["ssim_shuffled"].append(
                    ssim_pairs(rec_gray, rgb_to_gray(gt_shuffled), SSIM_MINDEYE).double().cpu().numpy()
                )
        if truth.pixels is not None:
            rec = rec_store.batch(batch, plan.ttd_resize).to(plan.device)
            if "mse" in want or "pcc" in want:
                mse, pcc = mse_and_pearson_matrices(rec, truth.pixels)
                ttd_rows["mse"].append(mse.cpu().numpy())
                ttd_rows["pcc"].append(pcc.cpu().numpy())
            if "ssim_rgb" in want:
                # Compiled when the whole N x N job is large, not by the size of this batch.
                compiled = n * n * truth.pixels[0].numel() >= COMPILE_MIN_PIXEL_PAIRS
                matrix = ssim_matrix(rec, truth.ssim_rgb, SSIM_DEFAULT, compiled=compiled)
                ttd_rows["ssim_rgb"].append(matrix.double().cpu().numpy())
        after_batch()

    rows = np.arange(n)
    gt_features = truth.features
    out: dict[str, dict] = {}
    rec_features = {
        name: {key: np.concatenate(parts) for key, parts in outs.items()} for name, outs in rec_feats.items()
    }
    for key, parts in pix.items():
        if parts:
            out[key] = {"per_trial": np.concatenate(parts)}
    for group, backbone_name in (
        ("alexnet2", "alexnet"),
        ("alexnet5", "alexnet"),
        ("inception", "inception"),
        ("clip", "clip"),
    ):
        if group in want:
            corr = ident.correlation_matrix(gt_features[backbone_name][group], rec_features[backbone_name][group])
            out[group] = {
                "per_trial": ident.two_way_identification(corr),
                "compared_undefined": np.isnan(corr).any(axis=0),  # column j: reconstruction j
            }
    for group, backbone_name in (("effnet_b", "effnet_b1"), ("swav", "swav")):
        if group in want:
            gt_f, rec_f = gt_features[backbone_name][group], rec_features[backbone_name][group]
            out[group] = {"per_trial": 1.0 - _row_pearson(gt_f, rec_f)}
            out[f"{group}_shuffled"] = {"per_trial": 1.0 - _row_pearson(gt_f[perm], rec_f)}
    for group, higher in (("mse", False), ("pcc", True), ("ssim_rgb", True), ("lpips_alex", False)):
        if group in want:
            matrix = np.concatenate(ttd_rows[group])  # (N rec, N gt)
            out[group] = {"per_trial": np.diag(matrix).copy()}
            out[f"{group}_shuffled"] = {"per_trial": matrix[rows, perm]}
            out[f"pairid_{group}"] = {
                "per_trial": ident.pairwise_identification(matrix, higher_is_better=higher),
                "compared_undefined": np.isnan(matrix).any(axis=1),
            }
    settings = plan.settings
    if "fid" in want or "kid" in want:
        real, fake = gt_features["fid_inception"]["fid"], rec_features["fid_inception"]["fid"]
        if "fid" in want:
            out["fid"] = {"per_trial": None, "value": fid_lib.fid_from_features(real, fake)}
        if "kid" in want:
            size = min(settings.kid_subset_size, n)
            mean, std, values = fid_lib.kid_from_features(real, fake, settings.kid_subsets, size, settings.seed)
            out["kid_mean"] = {"per_trial": None, "value": mean, "subset_size": size}
            out["kid_std"] = {"per_trial": None, "value": std, "subset_size": size}
    if "nway_cls" in want:
        probs = rec_features["classifier"]["probs"]
        k = probs.shape[1]
        n_ways = min(settings.nway_n, k)
        out["nway_cls_top1"] = {
            "per_trial": ident.nway_classifier_exact(probs, truth.labels, n_ways),
            "n": n_ways,
            "classes": k,
        }
        if settings.nway_trials > 0:
            mc = ident.nway_classifier_monte_carlo(probs, truth.labels, n_ways, settings.nway_trials, settings.seed)
            out["nway_cls_top1_mc"] = {"per_trial": mc.per_query, "outcomes": mc.outcomes, "n": n_ways, "classes": k}
    if "nway_clip" in want:
        gt_e = _l2(gt_features["clip"]["clip"])
        rec_e = _l2(rec_features["clip"]["clip"])
        similarity = rec_e @ gt_e.T  # [j, i] = cos(rec_j, gt_i)
        for ways in sorted({w for w in settings.nway_clip_ns if 2 <= w <= n} | {n}):
            out[f"nway_clip_top1_{ways}way"] = {
                "per_trial": ident.nway_similarity_exact(similarity, ways),
                "n": ways,
                "compared_undefined": np.isnan(similarity).any(axis=1),
            }
    return out


def _row_pearson(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson r of each row pair, float64 ``(N,)``."""
    za, zb = ident.standardize_rows(a), ident.standardize_rows(b)
    return (za * zb).sum(axis=1)


def _l2(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm, float64."""
    x = np.asarray(x, dtype=np.float64)
    return x / np.linalg.norm(x, axis=1, keepdims=True)
