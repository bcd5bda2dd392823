"""The entries of ``metrics.json``: per-sample-set scores aggregated, with chance levels and the settings used.

Each score is computed per sample set (sample s of every trial against all N ground truths); an entry's
value is the mean over sample sets, with the sample-0 value beside it. The max over samples is never
reported. The fields of an entry are listed in ``docs/evaluation.md``.
"""

import dataclasses
import math

import numpy as np

from ttdnet import ranking

from .metrics import GROUPS, key_info
from .pixels import SSIM_DEFAULT, SSIM_MINDEYE
from .scoring import MINDEYE_PIXEL_RESIZE, ScoringPlan, SuiteSettings


@dataclasses.dataclass
class MetricResult:
    """One entry of ``metrics.json``.

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
        """The JSON entry: value, sample-0 value, per-sample values, std and 95% CI over trials, and metadata."""
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


def aggregate(per_set: list[dict[str, dict]], plan: ScoringPlan, n: int) -> dict[str, MetricResult]:
    """One :class:`MetricResult` per key from the scores of every sample set.

    Parameters
    ----------
    per_set : list of dict
        :func:`~ttdnet.eval.scoring.score_sample_set` of each sample set, sample 0 first.
    plan : ScoringPlan
    n : int
        Trials per sample set.
    """
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
            key, group, per_sample, per_trial, per_trial0, settings=_settings_for(key, group, plan, entries[0])
        )
        _set_chance(result, key, entries[0])
        if key == "nway_cls_top1_mc":
            _, ci = ranking.monte_carlo_ci(np.concatenate([entry["outcomes"] for entry in entries]))
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


def _set_chance(result: MetricResult, key: str, entry: dict) -> None:
    if key in ("alexnet2", "alexnet5", "inception", "clip") or key.startswith("pairid_"):
        result.chance = 0.5
    elif key.startswith("nway_"):
        result.chance = 1.0 / entry["n"]
    elif key.endswith("_shuffled") or key in ("fid", "kid_mean", "kid_std"):
        result.chance = None
    else:
        result.chance_key = f"{key}_shuffled"


def _settings_for(key: str, group: str, plan: ScoringPlan, entry: dict) -> dict:
    settings: SuiteSettings = plan.settings
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
        common["resize"] = plan.ttd_resize.describe()
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
    if backbone_name and backbone_name in plan.backbones:
        backbone = plan.backbones[backbone_name]
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
