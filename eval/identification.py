"""Identification accuracies: exhaustive 2-way, pairwise identification, exact and Monte-Carlo n-way.

Every function returns **per-trial** scores; the reported value is their mean. Each counts how often a
reconstruction's own ground truth beats the others under :mod:`ttdnet.ranking`'s rule (only a strictly
better score wins; ties fail). The exact n-way forms are the infinite-trial limits of the sampled
estimators used in the literature, so they are deterministic; the Monte-Carlo forms are seeded and come
with a confidence interval. ``docs/evaluation.md`` writes the definitions out.
"""

import numpy as np

from ttdnet import ranking


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
    """MindEye's exhaustive 2-way identification: each reconstruction's ground truth against every other one.

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
    return ranking.target_wins(corr.T) / (n - 1)


def pairwise_identification(scores: np.ndarray, higher_is_better: bool) -> np.ndarray:
    """TTD-net's pairwise identification: each reconstruction's metric to its own ground truth against the others.

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
    return ranking.target_wins(scores if higher_is_better else -scores) / (n - 1)


def nway_classifier_exact(probs: np.ndarray, labels: np.ndarray, n: int) -> np.ndarray:
    """n-way top-1 with a classifier, exact: k-way top-1 over the classes (:func:`ttdnet.ranking.kway_top_exact`).

    Parameters
    ----------
    probs : numpy.ndarray
        ``(N, K)`` class probabilities of the reconstructions.
    labels : numpy.ndarray
        int ``(N,)``: the classifier's argmax on each ground-truth image.
    n : int
        2 ≤ n ≤ K.

    Returns
    -------
    numpy.ndarray
        float64 ``(N,)``: ``C(m_i, n−1) / C(K−1, n−1)`` with ``m_i = #{k != c_i : p_k < p_c}``. Chance 1/n.
    """
    return ranking.kway_top_exact(probs, n, 1, targets=labels)


def nway_classifier_monte_carlo(
    probs: np.ndarray, labels: np.ndarray, n: int, trials: int, seed: int
) -> ranking.MonteCarloResult:
    """n-way top-1 with a classifier, sampled like TTD-net/DreamDiffusion but seeded.

    Trial ``i`` uses ``numpy.random.default_rng(seed + i)`` and draws, ``trials`` times, ``n − 1`` classes
    without replacement from the ``K − 1`` classes other than ``labels[i]``; a draw succeeds if the label's
    probability is strictly the highest (:func:`ttdnet.ranking.kway_top_monte_carlo` with t = 1).

    Parameters
    ----------
    probs : numpy.ndarray
        ``(N, K)``.
    labels : numpy.ndarray
        int ``(N,)``.
    n, trials, seed : int

    Returns
    -------
    ttdnet.ranking.MonteCarloResult
    """
    return ranking.kway_top_monte_carlo(probs, n, 1, trials, seed, targets=labels)


def nway_similarity_exact(similarity: np.ndarray, n: int) -> np.ndarray:
    """n-way identification from a reconstruction × ground-truth similarity matrix, exact.

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
    return ranking.kway_top_exact(similarity, n, 1)


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
