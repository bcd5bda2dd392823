"""95% confidence intervals of a metric's mean over trials that stay within the metric's range.

``mean ± 1.96·SE`` can leave the range a score lives in (an accuracy of 0.99 over 40 trials would get an
upper bound above 1), so each ``metrics.json`` entry gets one of two intervals, recorded as ``ci95_method``:

- ``"wilson"``: when each trial's score is a single 0/1 outcome (full-gallery top-1 with one sample per
  trial), the Wilson score interval of the share of successes among the n trials
  (:func:`ttdnet.ranking.wilson_interval`).
- ``"bootstrap"``: otherwise (fractions such as 2-way identification, exact n-way expectations, means over
  samples, raw values), the percentile bootstrap of the mean over trials: :data:`BOOTSTRAP_RESAMPLES`
  resamples of the trials with replacement, drawn by ``numpy.random.default_rng(seed)``, clipped to the
  metric's range.

``docs/evaluation.md`` ("Confidence intervals") states both for the user.
"""

import dataclasses
import math

import numpy as np

from ttdnet import ranking


BOOTSTRAP_RESAMPLES = 2000
"""Resamples of the percentile bootstrap."""
BOOTSTRAP_BATCH_VALUES = 1 << 22
"""At most this many resampled indices are held at once (resamples per batch = this // N)."""


@dataclasses.dataclass(frozen=True)
class Interval:
    """A 95% interval of a mean over trials.

    Attributes
    ----------
    low, high : float
    method : str
        ``"wilson"`` or ``"bootstrap"``.
    settings : dict
        What reproduces it: ``n`` and ``z`` (Wilson); ``resamples``, ``seed`` and ``range`` (bootstrap;
        an infinite end of the range is None).
    """

    low: float
    high: float
    method: str
    settings: dict


def trial_interval(
    scores: np.ndarray, score_range: tuple[float, float], single_outcome: bool, seed: int
) -> Interval | None:
    """The 95% interval of the mean of per-trial scores, by the rule of this module.

    Parameters
    ----------
    scores : numpy.ndarray
        float ``(n,)``: the defined per-trial scores (no NaN).
    score_range : tuple of float
        ``(low, high)`` the score can take; ``±math.inf`` for an open end.
    single_outcome : bool
        Each score is one 0/1 outcome: the Wilson interval.
    seed : int
        Seed of the bootstrap resampling.

    Returns
    -------
    Interval or None
        None with fewer than 2 scores.
    """
    scores = np.asarray(scores, dtype=np.float64)
    if len(scores) < 2:
        return None
    if single_outcome:
        low, high = ranking.wilson_interval(float(scores.mean()), len(scores))
        return Interval(low, high, "wilson", {"n": len(scores), "z": ranking.Z95})
    low, high = bootstrap_mean_interval(scores, score_range, seed)
    settings = {
        "resamples": BOOTSTRAP_RESAMPLES,
        "seed": seed,
        "range": [None if math.isinf(end) else end for end in score_range],
    }
    return Interval(low, high, "bootstrap", settings)


def bootstrap_mean_interval(
    scores: np.ndarray, score_range: tuple[float, float], seed: int, resamples: int = BOOTSTRAP_RESAMPLES
) -> tuple[float, float]:
    """Seeded percentile-bootstrap 95% interval of the mean, clipped to ``score_range``.

    Parameters
    ----------
    scores : numpy.ndarray
        float ``(n,)``, n >= 2, no NaN.
    score_range : tuple of float
    seed : int
        ``rng = numpy.random.default_rng(seed)`` draws the resamples in batches of
        ``b = max(1, BOOTSTRAP_BATCH_VALUES // n)``: ``rng.integers(0, n, (b, n))`` (the last batch smaller).
    resamples : int

    Returns
    -------
    tuple of float
        The 2.5% and 97.5% quantiles (``numpy.quantile``, linear) of the resampled means. A percentile
        interval of a mean lies within ``[min(scores), max(scores)]``, so it stays in the range; the clip
        only removes rounding. All scores equal give a zero-width interval: it measures the spread over
        trials, nothing else.
    """
    scores = np.asarray(scores, dtype=np.float64)
    n = len(scores)
    rng = np.random.default_rng(seed)
    per_batch = max(1, BOOTSTRAP_BATCH_VALUES // n)
    means = np.empty(resamples)
    for start in range(0, resamples, per_batch):
        size = min(per_batch, resamples - start)
        means[start : start + size] = scores[rng.integers(0, n, (size, n))].mean(axis=1)
    low, high = np.quantile(means, [0.025, 0.975])
    return float(np.clip(low, *score_range)), float(np.clip(high, *score_range))
