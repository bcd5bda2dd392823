"""Gaussian noise with a prescribed power spectral density, by random-phase spectral synthesis.

Each series is the inverse real FFT of independent complex Gaussian coefficients whose variance follows the
one-sided PSD. The FFT is at least ``min_duration_s`` long (so a short epoch still holds frequencies below
its own resolution) and the first ``n_times`` samples are kept. Because the coefficient variances are known,
the expected variance of the output is exact (:func:`expected_variance`).
"""

from collections.abc import Callable

import numpy as np


MIN_DURATION_S = 2.56
"""Shortest synthesis window: 256 samples at 100 Hz, a 0.39 Hz frequency grid."""

PowerSpectrum = Callable[[np.ndarray], np.ndarray]
"""One-sided PSD, units²/Hz, evaluated at an array of frequencies in Hz."""


def _fft_length(n_times: int, sfreq: float, min_duration_s: float) -> int:
    return max(n_times, int(np.ceil(min_duration_s * sfreq)))


def _coefficient_power(psd: PowerSpectrum, n_fft: int, sfreq: float) -> np.ndarray:
    """E|X_k|² of the rfft coefficients, shape (n_fft // 2 + 1,); zero at DC."""
    frequencies = np.fft.rfftfreq(n_fft, d=1.0 / sfreq)
    power = np.zeros_like(frequencies)
    power[1:] = n_fft * sfreq * psd(frequencies[1:]) / 2.0
    return power


def expected_variance(psd: PowerSpectrum, n_times: int, sfreq: float, min_duration_s: float = MIN_DURATION_S) -> float:
    """Expected per-sample variance of :func:`synthesize` output (≈ the integral of ``psd`` up to Nyquist)."""
    n_fft = _fft_length(n_times, sfreq, min_duration_s)
    power = _coefficient_power(psd, n_fft, sfreq)
    weights = np.full_like(power, 2.0)
    weights[0] = 1.0
    if n_fft % 2 == 0:
        weights[-1] = 1.0
    return float(np.sum(weights * power) / n_fft**2)


def synthesize(
    rng: np.random.Generator,
    psd: PowerSpectrum,
    n_series: int,
    n_times: int,
    sfreq: float,
    min_duration_s: float = MIN_DURATION_S,
) -> np.ndarray:
    """Independent zero-mean Gaussian series with one-sided spectrum ``psd``.

    Parameters
    ----------
    rng : numpy.random.Generator
    psd : callable
        One-sided power spectral density (units²/Hz) as a function of frequency (Hz).
    n_series : int
        Number of independent series.
    n_times : int
        Samples per series.
    sfreq : float
        Sampling rate in Hz.
    min_duration_s : float
        Shortest synthesis window in seconds.

    Returns
    -------
    numpy.ndarray of float64, shape (n_series, n_times)
    """
    n_fft = _fft_length(n_times, sfreq, min_duration_s)
    power = _coefficient_power(psd, n_fft, sfreq)
    coefficients = rng.standard_normal((n_series, len(power))) + 1j * rng.standard_normal((n_series, len(power)))
    coefficients *= np.sqrt(power / 2.0)
    if n_fft % 2 == 0:
        coefficients[:, -1] = coefficients[:, -1].real * np.sqrt(2.0)
    return np.fft.irfft(coefficients, n=n_fft, axis=-1)[:, :n_times]
