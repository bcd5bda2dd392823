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
        ``‖μ_r − μ_g‖² + Tr(Σ_r + Σ_g − 2 (Σ_r Σ_g)^{1/2})`` with unbiased (``N − 1``) covariances. Biased
        upward when N < D.

    Notes
    -----
    With centred features ``X_r`` (N × D) and ``X_g`` (M × D), ``Σ_r Σ_g = X_rᵀ (X_r X_gᵀ) X_g / c`` with
    ``c = (N − 1)(M − 1)``, whose non-zero eigenvalues are the squared singular values of ``X_r X_gᵀ / √c``.
    So ``Tr (Σ_r Σ_g)^{1/2}`` is the nuclear norm of ``X_r X_gᵀ / √c``: an N × M problem instead of the D × D
    eigenvalue problem of the textbook formula (200 × 200 rather than 2048 × 2048 for a 200-image test set),
    exact, and free of the complex round-off of a non-symmetric eigen-solver. When ``D < min(N, M)`` the D × D
    form ``Σ_r^{1/2} Σ_g Σ_r^{1/2}`` (symmetric) is the smaller one and is used instead.
    """
    real = np.asarray(real, dtype=np.float64)
    fake = np.asarray(fake, dtype=np.float64)
    if real.ndim != 2 or fake.ndim != 2 or real.shape[1] != fake.shape[1]:
        raise ValueError(f"features must be (N, D) and (M, D), got {real.shape} and {fake.shape}")
    if min(len(real), len(fake)) < 2:
        raise ValueError("FID needs at least 2 samples per set")
    mu_r, mu_g = real.mean(axis=0), fake.mean(axis=0)
    centred_r, centred_g = real - mu_r, fake - mu_g
    scale = (len(real) - 1) * (len(fake) - 1)
    if real.shape[1] >= min(len(real), len(fake)):
        trace_sqrt = np.linalg.svd(centred_r @ centred_g.T, compute_uv=False).sum() / np.sqrt(scale)
    else:
        sigma_r = centred_r.T @ centred_r / (len(real) - 1)
        sigma_g = centred_g.T @ centred_g / (len(fake) - 1)
        values, vectors = np.linalg.eigh(sigma_r)
        root_r = (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T
        trace_sqrt = np.sqrt(np.clip(np.linalg.eigvalsh(root_r @ sigma_g @ root_r), 0.0, None)).sum()
    trace_r = (centred_r * centred_r).sum() / (len(real) - 1)
    trace_g = (centred_g * centred_g).sum() / (len(fake) - 1)
    diff = mu_r - mu_g
    return float(diff @ diff + trace_r + trace_g - 2.0 * trace_sqrt)


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
