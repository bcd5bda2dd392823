"""Run the selected metrics over a :class:`~ttdnet.eval.pairing.PairedSet`.

Ground-truth features are computed once and reused for every sample set; each backbone runs once per
image and feeds every metric that uses it (AlexNet for AlexNet(2)/(5), CLIP for ``clip`` and
``nway_clip``). With S samples per trial every score is computed per sample set (sample s of every trial
against all N ground truths); the reported value is the mean over sample sets, and the sample-0 value is
reported beside it. The max over samples is never reported.
"""

import dataclasses
import math

import numpy as np
import torch
from tqdm.auto import tqdm

from . import fid as fid_lib
from . import identification as ident
from .backbones import Backbone
from .images import ImageStore, ResizeSpec
from .metrics import GROUPS, key_info
from .pairing import PairedSet
from .pixels import (
    SSIM_DEFAULT,
    SSIM_MINDEYE,
    mse_and_pearson_matrices,
    pearson_pairs,
    rgb_to_gray,
    squared_distance_matrix,
    ssim_matrix,
    ssim_pairs,
)


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
class MetricResult:
    """One entry of ``metrics.json`` (see ``metrics.md`` §5).

    ``per_sample`` holds the value of each sample set (first = sample 0); ``per_trial`` the per-trial scores
    averaged over sample sets, ``per_trial_sample0`` those of sample 0 (None for set-level metrics).
    """

    key: str
    group: str
    per_sample: list[float]
    per_trial: np.ndarray | None
    per_trial_sample0: np.ndarray | None
    chance: float | None = None
    chance_key: str | None = None
    settings: dict = dataclasses.field(default_factory=dict)
    extra: dict = dataclasses.field(default_factory=dict)

    def to_dict(self, seed: int, n_trials: int) -> dict:
        name, direction, definition = key_info(self.key)
        value = float(np.mean(self.per_sample))
        std = ci = None
        if self.per_trial is not None and len(self.per_trial) > 1:
            std = float(np.std(self.per_trial, ddof=1))
            half = 1.96 * std / math.sqrt(len(self.per_trial))
            ci = [value - half, value + half]
        entry = {
            "name": name,
            "key": self.key,
            "group": self.group,
            "value": value,
            "value_sample0": float(self.per_sample[0]),
            "per_sample": [float(v) for v in self.per_sample],
            "std": std,
            "n": n_trials,
            "n_samples": len(self.per_sample),
            "ci95": ci,
            "direction": direction,
            "chance": self.chance,
            "chance_key": self.chance_key,
            "definition": definition,
            "settings": self.settings,
            "seed": seed,
        }
        entry.update(self.extra)
        return entry


@dataclasses.dataclass
class SuiteResult:
    """Everything :func:`run_suite` computed."""

    trial_ids: list[str]
    sample_ids: list[str]
    metrics: dict[str, MetricResult]
    backbones: dict[str, dict]
    settings: SuiteSettings
    derangement: list[int]


def _batches(n: int, size: int) -> list[list[int]]:
    return [list(range(start, min(start + size, n))) for start in range(0, n, size)]


class _Progress:
    def __init__(self, enabled: bool, total: int):
        self.bar = tqdm(total=total, desc="evaluate", unit="batch", disable=not enabled)

    def step(self, label: str) -> None:
        self.bar.set_postfix_str(label, refresh=False)
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()


def _run_backbone(
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


def run_suite(
    pairs: PairedSet,
    groups: list[str],
    backbones: dict[str, Backbone],
    settings: SuiteSettings,
) -> SuiteResult:
    """Compute the selected metric groups.

    Parameters
    ----------
    pairs : PairedSet
        N trials, S sample sets.
    groups : list of str
        Metric groups (see :data:`ttdnet.eval.metrics.GROUPS`).
    backbones : dict
        Backbone name to :class:`Backbone` for every backbone the groups need.
    settings : SuiteSettings

    Returns
    -------
    SuiteResult
    """
    device = torch.device(settings.device)
    n, n_sets = pairs.n_trials, pairs.n_samples
    needed = sorted({GROUPS[g].backbone for g in groups if GROUPS[g].backbone})
    missing = [name for name in needed if name not in backbones]
    if missing:
        raise ValueError(f"backbones missing for the selected metrics: {missing}")
    for name in needed:
        backbones[name].to(device)
    gt_store = ImageStore(pairs.gt_paths)
    rec_stores = [ImageStore(paths) for paths in pairs.rec_paths]
    perm = ident.derangement(n, settings.seed)
    batches = _batches(n, settings.batch_size)
    want = set(groups)
    pixel_ttd = bool(want & {"mse", "pcc", "ssim_rgb"})
    ttd_resize = ResizeSpec(settings.eval_size, "bilinear", antialias=True)

    # One progress unit per batch: ground truth once, then each sample set.
    progress = _Progress(settings.progress, len(batches) * (1 + n_sets))

    # --- ground truth, once ----------------------------------------------------------------------------------
    gt_feats: dict[str, dict[str, list[np.ndarray]]] = {name: {} for name in needed}
    gt_ttd_pixels = [] if pixel_ttd else None
    for batch in batches:
        for name in needed:
            for key, value in _run_backbone(name, backbones[name], gt_store, batch, ttd_resize).items():
                gt_feats[name].setdefault(key, []).append(value)
        if gt_ttd_pixels is not None:
            gt_ttd_pixels.append(gt_store.batch(batch, ttd_resize).to(device))
        progress.step("ground truth")
    gt_features = {
        name: {key: np.concatenate(parts) for key, parts in outs.items()} for name, outs in gt_feats.items()
    }
    gt_pixels = torch.cat(gt_ttd_pixels) if gt_ttd_pixels is not None else None
    gt_labels = gt_features["classifier"]["probs"].argmax(axis=1) if "nway_cls" in want else None

    per_set: list[dict[str, dict]] = []
    for s, rec_store in enumerate(rec_stores):
        per_set.append(
            _score_sample_set(
                s,
                rec_store,
                gt_store,
                gt_features,
                gt_pixels,
                gt_labels,
                perm,
                batches,
                want,
                needed,
                backbones,
                settings,
                ttd_resize,
                device,
                progress,
            )
        )
    progress.close()

    metrics = _aggregate(per_set, settings, n, pairs, backbones, ttd_resize)
    return SuiteResult(
        trial_ids=pairs.trial_ids,
        sample_ids=pairs.sample_ids,
        metrics=metrics,
        backbones={
            name: backbones[name].info | {"preprocessing": backbones[name].preprocess_settings()} for name in needed
        },
        settings=settings,
        derangement=[int(i) for i in perm],
    )


def _score_sample_set(
    s,
    rec_store,
    gt_store,
    gt_features,
    gt_pixels,
    gt_labels,
    perm,
    batches,
    want,
    needed,
    backbones,
    settings,
    ttd_resize,
    device,
    progress,
) -> dict[str, dict]:
    """Scores of one sample set: ``{key: {"per_trial": (N,) array or None, "value": float (set-level), ...}}``."""
    n = len(rec_store)
    rec_feats: dict[str, dict[str, list[np.ndarray]]] = {name: {} for name in needed}
    pix = {key: [] for key in ("pixcorr", "pixcorr_shuffled", "ssim", "ssim_shuffled")}
    ttd_rows = {key: [] for key in ("mse", "pcc", "ssim_rgb", "lpips_alex")}
    for batch in batches:
        for name in needed:
            out = _run_backbone(name, backbones[name], rec_store, batch, ttd_resize)
            if name == "lpips":
                distances = squared_distance_matrix(
                    torch.from_numpy(out["lpips"]), torch.from_numpy(gt_features["lpips"]["lpips"])
                )
                ttd_rows["lpips_alex"].append(distances.numpy())
                continue
            for key, value in out.items():
                rec_feats[name].setdefault(key, []).append(value)
        if "pixcorr" in want or "ssim" in want:
            rec = rec_store.batch(batch, MINDEYE_PIXEL_RESIZE).to(device)
            gt = gt_store.batch(batch, MINDEYE_PIXEL_RESIZE).to(device)
            gt_shuffled = gt_store.batch([int(perm[i]) for i in batch], MINDEYE_PIXEL_RESIZE).to(device)
            if "pixcorr" in want:
                pix["pixcorr"].append(pearson_pairs(rec, gt).cpu().numpy())
                pix["pixcorr_shuffled"].append(pearson_pairs(rec, gt_shuffled).cpu().numpy())
            if "ssim" in want:
                rec_gray = rgb_to_gray(rec)
                pix["ssim"].append(ssim_pairs(rec_gray, rgb_to_gray(gt), SSIM_MINDEYE).double().cpu().numpy())
                pix["ssim_shuffled"].append(
                    ssim_pairs(rec_gray, rgb_to_gray(gt_shuffled), SSIM_MINDEYE).double().cpu().numpy()
                )
        if gt_pixels is not None:
            rec = rec_store.batch(batch, ttd_resize).to(device)
            if "mse" in want or "pcc" in want:
                mse, pcc = mse_and_pearson_matrices(rec, gt_pixels)
                ttd_rows["mse"].append(mse.cpu().numpy())
                ttd_rows["pcc"].append(pcc.cpu().numpy())
            if "ssim_rgb" in want:
                ttd_rows["ssim_rgb"].append(ssim_matrix(rec, gt_pixels, SSIM_DEFAULT).double().cpu().numpy())
        progress.step(f"sample {s}")

    rows = np.arange(n)
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
            out[group] = {"per_trial": ident.two_way_identification(corr)}
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
            out[f"pairid_{group}"] = {"per_trial": ident.pairwise_identification(matrix, higher_is_better=higher)}
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
            "per_trial": ident.nway_classifier_exact(probs, gt_labels, n_ways),
            "n": n_ways,
            "classes": k,
        }
        if settings.nway_trials > 0:
            mc = ident.nway_classifier_monte_carlo(probs, gt_labels, n_ways, settings.nway_trials, settings.seed)
            out["nway_cls_top1_mc"] = {"per_trial": mc.per_trial, "outcomes": mc.outcomes, "n": n_ways, "classes": k}
    if "nway_clip" in want:
        gt_e = _l2(gt_features["clip"]["clip"])
        rec_e = _l2(rec_features["clip"]["clip"])
        similarity = rec_e @ gt_e.T  # [j, i] = cos(rec_j, gt_i)
        for ways in sorted({w for w in settings.nway_clip_ns if 2 <= w <= n} | {n}):
            out[f"nway_clip_top1_{ways}way"] = {"per_trial": ident.nway_similarity_exact(similarity, ways), "n": ways}
    return out


def _row_pearson(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    za, zb = ident.standardize_rows(a), ident.standardize_rows(b)
    return (za * zb).sum(axis=1)


def _l2(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _aggregate(
    per_set, settings: SuiteSettings, n: int, pairs: PairedSet, backbones, ttd_resize
) -> dict[str, MetricResult]:
    results: dict[str, MetricResult] = {}
    for key in per_set[0]:
        entries = [scores[key] for scores in per_set]
        group = _group_of(key)
        if entries[0]["per_trial"] is None:
            per_sample = [entry["value"] for entry in entries]
            per_trial = per_trial0 = None
        else:
            stacked = np.stack([entry["per_trial"] for entry in entries])  # (S, N)
            per_sample = [float(row.mean()) for row in stacked]
            per_trial, per_trial0 = stacked.mean(axis=0), stacked[0]
        result = MetricResult(
            key,
            group,
            per_sample,
            per_trial,
            per_trial0,
            settings=_settings_for(key, group, settings, backbones, ttd_resize, entries[0]),
        )
        _set_chance(result, key, entries[0], n)
        if key == "nway_cls_top1_mc":
            mean, ci = ident.monte_carlo_ci(np.concatenate([entry["outcomes"] for entry in entries]))
            result.extra["mc_ci95"] = [ci[0], ci[1]]
            result.extra["mc_definition"] = (
                "Monte-Carlo 95% interval over all draws, stratified by trial (images fixed)"
            )
        if key.startswith("kid"):
            result.extra["caveat"] = (
                f"KID from {n} images per set with subsets of {entries[0]['subset_size']}: small-sample estimate "
                "with high variance; compare only at equal N and subset size."
            )
        if key == "fid":
            result.extra["caveat"] = (
                f"FID from N = {n} images per set (< 2048 feature dimensions): rank-deficient covariances, "
                "strongly biased upward and N-dependent; compare only at equal N."
            )
        results[key] = result
    return results


def _group_of(key: str) -> str:
    if key.startswith("pairid_"):
        return key.removeprefix("pairid_")
    if key.endswith("_shuffled"):
        return key.removesuffix("_shuffled")
    if key.startswith("kid"):
        return "kid"
    if key.startswith("nway_cls"):
        return "nway_cls"
    if key.startswith("nway_clip"):
        return "nway_clip"
    return key


def _set_chance(result: MetricResult, key: str, entry: dict, n: int) -> None:
    if key in ("alexnet2", "alexnet5", "inception", "clip") or key.startswith("pairid_"):
        result.chance = 0.5
    elif key.startswith("nway_"):
        result.chance = 1.0 / entry["n"]
    elif key.endswith("_shuffled") or key in ("fid", "kid_mean", "kid_std"):
        result.chance = None
    else:
        result.chance_key = f"{key}_shuffled"


def _settings_for(
    key: str, group: str, settings: SuiteSettings, backbones: dict[str, Backbone], ttd_resize: ResizeSpec, entry: dict
) -> dict:
    aggregation = (
        "per sample set (sample s of every trial vs all N GTs), then mean over sample sets; "
        "sample 0 reported too; never max"
    )
    common = {"sample_aggregation": aggregation}
    if group in ("pixcorr", "ssim"):
        common["resize"] = MINDEYE_PIXEL_RESIZE.describe()
        common["input_range"] = "float32 [0, 1] from uint8 /255"
        if group == "ssim":
            common["ssim"] = SSIM_MINDEYE.describe() | {"color": "skimage rgb2gray weights (0.2125, 0.7154, 0.0721)"}
        else:
            common["correlation"] = "Pearson r of flattened 3x425x425 vectors, float64"
    elif group in ("mse", "pcc", "ssim_rgb", "lpips_alex"):
        common["resize"] = ttd_resize.describe()
        common["eval_size"] = settings.eval_size
        common["input_range"] = "float32 [0, 1] from uint8 /255" + (
            "; LPIPS maps to [-1, 1]" if group == "lpips_alex" else ""
        )
        if group == "ssim_rgb":
            common["ssim"] = SSIM_DEFAULT.describe() | {"channel_axis": -1}
        if key.startswith("pairid_"):
            common["identification"] = (
                "score_i = #{j != i : m(rec_i, gt_i) strictly better than m(rec_i, gt_j)} / (N - 1); ties fail"
            )
    if key.endswith("_shuffled"):
        common["pairing"] = "rec_i with gt_perm(i), perm a seeded derangement (Sattolo) of the trials"
    backbone_name = GROUPS[group].backbone if group in GROUPS else None
    if backbone_name and backbone_name in backbones:
        backbone = backbones[backbone_name]
        common["backbone"] = dict(backbone.info)
        common["preprocessing"] = backbone.preprocess_settings()
    if group == "kid":
        common.update(
            kid_subsets=settings.kid_subsets,
            kid_subset_size=entry.get("subset_size"),
            kernel="(x.y/2048 + 1)^3",
            subset_seed=settings.seed,
        )
    if group == "fid":
        common.update(
            feature_dim=2048,
            covariance="unbiased (N - 1)",
            reference_set="the N ground-truth images",
            per_sample_set=True,
        )
    if group == "nway_cls":
        common.update(
            n=entry["n"],
            classes=entry["classes"],
            label="argmax of the classifier on the ground-truth image",
            ties="fail",
        )
        if key.endswith("_mc"):
            common.update(trials=settings.nway_trials, rng="numpy.random.default_rng(seed + i) per trial")
        else:
            common.update(formula="C(m_i, n-1) / C(K-1, n-1), m_i = #{k != c : p_k < p_c}")
    if group == "nway_clip":
        common.update(
            n=entry["n"], similarity="cosine of L2-normalised CLIP embeddings", formula="C(m_j, n-1) / C(N-1, n-1)"
        )
    return common
