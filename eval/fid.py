"""FID and KID from feature matrices, in float64 (definitions in ``docs/evaluation.md``).

The features come from the FID Inception-v3 pool3 layer (2048-d, see :mod:`ttdnet.eval.backbones`); these
functions take any ``(N, D)`` features so that they can be checked on synthetic Gaussians.
"""

import numpy as np


def fid_from_features(real: np.ndarray, fake: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets.

    Parameters
    ----------
    real : numpy.ndarray
        ``(N, D)`` reference features (ground truth).
    fake : numpy.ndarray
        ``(M, D)`` generated features.

    Returns
    -------
    float
        ``‖μ_r − μ_g‖² + Tr(Σ_r + Σ_g − 2 (Σ_r Σ_g)^{1/2})`` with unbiased (``N − 1``) covariances. The trace of
        the matrix square root is the sum of square roots of the eigenvalues of ``Σ_r Σ_g`` (real and
        non-negative for PSD matrices; numerical negatives are clipped to 0). Biased upward when N < D.
    """
    real = np.asarray(real, dtype=np.float64)
    fake = np.asarray(fake, dtype=np.float64)
    if real.ndim != 2 or fake.ndim != 2 or real.shape[1] != fake.shape[1]:
        raise ValueError(f"features must be (N, D) and (M, D), got {real.shape} and {fake.shape}")
    if min(len(real), len(fake)) < 2:
        raise ValueError("FID needs at least 2 samples per set")
    mu_r, mu_g = real.mean(axis=0), fake.mean(axis=0)
    sigma_r = np.cov(real, rowvar=False)
    sigma_g = np.cov(fake, rowvar=False)
    eigenvalues = np.linalg.eigvals(sigma_r @ sigma_g)
    trace_sqrt = np.sqrt(np.clip(eigenvalues.real, 0.0, None)).sum()
    diff = mu_r - mu_g
    return float(diff @ diff + np.trace(sigma_r) + np.trace(sigma_g) - 2.0 * trace_sqrt)


def polynomial_kernel(
    x: np.ndarray, y: np.ndarray, degree: int = 3, gamma: float | None = None, coef: float = 1.0
) -> np.ndarray:
    """``k(x, y) = (γ xᵀy + coef)^degree`` for all row pairs; ``γ = 1/D`` by default. Returns ``(len(x), len(y))``."""
    gamma = 1.0 / x.shape[1] if gamma is None else gamma
    return (gamma * (x @ y.T) + coef) ** degree


def mmd2_unbiased(
    x: np.ndarray, y: np.ndarray, degree: int = 3, gamma: float | None = None, coef: float = 1.0
) -> float:
    """Unbiased MMD² between two equal-size samples under the polynomial kernel.

    Parameters
    ----------
    x, y : numpy.ndarray
        ``(m, D)`` each, m >= 2.

    Returns
    -------
    float
        ``Σ_{i≠j} k(x_i,x_j)/(m(m−1)) + Σ_{i≠j} k(y_i,y_j)/(m(m−1)) − 2 Σ_{i,j} k(x_i,y_j)/m²``.
    """
    m = len(x)
    k_xx = polynomial_kernel(x, x, degree, gamma, coef)
    k_yy = polynomial_kernel(y, y, degree, gamma, coef)
    k_xy = polynomial_kernel(x, y, degree, gamma, coef)
    within = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
    return float(within - 2.0 * k_xy.sum() / (m * len(y)))


def kid_from_features(
    real: np.ndarray, fake: np.ndarray, subsets: int, subset_size: int, seed: int, degree: int = 3, coef: float = 1.0
) -> tuple[float, float, np.ndarray]:
    """Kernel Inception Distance: unbiased MMD² averaged over seeded random subsets.

    Parameters
    ----------
    real, fake : numpy.ndarray
        ``(N, D)`` and ``(M, D)``.
    subsets : int
        Number of subset pairs.
    subset_size : int
        Rows per subset, drawn without replacement; must be <= min(N, M).
    seed : int
        ``numpy.random.default_rng(seed)``; each subset draws ``permutation(N)[:m]`` then ``permutation(M)[:m]``.

    Returns
    -------
    mean : float
    std : float
        Over subsets, ``ddof=0`` (as torch-fidelity).
    values : numpy.ndarray
        float64 ``(subsets,)``.
    """
    real = np.asarray(real, dtype=np.float64)
    fake = np.asarray(fake, dtype=np.float64)
    if not 2 <= subset_size <= min(len(real), len(fake)):
        raise ValueError(
            f"KID subset_size must be in [2, {min(len(real), len(fake))}] (the set sizes), got {subset_size}"
        )
    rng = np.random.default_rng(seed)
    values = np.empty(subsets)
    for s in range(subsets):
        x = real[rng.permutation(len(real))[:subset_size]]
        y = fake[rng.permutation(len(fake))[:subset_size]]
        values[s] = mmd2_unbiased(x, y, degree, None, coef)
    return float(values.mean()), float(values.std()), values
