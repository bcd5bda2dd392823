"""Shrinkage noise covariance and whitening: the recipe of THINGS-EEG2's multivariate noise normalisation.

The official preprocessing calls the private ``sklearn.discriminant_analysis._cov(X, shrinkage="auto")``. Its
recipe, with public scikit-learn API only:

1. standardise each channel with :class:`sklearn.preprocessing.StandardScaler` (population standard deviation);
2. Ledoit-Wolf shrunk covariance of the standardised data (:func:`sklearn.covariance.ledoit_wolf`, which centres);
3. rescale back: ``s_ij * scale_i * scale_j``.

The whitening matrix is ``sigma ** -1/2`` (:func:`scipy.linalg.fractional_matrix_power`). The simulator and
``ttdnet preprocess`` both use these, so synthetic and preprocessed data are whitened the same way.
"""

import numpy as np


def shrinkage_covariance(samples: np.ndarray) -> np.ndarray:
    """Ledoit-Wolf covariance of standardised features, rescaled (``_cov(X, shrinkage="auto")``).

    Parameters
    ----------
    samples : numpy.ndarray, shape (n_samples, n_features)
        Rows are observations.

    Returns
    -------
    numpy.ndarray of float64, shape (n_features, n_features)
    """
    from sklearn.covariance import ledoit_wolf
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler()
    shrunk = ledoit_wolf(scaler.fit_transform(samples))[0]
    return scaler.scale_[:, np.newaxis] * shrunk * scaler.scale_[np.newaxis, :]


def whitening_matrix(sigma: np.ndarray) -> np.ndarray:
    """``sigma ** -1/2`` with :func:`scipy.linalg.fractional_matrix_power` (real part).

    Parameters
    ----------
    sigma : numpy.ndarray, shape (n_chans, n_chans)
        Symmetric positive definite.

    Returns
    -------
    numpy.ndarray of float64, shape (n_chans, n_chans)

    Raises
    ------
    ValueError
        If ``sigma`` is not positive definite.
    """
    from scipy.linalg import fractional_matrix_power

    whitener = fractional_matrix_power(sigma, -0.5)
    if np.iscomplexobj(whitener):
        if np.abs(whitener.imag).max() > 1e-8 * np.abs(whitener.real).max():
            raise ValueError("the noise covariance is not positive definite; cannot whiten")
        whitener = whitener.real
    return np.ascontiguousarray(whitener, dtype=np.float64)
