"""Identification accuracies: exhaustive 2-way, pairwise identification, exact and Monte-Carlo n-way.

Every function returns **per-trial** scores; the reported value is their mean. The exact n-way forms are
the infinite-trial limits of the sampled estimators used in the literature, so they are deterministic;
the Monte-Carlo forms are seeded and come with a confidence interval (``metrics.md`` §1.1, §2.2, §2.4, §2.5).
"""

import dataclasses
import math

import numpy as np


def standardize_rows(features: np.ndarray) -> np.ndarray:
    """Rows centred and scaled so that ``Z @ Z.T`` is the Pearson correlation matrix.

    Parameters
    ----------
    features : numpy.ndarray
        ``(N, D)``; converted to float64.

    Returns
    -------
    numpy.ndarray
        float64 ``(N, D)`` with zero row means and unit row norms (constant rows become all-NaN, like
        :func:`numpy.corrcoef`).
    """
    z = np.asarray(features, dtype=np.float64)
    z = z - z.mean(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return z / np.linalg.norm(z, axis=1, keepdims=True)


def correlation_matrix(gt_features: np.ndarray, rec_features: np.ndarray) -> np.ndarray:
    """Pearson correlations between every ground-truth and every reconstruction feature vector.

    Parameters
    ----------
    gt_features : numpy.ndarray
        ``(N, D)``.
    rec_features : numpy.ndarray
        ``(M, D)``.

    Returns
    -------
    numpy.ndarray
        float64 ``(N, M)``; ``R[i, j] = Pearson(gt_features[i], rec_features[j])``, equal to
        ``np.corrcoef(gt_features, rec_features)[:N, N:]``.
    """
    return standardize_rows(gt_features) @ standardize_rows(rec_features).T


def two_way_identification(corr: np.ndarray) -> np.ndarray:
    """MindEye's exhaustive 2-way identification (``metrics.md`` §1.1).

    Parameters
    ----------
    corr : numpy.ndarray
        ``(N, N)``; ``corr[i, j]`` = similarity of ground truth ``i`` and reconstruction ``j``.

    Returns
    -------
    numpy.ndarray
        float64 ``(N,)``; entry ``j`` = fraction of the N − 1 other ground truths ``i`` with
        ``corr[i, j] < corr[j, j]`` (strict; ties fail). Chance 0.5.
    """
    corr = np.asarray(corr, dtype=np.float64)
    n = _square(corr)
    diagonal = np.diag(corr)
    success = corr < diagonal[None, :]
    return success.sum(axis=0) / (n - 1)


def pairwise_identification(scores: np.ndarray, higher_is_better: bool) -> np.ndarray:
    """TTD-net's pairwise identification (``metrics.md`` §2.2).

    Parameters
    ----------
    scores : numpy.ndarray
        ``(N, N)``; ``scores[i, j] = m(rec_i, gt_j)``.
    higher_is_better : bool
        True for PCC and SSIM, False for MSE and LPIPS.

    Returns
    -------
    numpy.ndarray
        float64 ``(N,)``; entry ``i`` = fraction of ``j != i`` with ``m(rec_i, gt_i)`` strictly better than
        ``m(rec_i, gt_j)``. Chance 0.5.
    """
    scores = np.asarray(scores, dtype=np.float64)
    n = _square(scores)
    diagonal = np.diag(scores)[:, None]
    better = scores < diagonal if higher_is_better else scores > diagonal
    return better.sum(axis=1) / (n - 1)


def nway_exact(beaten: np.ndarray, n: int, pool: int) -> np.ndarray:
    """Exact probability that the target wins an n-way comparison against random distractors.

    Parameters
    ----------
    beaten : numpy.ndarray
        int ``(N,)``; how many of the ``pool`` candidate distractors score strictly below the target.
    n : int
        Ways (the target plus n − 1 distractors drawn without replacement).
    pool : int
        Number of candidate distractors (K − 1 classes, or N − 1 other images).

    Returns
    -------
    numpy.ndarray
        float64 ``(N,)``; ``C(beaten, n−1) / C(pool, n−1)``, 0 where ``beaten < n − 1``.
    """
    if not 2 <= n <= pool + 1:
        raise ValueError(f"n-way needs 2 <= n <= {pool + 1} (pool of {pool} distractors), got n={n}")
    total = math.comb(pool, n - 1)
    return np.array([math.comb(int(b), n - 1) / total for b in np.asarray(beaten)], dtype=np.float64)


@dataclasses.dataclass
class MonteCarloResult:
    """A seeded Monte-Carlo estimate.

    Attributes
    ----------
    per_trial : numpy.ndarray
        float64 ``(N,)``: each trial's success rate over its draws.
    mean : float
        Mean over all N·T draws.
    ci95 : tuple of float
        ``mean ± 1.96·SE`` with ``SE² = Σ_i s_i² / T / N²`` (``s_i²``: sample variance of trial i's T
        outcomes): the Monte-Carlo uncertainty of the estimate, for fixed images.
    trials : int
    seed : int
    outcomes : numpy.ndarray
        ``(N, T)`` 0/1 outcomes of every draw.
    """

    per_trial: np.ndarray
    mean: float
    ci95: tuple[float, float]
    trials: int
    seed: int
    outcomes: np.ndarray


def monte_carlo_ci(outcomes: np.ndarray) -> tuple[float, tuple[float, float]]:
    """Mean and 95% CI of ``(N, T)`` Bernoulli outcomes, stratified by trial (see :class:`MonteCarloResult`)."""
    outcomes = np.asarray(outcomes, dtype=np.float64)
    n, t = outcomes.shape
    mean = float(outcomes.mean())
    variance = outcomes.var(axis=1, ddof=1) if t > 1 else np.zeros(n)
    se = math.sqrt(float(variance.sum()) / t) / n
    return mean, (mean - 1.96 * se, mean + 1.96 * se)


def nway_classifier_exact(probs: np.ndarray, labels: np.ndarray, n: int) -> np.ndarray:
    """n-way top-1 with a classifier, exact (``metrics.md`` §2.4).

    Parameters
    ----------
    probs : numpy.ndarray
        ``(N, K)`` class probabilities of the reconstructions.
    labels : numpy.ndarray
        int ``(N,)``: the classifier's argmax on each ground-truth image.
    n : int

    Returns
    -------
    numpy.ndarray
        float64 ``(N,)``: ``C(m_i, n−1) / C(K−1, n−1)`` with ``m_i = #{k != c_i : p_k < p_c}``. Chance 1/n.
    """
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels)
    target = probs[np.arange(len(labels)), labels]
    beaten = (probs < target[:, None]).sum(axis=1)
    return nway_exact(beaten, n, probs.shape[1] - 1)


def nway_classifier_monte_carlo(
    probs: np.ndarray, labels: np.ndarray, n: int, trials: int, seed: int
) -> MonteCarloResult:
    """n-way top-1 with a classifier, sampled like TTD-net/DreamDiffusion but seeded.

    Trial ``i`` uses ``numpy.random.default_rng(seed + i)`` and draws, ``trials`` times, ``n − 1`` classes
    without replacement from the ``K − 1`` classes other than ``labels[i]``; a draw succeeds if the label's
    probability is strictly the highest.

    Parameters
    ----------
    probs : numpy.ndarray
        ``(N, K)``.
    labels : numpy.ndarray
        int ``(N,)``.
    n, trials, seed : int

    Returns
    -------
    MonteCarloResult
    """
    probs = np.asarray(probs, dtype=np.float64)
    n_items, k = probs.shape
    outcomes = np.zeros((n_items, trials))
    for i in range(n_items):
        rng = np.random.default_rng(seed + i)
        others = np.delete(np.arange(k), labels[i])
        target = probs[i, labels[i]]
        for t in range(trials):
            drawn = rng.choice(others, size=n - 1, replace=False)
            outcomes[i, t] = float(np.all(probs[i, drawn] < target))
    mean, ci = monte_carlo_ci(outcomes)
    return MonteCarloResult(outcomes.mean(axis=1), mean, ci, trials, seed, outcomes)


def nway_similarity_exact(similarity: np.ndarray, n: int) -> np.ndarray:
    """n-way identification from a reconstruction × ground-truth similarity matrix (``metrics.md`` §2.5).

    Parameters
    ----------
    similarity : numpy.ndarray
        ``(N, N)``; ``similarity[j, i] = cos(e(rec_j), e(gt_i))``.
    n : int
        2 ≤ n ≤ N.

    Returns
    -------
    numpy.ndarray
        float64 ``(N,)``: ``C(m_j, n−1) / C(N−1, n−1)`` with ``m_j = #{i != j : s_ji < s_jj}``. Chance 1/n.
    """
    similarity = np.asarray(similarity, dtype=np.float64)
    size = _square(similarity)
    beaten = (similarity < np.diag(similarity)[:, None]).sum(axis=1)
    return nway_exact(beaten, n, size - 1)


def derangement(n: int, seed: int) -> np.ndarray:
    """A seeded permutation of ``range(n)`` without fixed points (Sattolo's algorithm: a single n-cycle).

    Parameters
    ----------
    n : int
        At least 2.
    seed : int

    Returns
    -------
    numpy.ndarray
        int ``(n,)`` with ``perm[i] != i`` for every i.
    """
    if n < 2:
        raise ValueError(f"a derangement needs n >= 2, got {n}")
    rng = np.random.default_rng(seed)
    perm = np.arange(n)
    for i in range(n - 1, 0, -1):
        j = int(rng.integers(0, i))
        perm[i], perm[j] = perm[j], perm[i]
    return perm


def _square(matrix: np.ndarray) -> int:
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or matrix.shape[0] < 2:
        raise ValueError(f"expected a square (N, N) matrix with N >= 2, got shape {matrix.shape}")
    return matrix.shape[0]
