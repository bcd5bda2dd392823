"""A linear-Gaussian EEG model with image features, for which the best possible retrieval accuracy is known.

Every image *n* has a latent ``z_n ~ N(0, I_d)`` that drives the EEG and the image features, and a nuisance
``ν_n ~ N(0, I_k)`` that only the features carry. For subject *s*, one trial of image *n* is

    x = m_s + A_s z_n + U_s v_{s,n} + ε,     ε ~ N(0, Σ_c ⊗ Σ_t)   (independent per trial)

with ``vec`` in (channel, time) row-major order:

* ``A_s`` (C·T × d): the latent drives the 36 ERP dipoles of the spherical head model of
  :mod:`ttdnet.simulate.eeg_model` through a fixed random map shared by all subjects; each dipole projects
  through the subject's own forward model (gain) and has its own Gaussian time course (subject latencies);
* ``U_s v_{s,n}``, ``v ~ N(0, I)``: an image-specific response drawn anew per subject and image, identical in
  every repetition, through the same dipoles with an independent map (``unexplained_space="sources"``) or
  along the latent's own directions, ``U_s = A_s W`` (``"latent"``). The features do not carry it, so
  averaging repetitions cannot remove it;
* ``ε``: spatially correlated noise (the volume-conducted background of the head model plus a white share)
  times a temporally correlated (exponential) kernel plus a white share; one unit of variance per sample;
* ``m_s``: an image-independent ERP (the same for every image; it cancels in any ranking).

The features of image *n* have ``n_layers`` layers. Layer *l* reads a random ``coverage`` share of the
latent directions and all nuisance directions, ``h = [P_l z_n, nuisance_scale · ν_n]``, passes them through
``l`` rounds of a random rotation followed by the leaky tanh ``φ(u) = tanh(g u)/g + λ u`` (invertible), and
embeds the result in ``feature_dim`` dimensions with a random orthonormal map, plus optional white noise.
With ``feature_noise = 0`` each layer is an invertible function of its inputs and the stacked ``P_l`` have
full rank, so the latent is a function of the features: a method that sees the gallery's features knows at
most what it would know from their latents. The Bayes-optimal ranking of a gallery for an EEG query
``x̄`` (the mean of ``R`` repetitions) is then by the Gaussian likelihood

    score_j = −(x̄ − m_s − A_s z_j)ᵀ Σ_R⁻¹ (x̄ − m_s − A_s z_j),     Σ_R = U_s U_sᵀ + (Σ_c ⊗ Σ_t) / R,

and its top-k accuracy is the **ceiling** of every retrieval model on these data (:func:`ceiling_scores`,
:meth:`SubjectForward.expected_ceiling`). With ``feature_noise > 0`` the same number is an upper bound.
"""

import dataclasses

import numpy as np

from ttdnet.data.channels import POSTERIOR_17_CHANNELS, RAW_63_CHANNELS
from ttdnet.errors import ConfigError
from ttdnet.ranking import ranks
from ttdnet.simulate.eeg_model import EegModel
from ttdnet.simulate.epochs import TIMES
from ttdnet.simulate.names import stable_seed


def _knob(default, text: str):
    return dataclasses.field(default=default, metadata={"help": text})


@dataclasses.dataclass
class LinearGaussianParameters:
    """The knobs of the linear-Gaussian benchmark (recorded next to every dataset)."""

    snr: float = _knob(
        0.06,
        "single-trial SNR: RMS of the image-specific response (A z + U v) over the post-stimulus samples / noise "
        "RMS (1 per sample)",
    )
    n_latent: int = _knob(32, "latent directions shared by the EEG and the features")
    n_unexplained: int = _knob(32, "directions of the image-specific EEG response the features do not carry")
    unexplained_share: float = _knob(0.3, "share of the image-specific response variance the features do not carry")
    unexplained_space: str = _knob(
        "sources",
        "where that response lives: latent (the latent's own EEG directions, A W v) or sources (any direction of "
        "the ERP dipoles, independent of A)",
    )
    noise_time_constant_s: float = _knob(0.05, "decay (s) of the temporal noise correlation exp(-|dt|/tau)")
    noise_white_share: float = _knob(0.2, "share of the noise variance that is white in space and in time")
    n_layers: int = _knob(4, "feature layers; layer l applies l nonlinear rounds")
    layer_coverage: float = _knob(0.5, "share of the latent directions each layer reads")
    n_nuisance: int = _knob(32, "nuisance directions every layer carries and the EEG ignores")
    nuisance_scale: float = _knob(1.0, "standard deviation of the nuisance inputs relative to the latent ones")
    feature_dim: int = _knob(128, "width of every feature layer")
    nonlinearity_gain: float = _knob(2.0, "g in phi(u) = tanh(g u)/g + leak u (0: linear)")
    nonlinearity_leak: float = _knob(0.1, "leak in phi (keeps the map invertible, its inverse bounded)")
    feature_noise: float = _knob(0.0, "white noise on every feature (0: the ceiling is exact; > 0: an upper bound)")

    def check(self) -> None:
        """Raise :class:`ConfigError` for values the model cannot use."""
        positive = ("snr", "n_latent", "n_layers", "feature_dim", "noise_time_constant_s", "nonlinearity_leak")
        for name in positive:
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name} is {getattr(self, name)}; it must be positive")
        for name in ("unexplained_share", "noise_white_share"):
            if not 0 <= getattr(self, name) < 1:
                raise ConfigError(f"{name} is {getattr(self, name)}; it must be in [0, 1)")
        if self.unexplained_space not in ("latent", "sources"):
            raise ConfigError(f"unexplained_space is {self.unexplained_space!r}; choose latent or sources")
        if self.n_unexplained < 1 and self.unexplained_share > 0:
            raise ConfigError("unexplained_share > 0 needs n_unexplained >= 1")
        if not 0 < self.layer_coverage <= 1:
            raise ConfigError(f"layer_coverage is {self.layer_coverage}; it must be in (0, 1]")
        if self.layer_width > self.feature_dim:
            raise ConfigError(
                f"feature_dim {self.feature_dim} is smaller than a layer's inputs ({self.layer_width}: latent "
                f"{self.latent_per_layer} + nuisance {self.n_nuisance}); raise feature_dim"
            )
        if self.latent_per_layer * self.n_layers < self.n_latent:
            raise ConfigError(
                f"{self.n_layers} layers reading {self.latent_per_layer} latent directions each cannot cover "
                f"{self.n_latent}; raise layer_coverage or n_layers"
            )
        for name in ("n_nuisance", "nuisance_scale", "nonlinearity_gain", "feature_noise"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} is {getattr(self, name)}; it must be >= 0")

    @property
    def latent_per_layer(self) -> int:
        return int(np.ceil(self.layer_coverage * self.n_latent))

    @property
    def layer_width(self) -> int:
        return self.latent_per_layer + self.n_nuisance


def _orthonormal(rng: np.random.Generator, rows: int, cols: int) -> np.ndarray:
    """A ``(rows, cols)`` matrix with orthonormal columns (rows >= cols) or rows (rows < cols)."""
    q, r = np.linalg.qr(rng.standard_normal((max(rows, cols), min(rows, cols))))
    q = q * np.sign(np.diag(r))
    return q if rows >= cols else q.T


def _noise_factors(background_covariance: np.ndarray, parameters: LinearGaussianParameters):
    """Spatial ``(C, C)`` and temporal ``(T, T)`` noise covariances, each with unit mean diagonal."""
    white = parameters.noise_white_share
    spatial = background_covariance / np.mean(np.diag(background_covariance))
    spatial = (1 - white) * spatial + white * np.eye(len(spatial))
    lags = np.abs(TIMES[:, None] - TIMES[None, :])
    temporal = (1 - white) * np.exp(-lags / parameters.noise_time_constant_s) + white * np.eye(len(TIMES))
    return spatial, temporal


@dataclasses.dataclass
class SubjectForward:
    """One subject of the linear-Gaussian model, with every array on the written channels and time axis.

    Attributes
    ----------
    latent_map : numpy.ndarray, shape (C·T, n_latent)
        ``A_s``.
    unexplained_map : numpy.ndarray, shape (C·T, n_unexplained)
        ``U_s``.
    erp : numpy.ndarray, shape (C·T,)
        ``m_s``.
    spatial_cov, temporal_cov : numpy.ndarray, shapes (C, C) and (T, T)
        ``Σ_c`` and ``Σ_t``.
    n_chans, n_times : int
    """

    latent_map: np.ndarray
    unexplained_map: np.ndarray
    erp: np.ndarray
    spatial_cov: np.ndarray
    temporal_cov: np.ndarray
    n_chans: int
    n_times: int

    def __post_init__(self):
        self._spatial_root = np.linalg.cholesky(self.spatial_cov)
        self._temporal_root = np.linalg.cholesky(self.temporal_cov)

    def noise(self, rng: np.random.Generator, n_trials: int) -> np.ndarray:
        """Independent noise trials, shape (n_trials, C, T), covariance ``Σ_c ⊗ Σ_t``."""
        white = rng.standard_normal((n_trials, self.n_chans, self.n_times))
        return self._spatial_root @ white @ self._temporal_root.T

    def mean_response(self, latents: np.ndarray) -> np.ndarray:
        """``m_s + A_s z`` for each row of ``latents`` ``(n, n_latent)``, shape (n, C·T)."""
        return self.erp + latents @ self.latent_map.T

    def trials(
        self, rng: np.random.Generator, latents: np.ndarray, unexplained: np.ndarray, n_repetitions: int
    ) -> np.ndarray:
        """Single trials, shape (n_images, n_repetitions, C, T), float64."""
        response = self.mean_response(latents) + unexplained @ self.unexplained_map.T
        noise = self.noise(rng, len(latents) * n_repetitions).reshape(len(latents), n_repetitions, -1)
        return (response[:, None, :] + noise).reshape(len(latents), n_repetitions, self.n_chans, self.n_times)

    def query_covariance(self, n_repetitions: int) -> np.ndarray:
        """``Σ_R`` of the mean of ``n_repetitions`` trials around ``m_s + A_s z``, shape (C·T, C·T)."""
        noise = np.kron(self.spatial_cov, self.temporal_cov) / n_repetitions
        return self.unexplained_map @ self.unexplained_map.T + noise

    def ranking_scores(self, queries: np.ndarray, gallery_latents: np.ndarray, n_repetitions: int) -> np.ndarray:
        """Bayes-optimal scores (negative Mahalanobis distances), shape (n_queries, n_gallery).

        Parameters
        ----------
        queries : numpy.ndarray, shape (n_queries, C, T)
            Means of ``n_repetitions`` trials.
        gallery_latents : numpy.ndarray, shape (n_gallery, n_latent)
        n_repetitions : int
        """
        root = np.linalg.cholesky(self.query_covariance(n_repetitions))
        whitened_queries = _solve_lower(root, queries.reshape(len(queries), -1))
        whitened_means = _solve_lower(root, self.mean_response(gallery_latents))
        cross = whitened_queries @ whitened_means.T
        return 2 * cross - np.sum(whitened_means**2, axis=1)[None, :] - np.sum(whitened_queries**2, axis=1)[:, None]

    def expected_ceiling(
        self, rng: np.random.Generator, n_gallery: int, n_repetitions: int, n_draws: int, topk=(1, 5)
    ) -> dict[str, tuple[float, float]]:
        """Expected Bayes-optimal top-k over independent galleries of ``n_gallery`` new images.

        Each draw is a fresh gallery with its own latents, unexplained responses and noise; the mean of
        ``n_repetitions`` trials is drawn exactly (noise covariance divided by ``n_repetitions``).

        Returns
        -------
        dict
            ``{"top1": (mean, half_width_95), ...}`` over the ``n_draws · n_gallery`` queries.
        """
        hits = {k: [] for k in topk}
        n_latent, n_unexplained = self.latent_map.shape[1], self.unexplained_map.shape[1]
        for _ in range(n_draws):
            latents = rng.standard_normal((n_gallery, n_latent))
            unexplained = rng.standard_normal((n_gallery, n_unexplained))
            queries = self.mean_response(latents) + unexplained @ self.unexplained_map.T
            queries = queries + self.noise(rng, n_gallery).reshape(n_gallery, -1) / np.sqrt(n_repetitions)
            scores = self.ranking_scores(
                queries.reshape(n_gallery, self.n_chans, self.n_times), latents, n_repetitions
            )
            for k, value in top_k_hits(scores, topk).items():
                hits[k].append(value)
        result = {}
        for k, values in hits.items():
            per_query = np.concatenate(values)
            half_width = 1.96 * per_query.std(ddof=1) / np.sqrt(len(per_query)) if len(per_query) > 1 else 0.0
            result[f"top{k}"] = (float(per_query.mean()), float(half_width))
        return result


def _solve_lower(root: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``(L⁻¹ rowsᵀ)ᵀ`` for a lower-triangular ``L``."""
    from scipy.linalg import solve_triangular

    return solve_triangular(root, rows.T, lower=True).T


def top_k_hits(scores: np.ndarray, topk=(1, 5)) -> dict[int, np.ndarray]:
    """Per query, whether the target (query ``i`` ↔ gallery item ``i``) is among the ``k`` best scores.

    Ties count against the target: the rank is :func:`ttdnet.ranking.ranks`, one plus the number of other
    items the target does not score strictly above.

    Parameters
    ----------
    scores : numpy.ndarray, shape (n, n)

    Returns
    -------
    dict
        ``{k: bool array (n,)}``.
    """
    rank = ranks(scores)
    return {k: rank <= k for k in topk}


def ceiling_scores(scores: np.ndarray, topk=(1, 5)) -> dict[str, float]:
    """Top-k accuracies of a score matrix whose row ``i`` targets column ``i``."""
    return {f"top{k}": float(hits.mean()) for k, hits in top_k_hits(scores, topk).items()}


class LinearGaussianModel:
    """The benchmark's generative model: shared maps from the seed, one :class:`SubjectForward` per subject.

    Parameters
    ----------
    seed : int
    parameters : LinearGaussianParameters, optional
    channels : sequence of str
        Written channels (names from the 63 raw-order channels); default the 17 posterior ones.
    """

    def __init__(self, seed: int, parameters: LinearGaussianParameters | None = None, channels=POSTERIOR_17_CHANNELS):
        self.seed = seed
        self.parameters = parameters or LinearGaussianParameters()
        self.parameters.check()
        unknown = [name for name in channels if name not in RAW_63_CHANNELS]
        if unknown:
            raise ConfigError(f"unknown channel names {unknown}; use names of the 63 THINGS-EEG2 channels")
        self.channels = [RAW_63_CHANNELS.index(name) for name in channels]
        self.eeg_model = EegModel(seed)
        rng = np.random.default_rng(stable_seed(seed, "linear-gaussian"))
        n_sources, p = self.eeg_model.n_sources, self.parameters
        self.source_latent_map = rng.standard_normal((n_sources, p.n_latent))
        if p.unexplained_space == "latent":
            mixing = rng.standard_normal((p.n_latent, max(p.n_unexplained, 1)))
            self.source_unexplained_map = self.source_latent_map @ mixing
        else:
            self.source_unexplained_map = rng.standard_normal((n_sources, max(p.n_unexplained, 1)))
        self._build_feature_maps(np.random.default_rng(stable_seed(seed, "linear-gaussian-features")))

    # ----- EEG -----

    def subject(self, number: int) -> SubjectForward:
        """Subject ``number`` (1-based): its forward model, latencies and noise from the head model."""
        p = self.parameters
        subject = self.eeg_model.subject(number)
        gain = subject.source_gain[self.channels]  # (C, S)
        courses = subject.time_courses(TIMES)  # (S, T)
        # column j of a source map, as a (C, T) pattern: Σ_s gain[:, s] courses[s] map[s, j]
        patterns = np.einsum("cs,st->cts", gain, courses).reshape(-1, gain.shape[1])
        latent_map = patterns @ self.source_latent_map
        unexplained_map = patterns @ self.source_unexplained_map
        erp = patterns @ self.eeg_model.common_moments
        post = np.tile(TIMES >= 0, len(self.channels))
        latent_power = np.sum(latent_map[post] ** 2) / post.sum()
        unexplained_power = np.sum(unexplained_map[post] ** 2) / post.sum()
        latent_map *= np.sqrt((1 - p.unexplained_share) * p.snr**2 / latent_power)
        if p.unexplained_share > 0:
            unexplained_map *= np.sqrt(p.unexplained_share * p.snr**2 / unexplained_power)
        else:
            unexplained_map = np.zeros_like(unexplained_map)
        erp *= 1.5 * p.snr / np.sqrt(np.mean(erp[post] ** 2))
        spatial, temporal = _noise_factors(subject.background_covariance[np.ix_(self.channels, self.channels)], p)
        return SubjectForward(latent_map, unexplained_map, erp, spatial, temporal, len(self.channels), len(TIMES))

    # ----- features -----

    def _build_feature_maps(self, rng: np.random.Generator) -> None:
        p = self.parameters
        self.layer_reads, self.layer_rotations, self.layer_embeddings, self.layer_scales = [], [], [], []
        for layer in range(p.n_layers):
            self.layer_reads.append(_orthonormal(rng, p.latent_per_layer, p.n_latent))
            self.layer_rotations.append([_orthonormal(rng, p.layer_width, p.layer_width) for _ in range(layer + 1)])
            self.layer_embeddings.append(_orthonormal(rng, p.feature_dim, p.layer_width))
        reads = np.concatenate(self.layer_reads)
        if np.linalg.matrix_rank(reads) < p.n_latent:
            raise ConfigError("the layers' latent directions do not span the latent; raise layer_coverage")
        probe = np.random.default_rng(stable_seed(self.seed, "linear-gaussian-scale"))
        latents = probe.standard_normal((4096, p.n_latent))
        nuisance = probe.standard_normal((4096, p.n_nuisance))
        for layer in range(p.n_layers):
            self.layer_scales.append([])
            hidden = self._layer_inputs(layer, latents, nuisance)
            for rotation in self.layer_rotations[layer]:
                hidden = self._nonlinearity(hidden @ rotation.T)
                self.layer_scales[layer].append(float(hidden.std()))
                hidden = hidden / self.layer_scales[layer][-1]

    def _layer_inputs(self, layer: int, latents: np.ndarray, nuisance: np.ndarray) -> np.ndarray:
        return np.concatenate([latents @ self.layer_reads[layer].T, self.parameters.nuisance_scale * nuisance], 1)

    def _nonlinearity(self, values: np.ndarray) -> np.ndarray:
        gain, leak = self.parameters.nonlinearity_gain, self.parameters.nonlinearity_leak
        return (np.tanh(gain * values) / gain if gain > 0 else values) + leak * values

    def features(self, rng: np.random.Generator, latents: np.ndarray, nuisance: np.ndarray) -> np.ndarray:
        """Image features, shape (n_images, n_layers, feature_dim), float32.

        Parameters
        ----------
        rng : numpy.random.Generator
            Draws the feature noise (unused when ``feature_noise`` is 0).
        latents : numpy.ndarray, shape (n_images, n_latent)
        nuisance : numpy.ndarray, shape (n_images, n_nuisance)
        """
        p = self.parameters
        layers = []
        for layer in range(p.n_layers):
            hidden = self._layer_inputs(layer, latents, nuisance)
            for rotation, scale in zip(self.layer_rotations[layer], self.layer_scales[layer]):
                hidden = self._nonlinearity(hidden @ rotation.T) / scale
            layers.append(hidden @ self.layer_embeddings[layer].T)
        stacked = np.stack(layers, axis=1)
        if p.feature_noise > 0:
            stacked = stacked + p.feature_noise * rng.standard_normal(stacked.shape)
        return stacked.astype(np.float32)
