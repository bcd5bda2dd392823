"""The generative EEG model: image-driven dipoles in occipito-parietal cortex plus physiological noise.

:class:`EegModel` holds what all subjects share (the template sources and the linear map from image
features to source amplitudes); :meth:`EegModel.subject` returns a :class:`SubjectModel` with jittered
sources, its own forward model and noise. The two halves of a recording are separate methods of a subject,
both valid at any sampling rate, so the same model can write epoched 100 Hz data or continuous 1000 Hz
recordings:

* :meth:`SubjectModel.evoked`: the noise-free response to each image on any time axis;
* :meth:`SubjectModel.noise`: background noise (1/f, alpha, white sensor noise) at any rate and length.

Units are volts, referenced to Fz. See ``docs/synthetic-data.md`` for the equations.
"""

import dataclasses

import numpy as np

from ttdnet.data.channels import POSTERIOR_17_CHANNELS, RAW_63_CHANNELS
from ttdnet.simulate import spectral
from ttdnet.simulate.features import N_FEATURES
from ttdnet.simulate.head import MAX_SOURCE_RADIUS_M, HeadModel, build_head_model, dipole_gain
from ttdnet.simulate.names import stable_seed


REFERENCE_SFREQ = 100.0
"""Sampling rate at which the noise RMS and the SNR are defined (the rate of the preprocessed files)."""
REFERENCE_EPOCH_SAMPLES = 100
"""Epoch length at which the noise RMS is defined (−0.2 … 0.79 s at 100 Hz)."""


@dataclasses.dataclass(frozen=True)
class ErpComponent:
    """One group of dipoles sharing a Gaussian time course.

    Attributes
    ----------
    name : str
    latency_s : float
        Peak time after stimulus onset (s), before subject jitter.
    width_s : float
        Standard deviation of the Gaussian time course (s).
    polarity : float
        Sign of the image-independent part of the dipole moments (+1: positive over ``region``).
    region : tuple of str
        Electrodes above the dipoles: each dipole lies under one of them, at a random depth.
    n_sources : int
        Number of dipoles.
    """

    name: str
    latency_s: float
    width_s: float
    polarity: float
    region: tuple[str, ...]
    n_sources: int


@dataclasses.dataclass(frozen=True)
class ModelParameters:
    """Every constant of the generative model (recorded in ``simulation.json``)."""

    components: tuple[ErpComponent, ...] = (
        ErpComponent("P100", 0.100, 0.018, 1.0, ("O1", "Oz", "O2", "PO3", "POz", "PO4"), 12),
        ErpComponent("N170", 0.170, 0.022, -1.0, ("P7", "P8", "PO7", "PO8", "P5", "P6"), 12),
        ErpComponent("P300", 0.320, 0.060, 1.0, ("Pz", "P1", "P2", "P3", "P4", "POz", "CPz"), 12),
    )
    source_radius_m: tuple[float, float] = (0.055, 0.075)
    """Range of the distance of ERP dipoles from the sphere centre."""
    tangential_tilt: float = 0.35
    """Standard deviation of the tangential part of the template dipole orientations (radial part = 1)."""
    common_to_image_ratio: float = 1.5
    """RMS of the image-independent ERP over RMS of the image-driven signal (same channels and window)."""
    position_jitter_m: float = 0.004
    orientation_jitter: float = 0.25
    gain_log_sd: float = 0.3
    latency_jitter_s: float = 0.008
    noise_rms_volts: float = 10e-6
    """Expected RMS of the single-trial noise on the 17 posterior channels at 100 Hz."""
    aperiodic_share: float = 0.6
    alpha_share: float = 0.3
    white_share: float = 0.1
    """Shares of the noise variance on the posterior channels (they sum to 1)."""
    aperiodic_exponent: float = 1.0
    """PSD ∝ 1/f^exponent above ``aperiodic_floor_hz``, flat below."""
    aperiodic_floor_hz: float = 0.5
    n_background_sources: int = 200
    """Random dipoles spread through the brain whose independent 1/f activity makes the aperiodic noise."""
    alpha_frequency_hz: float = 10.0
    alpha_frequency_sd_hz: float = 0.6
    """Spread of the individual alpha frequency across subjects."""
    alpha_bandwidth_hz: float = 0.8
    """Standard deviation of the Gaussian alpha peak in the PSD."""
    alpha_amplitude_log_sd: float = 0.5
    """Log-normal spread of the alpha amplitude from one segment (trial) to the next."""
    alpha_region: tuple[str, ...] = ("O1", "O2")
    alpha_source_radius_m: float = 0.065
    n_sessions: int = 4
    session_noise_log_sd: float = 0.1
    """Log-normal spread of the noise level between recording sessions (electrode impedance, state)."""
    session_signal_log_sd: float = 0.05
    """Log-normal spread of the evoked amplitude between recording sessions (cap placement)."""


@dataclasses.dataclass(frozen=True)
class Dipoles:
    """Positions ``(n, 3)`` (m, head coordinates) and unit orientations ``(n, 3)`` of fixed dipoles."""

    positions: np.ndarray
    orientations: np.ndarray


def _normalise(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.linalg.norm(vectors, axis=-1, keepdims=True)


def _dipoles_under(
    rng: np.random.Generator, head: HeadModel, channels: list[str], radii: np.ndarray, tilt: float
) -> Dipoles:
    """Dipoles below ``channels`` (one each) at distance ``radii`` from the centre, roughly radial."""
    directions = _normalise(
        np.stack([head.direction_to(name) for name in channels]) + rng.normal(0, 0.08, (len(channels), 3))
    )
    tangential = rng.normal(0, tilt, (len(channels), 3))
    tangential -= np.sum(tangential * directions, axis=1, keepdims=True) * directions
    return Dipoles(head.centre + radii[:, None] * directions, _normalise(directions + tangential))


def _clip_radius(positions: np.ndarray, centre: np.ndarray, max_radius: float) -> np.ndarray:
    offsets = positions - centre
    radii = np.linalg.norm(offsets, axis=1, keepdims=True)
    return centre + offsets * np.minimum(1.0, max_radius / radii)


class EegModel:
    """What all simulated subjects share.

    Parameters
    ----------
    seed : int
        Dataset seed: fixes the template sources and the feature map.
    parameters : ModelParameters, optional
    head : HeadModel, optional
        Built with :func:`build_head_model` when omitted.

    Attributes
    ----------
    template : Dipoles
        ERP dipoles before subject jitter, components concatenated in order (``n_sources`` in total).
    component_index : numpy.ndarray of int, shape (n_sources,)
        Component of each dipole.
    feature_map : numpy.ndarray, shape (n_sources, N_FEATURES)
        Fixed random linear map from image features to dipole moments, ``N(0, 1/N_FEATURES)``.
    common_moments : numpy.ndarray, shape (n_sources,)
        Image-independent dipole moments (relative units, sign = component polarity).
    """

    def __init__(self, seed: int, parameters: ModelParameters | None = None, head: HeadModel | None = None):
        self.seed = seed
        self.parameters = parameters or ModelParameters()
        self.head = head or build_head_model()
        rng = np.random.default_rng(stable_seed(seed, "eeg-model"))
        positions, orientations, components, common = [], [], [], []
        for index, component in enumerate(self.parameters.components):
            channels = [str(name) for name in rng.choice(component.region, component.n_sources)]
            radii = rng.uniform(*self.parameters.source_radius_m, component.n_sources)
            dipoles = _dipoles_under(rng, self.head, channels, radii, self.parameters.tangential_tilt)
            positions.append(dipoles.positions)
            orientations.append(dipoles.orientations)
            components.append(np.full(component.n_sources, index))
            common.append(component.polarity * rng.uniform(0.5, 1.0, component.n_sources))
        self.template = Dipoles(np.concatenate(positions), np.concatenate(orientations))
        self.component_index = np.concatenate(components)
        self.common_moments = np.concatenate(common)
        self.feature_map = rng.normal(0.0, 1.0 / np.sqrt(N_FEATURES), (len(self.component_index), N_FEATURES))

    @property
    def n_sources(self) -> int:
        return len(self.component_index)

    def subject(self, subject: int) -> "SubjectModel":
        """The model of subject ``subject`` (1-based, as in ``sub-01``)."""
        return SubjectModel(self, subject)


class SubjectModel:
    """One subject: jittered dipoles with their forward model, latencies, alpha rhythm and noise scales.

    The image-driven and image-independent amplitudes start at unit gain; :meth:`calibrate` sets them from
    the images of a dataset and the requested SNR.

    Parameters
    ----------
    model : EegModel
    subject : int
        1-based subject number; every subject-specific draw is seeded by (model seed, subject).
    """

    def __init__(self, model: EegModel, subject: int):
        self.model = model
        self.subject_number = subject
        parameters = model.parameters
        head = model.head
        rng = np.random.default_rng(stable_seed(model.seed, "subject", subject))

        positions = model.template.positions + rng.normal(
            0, parameters.position_jitter_m, model.template.positions.shape
        )
        positions = _clip_radius(positions, head.centre, 0.99 * MAX_SOURCE_RADIUS_M)
        orientations = _normalise(
            model.template.orientations
            + rng.normal(0, parameters.orientation_jitter, model.template.orientations.shape)
        )
        source_gains = np.exp(rng.normal(0, parameters.gain_log_sd, model.n_sources))
        jitter = rng.normal(0, parameters.latency_jitter_s, len(parameters.components))
        self.latencies_s = np.array([c.latency_s for c in parameters.components]) + jitter
        self.widths_s = np.array([c.width_s for c in parameters.components])
        self.alpha_frequency_hz = parameters.alpha_frequency_hz + rng.normal(0, parameters.alpha_frequency_sd_hz)
        noise_sd, signal_sd = parameters.session_noise_log_sd, parameters.session_signal_log_sd
        self.session_noise_scales = np.exp(rng.normal(-(noise_sd**2), noise_sd, parameters.n_sessions))
        """(n_sessions,) factor on the noise of each session; mean square 1."""
        self.session_signal_gains = np.exp(rng.normal(-(signal_sd**2), signal_sd, parameters.n_sessions))
        """(n_sessions,) factor on the evoked response of each session; mean square 1."""

        n_background = parameters.n_background_sources
        background_directions = _normalise(rng.normal(size=(n_background, 3)))
        background_radii = MAX_SOURCE_RADIUS_M * 0.95 * rng.random(n_background) ** (1 / 3)
        background = Dipoles(
            head.centre + background_radii[:, None] * background_directions,
            _normalise(rng.normal(size=(n_background, 3))),
        )
        alpha = _dipoles_under(
            rng,
            head,
            list(parameters.alpha_region),
            np.full(len(parameters.alpha_region), parameters.alpha_source_radius_m),
            parameters.tangential_tilt,
        )

        all_positions = np.concatenate([positions, background.positions, alpha.positions])
        all_orientations = np.concatenate([orientations, background.orientations, alpha.orientations])
        gain = dipole_gain(head, all_positions, all_orientations)
        self.source_gain = gain[:, : model.n_sources] * source_gains
        """(63, n_sources) volts per unit moment of the ERP dipoles."""
        background_gain = gain[:, model.n_sources : model.n_sources + n_background]
        self.background_covariance = background_gain @ background_gain.T / n_background
        """(63, 63) sensor covariance of the background dipoles, per unit source variance."""
        self.alpha_gain = gain[:, model.n_sources + n_background :]
        """(63, n_alpha) volts per unit moment of the alpha dipoles."""

        self._sqrt_covariances: dict[tuple[int, ...], np.ndarray] = {}
        self._set_noise_scales()
        self.image_gain = 1.0
        self.common_gain = 1.0

    # ----- noise -----

    def aperiodic_psd(self, frequencies: np.ndarray) -> np.ndarray:
        """Unit-scale 1/f PSD of each background dipole, flat below the floor frequency."""
        parameters = self.model.parameters
        return np.maximum(frequencies, parameters.aperiodic_floor_hz) ** -parameters.aperiodic_exponent

    def alpha_psd(self, frequencies: np.ndarray) -> np.ndarray:
        """Unit-scale Gaussian PSD peak of each alpha dipole at the subject's alpha frequency."""
        bandwidth = self.model.parameters.alpha_bandwidth_hz
        return np.exp(-0.5 * ((frequencies - self.alpha_frequency_hz) / bandwidth) ** 2)

    def _set_noise_scales(self) -> None:
        """Scale the three noise parts to their variance shares of ``noise_rms_volts`` at 100 Hz."""
        parameters = self.model.parameters
        posterior = [RAW_63_CHANNELS.index(name) for name in POSTERIOR_17_CHANNELS]
        target = parameters.noise_rms_volts**2
        aperiodic_unit = np.mean(np.diag(self.background_covariance)[posterior]) * spectral.expected_variance(
            self.aperiodic_psd, REFERENCE_EPOCH_SAMPLES, REFERENCE_SFREQ
        )
        alpha_unit = np.mean(np.sum(self.alpha_gain[posterior] ** 2, axis=1)) * spectral.expected_variance(
            self.alpha_psd, REFERENCE_EPOCH_SAMPLES, REFERENCE_SFREQ
        )
        self.aperiodic_scale = np.sqrt(parameters.aperiodic_share * target / aperiodic_unit)
        self.alpha_scale = np.sqrt(parameters.alpha_share * target / alpha_unit)
        # A channel's white noise is its electrode's minus the reference's: twice the electrode variance.
        self.white_density = parameters.white_share * target / 2.0 / (REFERENCE_SFREQ / 2.0)
        """One-sided PSD (V²/Hz) of each electrode's white noise."""

    def noise(
        self, rng: np.random.Generator, n_segments: int, n_times: int, sfreq: float, channels: list[int]
    ) -> np.ndarray:
        """Background EEG: spatially correlated 1/f noise + occipital alpha + white sensor noise.

        The aperiodic part is the projection of independent 1/f activity in the background dipoles; it is
        drawn directly with the same sensor covariance (a Gaussian process is fixed by its cross-spectrum).
        Alpha amplitude is drawn anew for each segment (log-normal), its phase is random.

        Parameters
        ----------
        rng : numpy.random.Generator
        n_segments : int
            Independent segments (trials, or 1 for a continuous recording).
        n_times : int
            Samples per segment.
        sfreq : float
            Sampling rate (Hz).
        channels : list of int
            Indices into the 63 raw-order channels.

        Returns
        -------
        numpy.ndarray of float64, shape (n_segments, len(channels), n_times)
            Volts, referenced to Fz.
        """
        parameters = self.model.parameters
        n_channels = len(channels)
        aperiodic_mixing = self._sqrt_background_covariance(tuple(channels))
        aperiodic = spectral.synthesize(rng, self.aperiodic_psd, n_segments * n_channels, n_times, sfreq)
        aperiodic = aperiodic.reshape(n_segments, n_channels, n_times)
        noise = np.matmul(aperiodic_mixing, aperiodic)

        n_alpha = self.alpha_gain.shape[1]
        alpha = spectral.synthesize(rng, self.alpha_psd, n_segments * n_alpha, n_times, sfreq)
        log_sd = parameters.alpha_amplitude_log_sd
        amplitudes = np.exp(rng.normal(-(log_sd**2), log_sd, (n_segments * n_alpha, 1)))
        alpha = (alpha * amplitudes).reshape(n_segments, n_alpha, n_times)
        noise += np.matmul(self.alpha_scale * self.alpha_gain[channels], alpha)

        white = rng.standard_normal((n_segments, n_channels + 1, n_times)) * np.sqrt(self.white_density * sfreq / 2.0)
        noise += white[:, :n_channels] - white[:, n_channels:]
        return noise

    def _sqrt_background_covariance(self, channels: tuple[int, ...]) -> np.ndarray:
        """Symmetric square root, shape (C, C), of the scaled aperiodic covariance on ``channels``."""
        if channels not in self._sqrt_covariances:
            covariance = self.background_covariance[np.ix_(channels, channels)] * self.aperiodic_scale**2
            eigenvalues, eigenvectors = np.linalg.eigh(covariance)
            root = (eigenvectors * np.sqrt(np.clip(eigenvalues, 0.0, None))) @ eigenvectors.T
            self._sqrt_covariances[channels] = root
        return self._sqrt_covariances[channels]

    # ----- evoked responses -----

    def time_courses(self, times: np.ndarray) -> np.ndarray:
        """Gaussian time course of each ERP dipole, shape (n_sources, len(times)); peak 1 at its latency."""
        index = self.model.component_index
        return np.exp(-0.5 * ((times[None, :] - self.latencies_s[index, None]) / self.widths_s[index, None]) ** 2)

    def image_moments(self, features: np.ndarray) -> np.ndarray:
        """Image-driven dipole moments, shape (n_images, n_sources), from features ``(n_images, N_FEATURES)``."""
        source_moments = features @ self.model.feature_map.T
        return self.image_gain * source_moments

    def evoked(
        self, features: np.ndarray, times: np.ndarray, channels: list[int], include_common: bool = True
    ) -> np.ndarray:
        """Noise-free response to each image.

        Parameters
        ----------
        features : numpy.ndarray, shape (n_images, N_FEATURES)
            :func:`ttdnet.simulate.features.image_features` of each image.
        times : numpy.ndarray, shape (n_times,)
            Seconds relative to stimulus onset, any sampling.
        channels : list of int
            Indices into the 63 raw-order channels.
        include_common : bool
            Add the image-independent ERP (same for every image).

        Returns
        -------
        numpy.ndarray of float64, shape (n_images, len(channels), n_times)
            Volts, referenced to Fz.
        """
        moments = self.image_moments(features)
        if include_common:
            moments = moments + self.common_gain * self.model.common_moments
        gain = self.source_gain[channels]
        return np.matmul(gain[None] * moments[:, None, :], self.time_courses(times))

    def calibrate(self, features: np.ndarray, snr: float) -> None:
        """Set the signal gains so that the image-driven SNR equals ``snr`` on these images.

        ``snr`` = RMS of the image-driven evoked signal / expected RMS of the single-trial noise, both on
        the 17 posterior channels; the signal RMS is taken over ``features``' images and the post-stimulus
        samples at 100 Hz (0 … 0.79 s). The image-independent ERP is then scaled to
        ``common_to_image_ratio`` times the image-driven RMS.

        Parameters
        ----------
        features : numpy.ndarray, shape (n_images, N_FEATURES)
        snr : float
            Positive single-trial SNR.
        """
        posterior = [RAW_63_CHANNELS.index(name) for name in POSTERIOR_17_CHANNELS]
        times = np.arange(REFERENCE_EPOCH_SAMPLES * 8 // 10) / REFERENCE_SFREQ
        courses = self.time_courses(times)
        gain = self.source_gain[posterior]
        # sum over images, channels and times of |G diag(b_n) Γ|² = Σ_n b_nᵀ [(GᵀG) ∘ (ΓΓᵀ)] b_n
        quadratic = (gain.T @ gain) * (courses @ courses.T)
        moments = features @ self.model.feature_map.T
        image_power = np.sum((moments @ quadratic) * moments) / (len(features) * len(posterior) * len(times))
        common_power = (
            self.model.common_moments @ quadratic @ self.model.common_moments / (len(posterior) * len(times))
        )
        target_rms = snr * self.model.parameters.noise_rms_volts
        self.image_gain = target_rms / np.sqrt(image_power)
        self.common_gain = self.model.parameters.common_to_image_ratio * target_rms / np.sqrt(common_power)
