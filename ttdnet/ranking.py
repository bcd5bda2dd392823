"""Ranking candidates for each query, with ties counted against the target.

One rule serves every identification and retrieval score in the project: a candidate counts against the
target unless the target scores *strictly* higher than it, so ties (and comparisons with NaN) count against
the target. From that rule follow the target's rank, full-gallery top-k, the exact k-way top-t expectation
over all distractor sets and its seeded Monte-Carlo estimate with a Wilson confidence interval (so it
stays in [0, 1]). The definitions are written out in ``docs/evaluation.md`` ("Ranking, n-way and k-way").

Every function takes a score matrix ``scores`` of shape ``(Q, G)``: row ``j`` scores the ``G`` candidates
of query ``j`` (higher is better), and ``targets[j]`` is the column of its target (default: the diagonal).
"""

import dataclasses
import math

import numpy as np


def target_wins(scores: np.ndarray, targets: np.ndarray | None = None) -> np.ndarray:
    """How many of the other candidates each target scores strictly above.

    Parameters
    ----------
    scores : numpy.ndarray
        ``(Q, G)``; converted to float64.
    targets : numpy.ndarray, optional
        int ``(Q,)``: column of each query's target; default the diagonal (needs Q == G).

    Returns
    -------
    numpy.ndarray
        int ``(Q,)``: ``w_j = #{i != t_j : s_j,t_j > s_ji}``.
    """
    scores = np.asarray(scores, dtype=np.float64)
    targets = _targets(scores, targets)
    target_scores = scores[np.arange(scores.shape[0]), targets]
    return (target_scores[:, None] > scores).sum(axis=1)


def ranks(scores: np.ndarray, targets: np.ndarray | None = None) -> np.ndarray:
    """Rank of each query's target among its ``G`` candidates, ties counted against the target.

    Returns
    -------
    numpy.ndarray
        int ``(Q,)``: ``r_j = 1 + #{i != t_j : not s_j,t_j > s_ji} = G − w_j`` (see :func:`target_wins`).
    """
    scores = np.asarray(scores, dtype=np.float64)
    return scores.shape[1] - target_wins(scores, targets)


def top_k(scores: np.ndarray, k: int, targets: np.ndarray | None = None) -> np.ndarray:
    """Full-gallery top-k hits, ``1[r_j <= k]`` per query (float64 ``(Q,)``). Chance ``k / G``."""
    return (ranks(scores, targets) <= k).astype(np.float64)


def kway_top_exact(scores: np.ndarray, k: int, t: int, targets: np.ndarray | None = None) -> np.ndarray:
    """k-way top-t accuracy per query, exact over all ``C(G−1, k−1)`` distractor sets.

    Parameters
    ----------
    scores : numpy.ndarray
        ``(Q, G)``.
    k : int
        Ways: the target plus k − 1 distractors drawn uniformly without replacement, 2 ≤ k ≤ G.
    t : int
        Success if fewer than t of the drawn distractors count against the target (it ranks in the top t
        of the k candidates). ``t = 1`` is n-way top-1 identification.
    targets : numpy.ndarray, optional

    Returns
    -------
    numpy.ndarray
        float64 ``(Q,)``: ``P_j = Σ_{b<t} C(B_j, b)·C(G−1−B_j, k−1−b) / C(G−1, k−1)`` with ``B_j = r_j − 1``
        the candidates counting against the target. For ``t = 1``: ``C(w_j, k−1) / C(G−1, k−1)``.
        Chance ``t / k``.
    """
    scores = np.asarray(scores, dtype=np.float64)
    _check_kway(k, t, scores.shape[1])
    pool = scores.shape[1] - 1
    against = ranks(scores, targets) - 1
    total = math.comb(pool, k - 1)
    return np.array(
        [
            sum(math.comb(int(b), j) * math.comb(pool - int(b), k - 1 - j) for j in range(min(t, k))) / total
            for b in against
        ],
        dtype=np.float64,
    )


@dataclasses.dataclass
class MonteCarloResult:
    """A seeded Monte-Carlo estimate of k-way top-t accuracy.

    Attributes
    ----------
    per_query : numpy.ndarray
        float64 ``(Q,)``: each query's success rate over its draws.
    mean : float
        Mean over all Q·T draws.
    ci95 : tuple of float
        95% Wilson interval at the effective number of draws (see :func:`monte_carlo_ci`).
    trials : int
        T, draws per query.
    seed : int
    outcomes : numpy.ndarray
        float64 ``(Q, T)`` 0/1 outcomes of every draw.
    """

    per_query: np.ndarray
    mean: float
    ci95: tuple[float, float]
    trials: int
    seed: int
    outcomes: np.ndarray


Z95 = 1.959963984540054
"""The standard normal 97.5% quantile: the z of every 95% interval."""


def wilson_interval(proportion: float, n: float, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a proportion: within [0, 1], unlike ``p ± z·SE``.

    Parameters
    ----------
    proportion : float
        Observed share of successes ``p`` in [0, 1].
    n : float
        Number of 0/1 outcomes (> 0); a non-integer effective sample size is allowed.
    z : float
        Normal quantile; :data:`Z95` for a 95% interval.

    Returns
    -------
    tuple of float
        ``(p + z²/2n ∓ z·sqrt(p(1 − p)/n + z²/4n²)) / (1 + z²/n)``; the upper bound is exactly 1 when
        ``p = 1`` and the lower bound exactly 0 when ``p = 0``.
    """
    p = float(proportion)
    shrink = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / shrink
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / shrink
    low = 0.0 if p <= 0 else max(0.0, centre - half)
    high = 1.0 if p >= 1 else min(1.0, centre + half)
    return low, high


def monte_carlo_ci(outcomes: np.ndarray) -> tuple[float, tuple[float, float]]:
    """Mean and 95% Wilson interval of Bernoulli outcomes, stratified by query.

    Parameters
    ----------
    outcomes : numpy.ndarray
        ``(Q, T)`` 0/1 outcomes, T draws for each of Q queries.

    Returns
    -------
    mean : float
        ``p``, the mean of all Q·T outcomes.
    ci95 : tuple of float
        :func:`wilson_interval` of ``p`` at the effective number of draws ``n_eff = p(1 − p) / SE²``, where
        ``SE² = Σ_j s_j² / T / Q²`` (``s_j²``: sample variance of query j's T outcomes, 0 when T = 1) is the
        Monte-Carlo variance of the estimate with the scores held fixed; ``n_eff = Q·T`` when ``SE = 0``
        (every query's draws agree). The interval stays in [0, 1]: all draws successful gives ``[l, 1]``
        with ``l < 1``.
    """
    outcomes = np.asarray(outcomes, dtype=np.float64)
    n, t = outcomes.shape
    mean = float(outcomes.mean())
    variance = outcomes.var(axis=1, ddof=1) if t > 1 else np.zeros(n)
    se2 = float(variance.sum()) / t / n**2
    n_eff = mean * (1 - mean) / se2 if se2 > 0 else n * t
    return mean, wilson_interval(mean, n_eff)


def kway_top_monte_carlo(
    scores: np.ndarray, k: int, t: int, trials: int, seed: int, targets: np.ndarray | None = None
) -> MonteCarloResult:
    """Seeded Monte-Carlo k-way top-t: the sampled estimator of :func:`kway_top_exact`.

    Query ``j`` uses ``numpy.random.default_rng(seed + j)``; each of ``trials`` draws picks k − 1 distinct
    distractors uniformly from the G − 1 other candidates (``rng.choice(G − 1, k − 1, replace=False)``,
    indexing the candidates in column order with the target left out) and succeeds if fewer than t of them
    count against the target.

    Parameters
    ----------
    scores : numpy.ndarray
        ``(Q, G)``.
    k, t : int
        As :func:`kway_top_exact`.
    trials : int
        Draws per query.
    seed : int
    targets : numpy.ndarray, optional

    Returns
    -------
    MonteCarloResult
    """
    scores = np.asarray(scores, dtype=np.float64)
    targets = _targets(scores, targets)
    n_queries, n_candidates = scores.shape
    _check_kway(k, t, n_candidates)
    outcomes = np.zeros((n_queries, trials))
    for j in range(n_queries):
        rng = np.random.default_rng(seed + j)
        others = np.delete(np.arange(n_candidates), targets[j])
        against = ~(scores[j, targets[j]] > scores[j, others])
        for trial in range(trials):
            drawn = rng.choice(len(others), size=k - 1, replace=False)
            outcomes[j, trial] = float(against[drawn].sum() < t)
    mean, ci = monte_carlo_ci(outcomes)
    return MonteCarloResult(outcomes.mean(axis=1), mean, ci, trials, seed, outcomes)


def _check_kway(k: int, t: int, n_candidates: int) -> None:
    if not 2 <= k <= n_candidates:
        raise ValueError(f"k-way needs 2 <= k <= {n_candidates} (the number of candidates), got k={k}")
    if t < 1:
        raise ValueError(f"top-t needs t >= 1, got {t}")


def _targets(scores: np.ndarray, targets: np.ndarray | None) -> np.ndarray:
    """``targets`` as int64 ``(Q,)``, or the diagonal of a square ``scores``."""
    if scores.ndim != 2:
        raise ValueError(f"scores must be (Q, G), got shape {scores.shape}")
    if targets is None:
        if scores.shape[0] != scores.shape[1]:
            raise ValueError(f"scores are {scores.shape}; pass targets when the candidates are not the queries")
        return np.arange(scores.shape[0])
    targets = np.asarray(targets, dtype=np.int64)
    if targets.shape != (scores.shape[0],):
        raise ValueError(f"targets must have shape ({scores.shape[0]},), got {targets.shape}")
    return targets
