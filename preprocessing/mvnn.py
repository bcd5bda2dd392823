"""Multivariate noise normalisation (MVNN) of epoched EEG, as in the THINGS-EEG2 release.

The official code (``gifale95/eeg_encoding:02_eeg_preprocessing/preprocessing_utils.py: mvnn``) computes,
per session, a shrinkage noise covariance with ``sklearn.discriminant_analysis._cov(X, shrinkage="auto")``
and whitens with its inverse square root. ``_cov`` is private; its recipe, reproduced here, is

1. standardise each feature (channel) with :class:`sklearn.preprocessing.StandardScaler` (population std);
2. Ledoit-Wolf shrunk covariance of the standardised data (:func:`sklearn.covariance.ledoit_wolf`, centred);
3. rescale back: ``s_ij * scale_i * scale_j``.

Two implementations give the same numbers:

* ``backend="sklearn"`` calls :func:`ttdnet.covariance.shrinkage_covariance` (``StandardScaler`` and
  ``ledoit_wolf``) once per covariance, as the official code
  does (about 830,000 calls per full-size training session in ``time`` mode, i.e. many minutes);
* ``backend="batched"`` (default) evaluates the same formulas for a whole block of covariances at once with
  numpy (the Ledoit-Wolf shrinkage formula of ``sklearn.covariance.ledoit_wolf_shrinkage``); the tests check it
  against the ``sklearn`` backend to ~1e-12.

:func:`fit_whitener` fits one session's whitening on the partitions ``--mvnn_fit`` names and
:func:`describe_mvnn` states the recipe in words for the provenance record.
"""

from collections.abc import Sequence
from typing import Literal

import numpy as np
from tqdm.auto import tqdm

from ttdnet.covariance import shrinkage_covariance, whitening_matrix


MvnnDim = Literal["time", "epochs"]
Backend = Literal["batched", "sklearn"]


def _scale_from_variance(var: np.ndarray) -> np.ndarray:
    """Standard deviations with zero (or negligible) ones replaced by 1, as ``StandardScaler`` does."""
    scale = np.sqrt(var)
    eps = np.finfo(scale.dtype).eps
    return np.where(scale < 10 * eps, 1.0, scale)


def shrinkage_covariances(samples: np.ndarray) -> np.ndarray:
    """Ledoit-Wolf covariances of standardised features, rescaled: ``_cov(X, shrinkage="auto")`` for a batch.

    Parameters
    ----------
    samples : numpy.ndarray, shape (..., n_samples, n_features)
        One data matrix per leading index; rows are observations.

    Returns
    -------
    numpy.ndarray, shape (..., n_features, n_features)
    """
    x = np.asarray(samples, dtype=np.float64)
    n_samples, n_features = x.shape[-2:]
    mean = x.mean(axis=-2, keepdims=True)
    centred = x - mean
    scale = _scale_from_variance((centred**2).mean(axis=-2))  # (..., p)
    z = centred / scale[..., None, :]
    z = z - z.mean(axis=-2, keepdims=True)  # ledoit_wolf centres again
    emp_cov = np.matmul(np.swapaxes(z, -1, -2), z) / n_samples  # (..., p, p)
    if n_features == 1:
        shrunk = emp_cov
    else:
        z2 = z**2
        emp_cov_trace = z2.sum(axis=-2) / n_samples  # (..., p)
        mu = emp_cov_trace.sum(axis=-1) / n_features  # (...,)
        beta_ = np.matmul(np.swapaxes(z2, -1, -2), z2).sum(axis=(-2, -1))
        delta_ = (np.matmul(np.swapaxes(z, -1, -2), z) ** 2).sum(axis=(-2, -1)) / n_samples**2
        beta = 1.0 / (n_features * n_samples) * (beta_ / n_samples - delta_)
        delta = (delta_ - 2.0 * mu * emp_cov_trace.sum(axis=-1) + n_features * mu**2) / n_features
        beta = np.minimum(beta, delta)
        with np.errstate(divide="ignore", invalid="ignore"):
            shrinkage = np.where(beta == 0, 0.0, beta / delta)
        mu_lw = np.trace(emp_cov, axis1=-2, axis2=-1) / n_features
        shrunk = (1.0 - shrinkage)[..., None, None] * emp_cov
        diagonal = np.arange(n_features)
        shrunk[..., diagonal, diagonal] += (shrinkage * mu_lw)[..., None]
    return scale[..., :, None] * shrunk * scale[..., None, :]


def condition_covariance(
    epochs: np.ndarray, mvnn_dim: MvnnDim, backend: Backend = "batched", block: int = 256, progress=None
) -> np.ndarray:
    """Noise covariance of one data partition: mean over conditions of the per-condition covariance.

    Parameters
    ----------
    epochs : numpy.ndarray, shape (n_conditions, n_repetitions, n_chans, n_times)
    mvnn_dim : {"time", "epochs"}
        ``"time"``: per condition, the mean over time points of the covariance across repetitions (the
        official release). ``"epochs"``: per condition, the mean over repetitions of the covariance across
        time points (NICE/ATM).
    backend : {"batched", "sklearn"}
    block : int
        Conditions per batched step (bounds the temporary memory).
    progress : callable, optional
        Called with the number of conditions done after each step (e.g. ``tqdm.update``).

    Returns
    -------
    numpy.ndarray of float64, shape (n_chans, n_chans)
    """
    n_cond, _, n_chans, _ = epochs.shape
    total = np.zeros((n_chans, n_chans))
    for start in range(0, n_cond, block):
        chunk = np.asarray(epochs[start : start + block], dtype=np.float64)
        if mvnn_dim == "time":
            samples = chunk.transpose(0, 3, 1, 2)  # (cond, time, reps, chans): observations are repetitions
        elif mvnn_dim == "epochs":
            samples = chunk.transpose(0, 1, 3, 2)  # (cond, reps, time, chans): observations are time points
        else:
            raise ValueError(f"mvnn_dim must be 'time' or 'epochs', got {mvnn_dim!r}")
        if backend == "batched":
            covs = shrinkage_covariances(samples)  # (cond, k, chans, chans)
        elif backend == "sklearn":
            covs = np.array([[shrinkage_covariance(matrix) for matrix in row] for row in samples])
        else:
            raise ValueError(f"backend must be 'batched' or 'sklearn', got {backend!r}")
        total += covs.mean(axis=1).sum(axis=0)  # per-condition mean over time/repetitions, summed over conditions
        if progress is not None:
            progress(chunk.shape[0])
    return total / n_cond


def combine_partitions(sigmas: Sequence[np.ndarray]) -> np.ndarray:
    """Equal-weight mean of per-partition covariances (the official ``sigma_part.mean(axis=0)``)."""
    return np.mean(np.stack(sigmas), axis=0)


def whiten(epochs: np.ndarray, whitener: np.ndarray, block: int = 1024) -> np.ndarray:
    """Apply a whitening matrix to every time sample in place-compatible blocks: ``x'(t) = x(t)^T W``.

    Parameters
    ----------
    epochs : numpy.ndarray, shape (n_conditions, n_repetitions, n_chans, n_times)
    whitener : numpy.ndarray, shape (n_chans, n_chans)

    Returns
    -------
    numpy.ndarray of float64, same shape as ``epochs`` (a new array)
    """
    out = np.empty(epochs.shape, dtype=np.float64)
    for start in range(0, epochs.shape[0], block):
        chunk = np.asarray(epochs[start : start + block], dtype=np.float64)
        out[start : start + block] = np.swapaxes(np.swapaxes(chunk, -1, -2) @ whitener, -1, -2)
    return out


def fit_whitener(test: np.ndarray, training: np.ndarray, config) -> tuple[np.ndarray | None, dict]:
    """The session's whitening matrix and a provenance record.

    Parameters
    ----------
    test, training : numpy.ndarray, shape (n_conditions, max_rep, n_chans, n_times)
    config : PreprocessThingsEEG2Config
        Uses ``mvnn_dim``, ``mvnn_fit`` and ``mvnn_backend``.

    Returns
    -------
    whitener : numpy.ndarray of shape (n_chans, n_chans), or None when ``mvnn_dim`` is "none"
    record : dict
    """
    if config.mvnn_dim == "none":
        return None, {"applied": False}
    parts = {"training": training} if config.mvnn_fit == "train" else {"test": test, "training": training}
    sigmas = {}
    for name, data in parts.items():
        with tqdm(total=data.shape[0], desc=f"MVNN covariance ({name})", unit="cond", leave=False) as bar:
            sigmas[name] = condition_covariance(data, config.mvnn_dim, config.mvnn_backend, progress=bar.update)
    sigma = combine_partitions(list(sigmas.values()))
    whitener = whitening_matrix(sigma)
    eigenvalues = np.linalg.eigvalsh(sigma)
    return whitener, {
        "applied": True,
        "fit_partitions": list(parts),
        "covariance_condition_number": float(eigenvalues[-1] / eigenvalues[0]),
        "covariance_trace": float(np.trace(sigma)),
    }


def describe_mvnn(config) -> str:
    """The MVNN recipe of ``config`` (a ``PreprocessThingsEEG2Config``) in words, for ``provenance.json``."""
    if config.mvnn_dim == "none":
        return "no whitening"
    per_condition = (
        "mean over time points of the covariance across repetitions"
        if config.mvnn_dim == "time"
        else "mean over repetitions of the covariance across time points"
    )
    fit = (
        "the training partition only"
        if config.mvnn_fit == "train"
        else "the equal-weight mean of the test and training partitions (official release)"
    )
    return (
        f"per session, Sigma = mean over image conditions of the {per_condition}, each a Ledoit-Wolf shrinkage "
        f"covariance of standardised channels rescaled back (StandardScaler + sklearn.covariance.ledoit_wolf); "
        f"fitted on {fit}; every epoch of both partitions whitened by Sigma^(-1/2) "
        "(scipy.linalg.fractional_matrix_power)"
    )
