"""Zero-shot retrieval scores from a query × gallery similarity matrix (``metrics.md`` §3).

One definition serves the retrieval model's validation, its test report and anything else that ranks a
gallery: ranks with pessimistic ties, full-gallery top-k, exact k-way top-t (the expectation over all
distractor draws) and a seeded Monte-Carlo k-way estimate with a confidence interval.
"""

import dataclasses
import math
from collections.abc import Sequence

import numpy as np

from .identification import monte_carlo_ci


def ranks(similarity: np.ndarray, targets: np.ndarray | None = None) -> np.ndarray:
    """Rank of each query's target in its row, ties counted against the target.

    Parameters
    ----------
    similarity : numpy.ndarray
        ``(Q, G)``; ``similarity[j, i] = q_j · g_i``.
    targets : numpy.ndarray, optional
        int ``(Q,)``: gallery index of each query's target; default the diagonal (needs Q == G).

    Returns
    -------
    numpy.ndarray
        int ``(Q,)``: ``r_j = 1 + #{i != t_j : s_ji >= s_j,t_j}``.
    """
    similarity = np.asarray(similarity, dtype=np.float64)
    targets = _targets(similarity, targets)
    rows = np.arange(similarity.shape[0])
    target_scores = similarity[rows, targets]
    at_least = (similarity >= target_scores[:, None]).sum(axis=1)
    return at_least  # includes the target itself, so this is 1 + #{others >= target}


def top_k(similarity: np.ndarray, k: int, targets: np.ndarray | None = None) -> np.ndarray:
    """Full-gallery top-k hits, ``1[r_j <= k]`` per query (float64 ``(Q,)``). Chance ``k / G``."""
    return (ranks(similarity, targets) <= k).astype(np.float64)


def kway_top_exact(similarity: np.ndarray, k: int, t: int, targets: np.ndarray | None = None) -> np.ndarray:
    """k-way top-t accuracy per query, exact over all ``C(G−1, k−1)`` distractor sets.

    Parameters
    ----------
    similarity : numpy.ndarray
        ``(Q, G)``.
    k : int
        Ways: the target plus k − 1 distractors drawn uniformly without replacement, 2 ≤ k ≤ G.
    t : int
        Success if the target ranks in the top t of the k candidates (ties against the target).
    targets : numpy.ndarray, optional

    Returns
    -------
    numpy.ndarray
        float64 ``(Q,)``: ``P_j = Σ_{b<t} C(B_j, b)·C(G−1−B_j, k−1−b) / C(G−1, k−1)`` with ``B_j = r_j − 1``.
        Chance ``t / k``.
    """
    similarity = np.asarray(similarity, dtype=np.float64)
    pool = similarity.shape[1] - 1
    if not 2 <= k <= pool + 1:
        raise ValueError(f"k-way needs 2 <= k <= {pool + 1} (gallery of {pool + 1}), got k={k}")
    if t < 1:
        raise ValueError(f"top-t needs t >= 1, got {t}")
    beating = ranks(similarity, targets) - 1
    total = math.comb(pool, k - 1)
    return np.array(
        [
            sum(math.comb(int(b), j) * math.comb(pool - int(b), k - 1 - j) for j in range(min(t, k))) / total
            for b in beating
        ],
        dtype=np.float64,
    )


def kway_top_monte_carlo(
    similarity: np.ndarray, k: int, t: int, trials: int, seed: int, targets: np.ndarray | None = None
) -> tuple[np.ndarray, float, tuple[float, float]]:
    """Seeded Monte-Carlo k-way top-t (ATM's estimator, seeded and repeated).

    Query ``j`` uses ``numpy.random.default_rng(seed + j)``; each of ``trials`` draws picks k − 1 distinct
    distractors from the other G − 1 gallery items; success if fewer than t of them score ``>=`` the target.

    Returns
    -------
    per_query : numpy.ndarray
        float64 ``(Q,)`` success rates.
    mean : float
    ci95 : tuple of float
        Monte-Carlo 95% interval (see :func:`ttdnet.eval.identification.monte_carlo_ci`).
    """
    similarity = np.asarray(similarity, dtype=np.float64)
    targets = _targets(similarity, targets)
    n_queries, n_gallery = similarity.shape
    outcomes = np.zeros((n_queries, trials))
    for j in range(n_queries):
        rng = np.random.default_rng(seed + j)
        others = np.delete(np.arange(n_gallery), targets[j])
        beats = similarity[j, others] >= similarity[j, targets[j]]
        for trial in range(trials):
            drawn = rng.choice(len(others), size=k - 1, replace=False)
            outcomes[j, trial] = float(beats[drawn].sum() < t)
    mean, ci = monte_carlo_ci(outcomes)
    return outcomes.mean(axis=1), mean, ci


@dataclasses.dataclass
class RetrievalScore:
    """One retrieval metric: key (``top1``, ``top5_50way``, ...), value, chance and per-query scores."""

    key: str
    value: float
    chance: float
    per_query: np.ndarray
    ci95: tuple[float, float] | None = None
    definition: str = ""


def retrieval_scores(
    similarity: np.ndarray,
    ks: Sequence[int] = (2, 4, 10, 50, 100, 200),
    ts: Sequence[int] = (1, 5),
    targets: np.ndarray | None = None,
    mc_trials: int = 0,
    seed: int = 0,
) -> dict[str, RetrievalScore]:
    """Every retrieval metric of ``metrics.md`` §3 from one similarity matrix.

    Parameters
    ----------
    similarity : numpy.ndarray
        ``(Q, G)`` query × gallery similarities (cosine of L2-normalised embeddings).
    ks : sequence of int
        k-way sizes; those above G are skipped.
    ts : sequence of int
        Top-t cut-offs; combinations with t >= k are skipped (always 1).
    targets : numpy.ndarray, optional
        Gallery index of each query's target (default the diagonal).
    mc_trials : int
        If > 0, also a seeded Monte-Carlo estimate per (k, t) (key suffix ``_mc``) with its CI.
    seed : int

    Returns
    -------
    dict
        ``top{t}`` (full-gallery, chance t/G) and ``top{t}_{k}way`` (exact, chance t/k), plus ``_mc`` keys.
    """
    similarity = np.asarray(similarity, dtype=np.float64)
    n_gallery = similarity.shape[1]
    out: dict[str, RetrievalScore] = {}
    for t in ts:
        if t > n_gallery:
            continue
        hits = top_k(similarity, t, targets)
        out[f"top{t}"] = RetrievalScore(
            f"top{t}", float(hits.mean()), t / n_gallery, hits, definition=f"{n_gallery}-way top-{t}, ties pessimistic"
        )
    for k in ks:
        if k > n_gallery:
            continue
        for t in ts:
            if t >= k:
                continue
            per = kway_top_exact(similarity, k, t, targets)
            key = f"top{t}_{k}way"
            out[key] = RetrievalScore(
                key, float(per.mean()), t / k, per, definition=f"{k}-way top-{t}, exact expectation"
            )
            if mc_trials > 0:
                per_mc, mean, ci = kway_top_monte_carlo(similarity, k, t, mc_trials, seed, targets)
                out[key + "_mc"] = RetrievalScore(
                    key + "_mc",
                    mean,
                    t / k,
                    per_mc,
                    ci,
                    definition=f"{k}-way top-{t}, {mc_trials} seeded draws per query",
                )
    return out


def _targets(similarity: np.ndarray, targets: np.ndarray | None) -> np.ndarray:
    if similarity.ndim != 2:
        raise ValueError(f"similarity must be (Q, G), got shape {similarity.shape}")
    if targets is None:
        if similarity.shape[0] != similarity.shape[1]:
            raise ValueError(f"similarity is {similarity.shape}; pass targets when the gallery is not the query set")
        return np.arange(similarity.shape[0])
    targets = np.asarray(targets, dtype=np.int64)
    if targets.shape != (similarity.shape[0],):
        raise ValueError(f"targets must have shape ({similarity.shape[0]},), got {targets.shape}")
    return targets
