"""The entries of ``metrics.json``: per-sample-set scores aggregated, with chance levels and the settings used.

Each score is computed per sample set (sample s of every trial against all N ground truths); an entry's
value is the mean over sample sets, with the sample-0 value beside it. The max over samples is never
reported. The fields of an entry are listed in ``docs/evaluation.md``.

A per-trial score can be undefined: the Pearson r of a constant image (PixCorr, PCC) or feature vector
(EffNet-B, SwAV). Such a pair is left out of every mean, counted in the entry's ``undefined`` with an
``undefined_reason``, and written as ``null``; NaN never reaches ``metrics.json``.

The 95% interval over trials (``ci95``) stays within the score's range (:func:`score_range`): Wilson where
each trial's score is one 0/1 outcome, a seeded percentile bootstrap otherwise (:mod:`~ttdnet.eval.intervals`);
``ci95_method`` and ``ci95_settings`` say which and how.
"""

import dataclasses
import math

import numpy as np

from ttdnet import ranking

from .intervals import trial_interval
from .metrics import GROUPS, key_info
from .pixels import SSIM_DEFAULT, SSIM_MINDEYE
from .scoring import MINDEYE_PIXEL_RESIZE, ScoringPlan, SuiteSettings


@dataclasses.dataclass
class MetricResult:
    """One entry of ``metrics.json``.

    ``per_sample`` holds the value of each sample set (first = sample 0), the mean over its defined pairs;
    ``per_trial`` the per-trial scores averaged over the sample sets where they are defined,
    ``per_trial_sample0`` those of sample 0 (None for set-level metrics). NaN marks an undefined score;
    ``undefined`` counts the undefined (trial, sample) pairs and ``undefined_reason`` says why.
    ``single_outcome`` marks a per-trial score that is one 0/1 outcome (its interval is Wilson's).
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
    undefined: int = 0
    undefined_reason: str | None = None
    single_outcome: bool = False

    def to_dict(self, seed: int, n_trials: int) -> dict:
        """The JSON entry: value, sample-0 value, per-sample values, std and 95% CI over trials, and metadata.

        Undefined values are None; ``std`` and ``ci95`` are over the trials with a defined score (None with
        fewer than 2), ``ci95_method`` (``"wilson"`` or ``"bootstrap"``) and ``ci95_settings`` say how the
        interval was made (:func:`~ttdnet.eval.intervals.trial_interval`, bootstrap seeded with ``seed``).
        """
        name, direction, definition = key_info(self.key)
        defined_sets = [v for v in self.per_sample if not math.isnan(v)]
        value = float(np.mean(defined_sets)) if defined_sets else None
        std = interval = None
        if self.per_trial is not None and value is not None:
            defined = self.per_trial[~np.isnan(self.per_trial)]
            if len(defined) > 1:
                std = float(np.std(defined, ddof=1))
                interval = trial_interval(defined, score_range(self.key), self.single_outcome, seed)
        entry = {
            "name": name,
            "key": self.key,
            "group": self.group,
            "value": value,
            "value_sample0": json_number(self.per_sample[0]),
            "per_sample": [json_number(v) for v in self.per_sample],
            "undefined": self.undefined,
            "undefined_reason": self.undefined_reason,
            "std": std,
            "n": n_trials,
            "n_samples": len(self.per_sample),
            "ci95": [interval.low, interval.high] if interval else None,
            "ci95_method": interval.method if interval else None,
            "ci95_settings": interval.settings if interval else None,
            "direction": direction,
            "chance": self.chance,
            "chance_key": self.chance_key,
            "definition": definition,
            "settings": self.settings,
            "seed": seed,
        }
        entry.update(self.extra)
        return entry


def json_number(value: float) -> float | None:
    """``value`` as a float, or None where it is NaN (an undefined score)."""
    return None if math.isnan(value) else float(value)


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
            undefined = 0
        else:
            stacked = np.stack([entry["per_trial"] for entry in entries])  # (S, N)
            per_sample, per_trial = _defined_means(stacked)
            per_trial0 = stacked[0]
            undefined = int(np.isnan(stacked).sum())
        result = MetricResult(
            key, group, per_sample, per_trial, per_trial0, settings=_settings_for(key, group, plan, entries[0])
        )
        result.single_outcome = len(entries) == 1 and _full_gallery(key, entries[0], n)
        if undefined:
            result.undefined = undefined
            result.undefined_reason = _undefined_reason(group, undefined, n * len(entries), len(entries))
        if "compared_undefined" in entries[0]:
            compared = int(sum(int(entry["compared_undefined"].sum()) for entry in entries))
            result.extra["undefined_comparisons"] = compared
            if compared:
                result.extra["caveat"] = (
                    f"{compared} of {n * len(entries)} reconstructions were compared through an undefined "
                    "similarity (a constant image or feature vector); each such comparison counts as a failure "
                    "(the tie rule)."
                )
        _set_chance(result, key, entries[0])
        if key == "nway_cls_top1_mc":
            _, ci = ranking.monte_carlo_ci(np.concatenate([entry["outcomes"] for entry in entries]))
            result.extra["mc_ci95"] = [ci[0], ci[1]]
            result.extra["mc_ci95_method"] = "wilson"
            result.extra["mc_definition"] = (
                "Monte-Carlo 95% interval over all draws, stratified by trial (images fixed): Wilson score "
                "interval at the effective number of draws p(1 - p) / SE^2"
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


def _defined_means(stacked: np.ndarray) -> tuple[list[float], np.ndarray]:
    """Means that leave the undefined (NaN) scores out.

    Parameters
    ----------
    stacked : numpy.ndarray
        float ``(S, N)``: per-trial scores of each sample set.

    Returns
    -------
    per_sample : list of float
        ``S`` means over the defined trials of each set (NaN for a set with none).
    per_trial : numpy.ndarray
        float ``(N,)``: means over the sample sets where the trial is defined (NaN where it is in none).
    """
    defined = ~np.isnan(stacked)
    sums = np.where(defined, stacked, 0.0)
    per_sample = [float(row.sum() / ok.sum()) if ok.any() else math.nan for row, ok in zip(sums, defined)]
    counts = defined.sum(axis=0)
    per_trial = np.where(counts > 0, sums.sum(axis=0) / np.maximum(counts, 1), np.nan)
    return per_sample, per_trial


def _undefined_reason(group: str, undefined: int, total: int, n_sets: int) -> str:
    """Why ``undefined`` of ``total`` pairs have no score, and what the value averages instead."""
    what = "feature vector" if group in ("effnet_b", "swav") else "image"
    text = f"{undefined} of {total} pairs have a constant {what} (zero variance), so their Pearson r is undefined; "
    if undefined == total:
        return text + "no pair is defined, so there is no value."
    where = " (per sample set, then over sample sets)" if n_sets > 1 else ""
    return text + f"the value is the mean over the {total - undefined} defined pairs{where}."


SCORE_RANGES: dict[str, tuple[float, float]] = {
    "pixcorr": (-1.0, 1.0),
    "pcc": (-1.0, 1.0),
    "ssim": (-1.0, 1.0),
    "ssim_rgb": (-1.0, 1.0),
    "effnet_b": (0.0, 2.0),
    "swav": (0.0, 2.0),
    "mse": (0.0, math.inf),
    "lpips_alex": (0.0, math.inf),
}
"""Range of each raw per-trial score (and of its ``*_shuffled`` baseline): correlations and SSIM in [-1, 1],
correlation distances in [0, 2], MSE and LPIPS in [0, inf)."""
ACCURACIES = ("alexnet2", "alexnet5", "inception", "clip")


def score_range(key: str) -> tuple[float, float]:
    """The range a per-trial score of ``key`` can take: [0, 1] for the accuracies, :data:`SCORE_RANGES` otherwise."""
    if key in ACCURACIES or key.startswith(("pairid_", "nway_")):
        return 0.0, 1.0
    return SCORE_RANGES[key.removesuffix("_shuffled")]


def _full_gallery(key: str, entry: dict, n: int) -> bool:
    """Whether an n-way score uses every candidate, so each trial's score is one 0/1 outcome (top-1 or not)."""
    if key.startswith("nway_cls"):
        return entry["n"] == entry["classes"]
    return key.startswith("nway_clip") and entry["n"] == n


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
    if key in ACCURACIES or key.startswith("pairid_"):
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
