"""95% intervals over trials: Wilson for 0/1 outcomes, seeded percentile bootstrap otherwise, always in range."""

import math

import numpy as np
import pytest
from scipy import stats

from ttdnet import ranking
from ttdnet.eval import intervals
from ttdnet.eval.metric_entries import MetricResult, score_range


Z = 1.959963984540054


def test_wilson_matches_the_closed_form_and_scipy():
    # 8 of 10: the textbook Wilson interval [0.4902, 0.9433], and scipy's own implementation.
    low, high = ranking.wilson_interval(0.8, 10)
    assert (round(low, 4), round(high, 4)) == (0.4902, 0.9433)
    reference = stats.binomtest(8, 10).proportion_ci(0.95, method="wilson")
    assert low == pytest.approx(reference.low, abs=1e-12) and high == pytest.approx(reference.high, abs=1e-12)
    # By hand: centre (p + z²/2n) / (1 + z²/n), half-width z·sqrt(p(1-p)/n + z²/4n²) / (1 + z²/n).
    p, n = 13 / 40, 40
    centre = (p + Z**2 / 80) / (1 + Z**2 / 40)
    half = Z * math.sqrt(p * (1 - p) / 40 + Z**2 / 6400) / (1 + Z**2 / 40)
    assert ranking.wilson_interval(p, n) == pytest.approx((centre - half, centre + half), abs=1e-15)


@pytest.mark.parametrize("n", [2, 7, 200])
def test_wilson_at_the_edges_stays_in_zero_one(n):
    low, high = ranking.wilson_interval(1.0, n)
    assert high == 1.0 and low == pytest.approx(n / (n + Z**2), abs=1e-12) and low < 1.0
    low, high = ranking.wilson_interval(0.0, n)
    assert low == 0.0 and high == pytest.approx(Z**2 / (n + Z**2), abs=1e-12) and high > 0.0


def test_bootstrap_is_seeded_contains_the_mean_and_replays_the_documented_draws():
    scores = np.random.default_rng(3).beta(5, 2, size=37)
    first = intervals.bootstrap_mean_interval(scores, (0.0, 1.0), seed=4)
    assert first == intervals.bootstrap_mean_interval(scores, (0.0, 1.0), seed=4)
    assert first != intervals.bootstrap_mean_interval(scores, (0.0, 1.0), seed=5)
    assert first[0] < scores.mean() < first[1]
    rng = np.random.default_rng(4)  # one batch: 2000 · 37 indices fit in BOOTSTRAP_BATCH_VALUES
    means = scores[rng.integers(0, 37, (2000, 37))].mean(axis=1)
    assert first == tuple(np.quantile(means, [0.025, 0.975]))


def test_bootstrap_draws_in_the_documented_batches(monkeypatch):
    scores = np.random.default_rng(6).random(50)
    rng = np.random.default_rng(1)
    means = np.concatenate([scores[rng.integers(0, 50, (b, 50))].mean(axis=1) for b in (60, 60, 60, 20)])
    monkeypatch.setattr(intervals, "BOOTSTRAP_BATCH_VALUES", 60 * 50)
    interval = intervals.bootstrap_mean_interval(scores, (0.0, 1.0), seed=1, resamples=200)
    assert interval == tuple(np.quantile(means, [0.025, 0.975]))


def test_an_accuracy_near_one_keeps_its_interval_below_one():
    # 39 trials identified perfectly, one at 0.5: mean ± 1.96·SE would reach above 1.
    scores = np.array([1.0] * 39 + [0.5])
    normal_high = scores.mean() + 1.96 * scores.std(ddof=1) / math.sqrt(40)
    assert normal_high > 1.0
    interval = intervals.trial_interval(scores, (0.0, 1.0), single_outcome=False, seed=0)
    assert interval.method == "bootstrap" and interval.low < scores.mean() <= interval.high <= 1.0
    assert interval.settings == {"resamples": 2000, "seed": 0, "range": [0.0, 1.0]}
    everything = intervals.trial_interval(np.ones(12), (0.0, 1.0), single_outcome=False, seed=0)
    assert (everything.low, everything.high) == (1.0, 1.0)


def test_single_outcomes_get_wilson_and_one_trial_gets_none():
    outcomes = np.array([1.0] * 9 + [0.0])
    interval = intervals.trial_interval(outcomes, (0.0, 1.0), single_outcome=True, seed=0)
    reference = stats.binomtest(9, 10).proportion_ci(0.95, method="wilson")
    assert interval.method == "wilson" and interval.settings == {"n": 10, "z": Z}
    assert (interval.low, interval.high) == pytest.approx((reference.low, reference.high), abs=1e-12)
    perfect = intervals.trial_interval(np.ones(10), (0.0, 1.0), single_outcome=True, seed=0)
    assert perfect.high == 1.0 and perfect.low < 1.0
    assert intervals.trial_interval(np.array([0.3]), (0.0, 1.0), single_outcome=False, seed=0) is None


def test_metric_entries_record_the_method_and_an_open_range_as_null():
    mse = MetricResult("mse", "mse", [0.02], np.array([0.0, 0.0, 0.0, 0.05]), None)
    entry = mse.to_dict(seed=7, n_trials=4)
    assert entry["ci95_method"] == "bootstrap" and entry["ci95_settings"]["range"] == [0.0, None]
    assert entry["ci95_settings"]["seed"] == 7 and 0.0 <= entry["ci95"][0] < entry["ci95"][1]
    top1 = MetricResult("nway_clip_top1_5way", "nway_clip", [0.8], np.array([1.0, 1.0, 0.0, 1.0, 1.0]), None)
    top1.single_outcome = True
    entry = top1.to_dict(seed=0, n_trials=5)
    assert entry["ci95_method"] == "wilson"
    assert entry["ci95"] == pytest.approx(list(ranking.wilson_interval(0.8, 5)))


@pytest.mark.parametrize(
    ("key", "expected"),
    [("clip", (0, 1)), ("pairid_mse", (0, 1)), ("nway_cls_top1_mc", (0, 1)), ("pixcorr_shuffled", (-1, 1)),
     ("ssim_rgb", (-1, 1)), ("swav", (0, 2)), ("lpips_alex", (0, math.inf)), ("mse_shuffled", (0, math.inf))],
)  # fmt: skip
def test_score_ranges(key, expected):
    assert score_range(key) == expected
