"""The linear-Gaussian benchmark model: its EEG has the stated distribution, and its ceiling is the Bayes rule."""

import dataclasses

import numpy as np
import pytest
from scipy.stats import multivariate_normal

from ttdnet.errors import ConfigError
from ttdnet.simulate.linear_gaussian import (
    LinearGaussianModel,
    LinearGaussianParameters,
    ceiling_scores,
    top_k_hits,
)


CHANNELS = ("O1", "Oz", "O2", "PO7", "PO8")


@pytest.fixture(scope="module")
def model():
    return LinearGaussianModel(0, LinearGaussianParameters(snr=0.5, n_latent=6, n_unexplained=4, n_nuisance=5,
                                                             feature_dim=16), CHANNELS)  # fmt: skip


@pytest.fixture(scope="module")
def subject(model):
    return model.subject(1)


def test_ranking_scores_are_gaussian_log_likelihoods(model, subject):
    rng = np.random.default_rng(0)
    latents = rng.standard_normal((6, model.parameters.n_latent))
    queries = subject.mean_response(latents) + rng.standard_normal((6, subject.n_chans * subject.n_times))
    scores = subject.ranking_scores(queries.reshape(6, subject.n_chans, subject.n_times), latents, n_repetitions=3)
    covariance = (
        subject.unexplained_map @ subject.unexplained_map.T + np.kron(subject.spatial_cov, subject.temporal_cov) / 3
    )
    means = subject.mean_response(latents)
    log_likelihood = np.array([[multivariate_normal(mean, covariance).logpdf(q) for mean in means] for q in queries])
    # equal up to a per-query constant (and the factor 2 of the squared distance)
    difference = scores / 2 - log_likelihood
    np.testing.assert_allclose(difference - difference[:, :1], 0, atol=1e-6)


def test_trials_have_the_stated_noise_and_repetition_invariant_response(model, subject):
    rng = np.random.default_rng(1)
    n = 3000
    latents = rng.standard_normal((n, model.parameters.n_latent))
    unexplained = rng.standard_normal((n, model.parameters.n_unexplained))
    trials = subject.trials(rng, latents, unexplained, n_repetitions=2).reshape(n, 2, -1)
    # the difference of two repetitions is pure noise: covariance 2 Σ_c ⊗ Σ_t (checked on the spatial part)
    difference = (trials[:, 0] - trials[:, 1]).reshape(n, subject.n_chans, subject.n_times)
    spatial = np.einsum("nct,ndt->cd", difference, difference) / (n * subject.n_times * 2)
    expected = subject.spatial_cov * np.mean(np.diag(subject.temporal_cov))
    np.testing.assert_allclose(spatial, expected, atol=0.05)
    # the repetition mean minus the latent response: the unexplained part plus half the noise
    residual = trials.mean(axis=1) - subject.mean_response(latents)
    np.testing.assert_allclose(
        residual.var(axis=0).mean(),
        np.sum(subject.unexplained_map**2) / residual.shape[1] + 0.5 * np.trace(subject.spatial_cov) / subject.n_chans,
        rtol=0.05,
    )


def test_snr_is_the_post_stimulus_rms_of_the_image_response(subject):
    post = np.tile(np.arange(subject.n_times) >= 20, subject.n_chans)  # index 20 is stimulus onset
    power = (np.sum(subject.latent_map[post] ** 2) + np.sum(subject.unexplained_map[post] ** 2)) / post.sum()
    assert np.sqrt(power) == pytest.approx(0.5)
    assert np.mean(np.diag(subject.spatial_cov)) * np.mean(np.diag(subject.temporal_cov)) == pytest.approx(1.0)


def test_features_determine_the_latent(model):
    """The features are an injective smooth map of (latent, nuisance): full-rank Jacobian at random points."""
    rng = np.random.default_rng(2)
    p = model.parameters
    for _ in range(3):
        point = np.concatenate([rng.standard_normal(p.n_latent), rng.standard_normal(p.n_nuisance)])
        step = 1e-5
        columns = []
        for i in range(len(point)):
            up, down = point.copy(), point.copy()
            up[i] += step
            down[i] -= step
            grad = model.features(rng, up[None, : p.n_latent], up[None, p.n_latent :]).astype(np.float64)
            grad -= model.features(rng, down[None, : p.n_latent], down[None, p.n_latent :])
            columns.append(grad.reshape(-1) / (2 * step))
        assert np.linalg.matrix_rank(np.stack(columns, 1), tol=1e-3) == len(point)
    features = model.features(rng, rng.standard_normal((500, p.n_latent)), rng.standard_normal((500, p.n_nuisance)))
    latent_only = model.features(rng, np.zeros((1, p.n_latent)), np.zeros((1, p.n_nuisance)))
    assert features.shape == (500, p.n_layers, p.feature_dim) and np.isfinite(features).all()
    assert np.abs(latent_only).max() < 1e-6  # the maps are odd: no constant offset hides in a layer


def test_ceiling_grows_with_repetitions_and_is_at_chance_without_signal(model, subject):
    low = subject.expected_ceiling(np.random.default_rng(3), 20, 1, 20)["top1"][0]
    high = subject.expected_ceiling(np.random.default_rng(3), 20, 80, 20)["top1"][0]
    assert high > low + 0.1
    silent = LinearGaussianModel(0, LinearGaussianParameters(snr=1e-6, n_latent=6, n_unexplained=4, n_nuisance=5,
                                                              feature_dim=16), CHANNELS).subject(1)  # fmt: skip
    mean, half_width = silent.expected_ceiling(np.random.default_rng(4), 20, 1, 50)["top1"]
    assert abs(mean - 1 / 20) < max(half_width, 0.02) + 0.02


def test_top_k_counts_ties_against_the_target():
    scores = np.array([[1.0, 1.0, 0.0], [0.0, 2.0, 1.0], [0.0, 3.0, 1.0]])
    hits = top_k_hits(scores, topk=(1, 2))
    assert hits[1].tolist() == [False, True, False]
    assert hits[2].tolist() == [True, True, True]
    assert ceiling_scores(scores, topk=(1,)) == {"top1": pytest.approx(1 / 3)}


@pytest.mark.parametrize(
    "change, message",
    [({"snr": 0}, "snr"), ({"unexplained_share": 1.0}, "unexplained_share"), ({"layer_coverage": 0.1}, "cover"),
     ({"feature_dim": 8}, "feature_dim")],
)  # fmt: skip
def test_bad_knobs_are_config_errors(change, message):
    with pytest.raises(ConfigError, match=message):
        LinearGaussianParameters(n_latent=32, n_nuisance=4, **change).check()


def test_latent_space_unexplained_response_lies_in_the_latent_directions():
    parameters = LinearGaussianParameters(n_latent=6, n_unexplained=4, n_nuisance=5, feature_dim=16)
    latent = LinearGaussianModel(0, dataclasses.replace(parameters, unexplained_space="latent"), CHANNELS).subject(1)
    sources = LinearGaussianModel(0, parameters, CHANNELS).subject(1)

    def outside_share(subject):
        basis, _ = np.linalg.qr(subject.latent_map)
        rest = subject.unexplained_map - basis @ (basis.T @ subject.unexplained_map)
        return np.sum(rest**2) / np.sum(subject.unexplained_map**2)

    assert outside_share(latent) < 1e-12
    assert outside_share(sources) > 0.01
