"""FID against the closed form on Gaussian features; KID against its formula with explicit kernel loops."""

import numpy as np
import pytest
import scipy.linalg

from ttdnet.eval import fid


def closed_form(mu1, sigma1, mu2, sigma2):
    covmean = scipy.linalg.sqrtm(sigma1 @ sigma2).real
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(sigma1 + sigma2 - 2 * covmean))


def test_fid_equals_closed_form_of_the_sample_moments():
    rng = np.random.default_rng(0)
    real = rng.standard_normal((300, 6)) @ rng.standard_normal((6, 6))
    fake = rng.standard_normal((250, 6)) @ rng.standard_normal((6, 6)) + 0.5
    expected = closed_form(real.mean(0), np.cov(real, rowvar=False), fake.mean(0), np.cov(fake, rowvar=False))
    assert fid.fid_from_features(real, fake) == pytest.approx(expected, rel=1e-8)


def test_fid_converges_to_the_population_frechet_distance():
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((4, 4)), rng.standard_normal((4, 4))
    sigma1, sigma2 = a @ a.T + np.eye(4), b @ b.T + 0.5 * np.eye(4)
    mu1, mu2 = np.zeros(4), np.array([1.0, -0.5, 0.0, 2.0])
    real = rng.multivariate_normal(mu1, sigma1, size=200_000)
    fake = rng.multivariate_normal(mu2, sigma2, size=200_000)
    expected = closed_form(mu1, sigma1, mu2, sigma2)
    assert fid.fid_from_features(real, fake) == pytest.approx(expected, rel=0.02)


def test_fid_of_identical_sets_is_zero():
    features = np.random.default_rng(2).standard_normal((50, 8))
    assert abs(fid.fid_from_features(features, features)) < 1e-8


def brute_mmd(x, y):
    d = x.shape[1]

    def k(a, b):
        return (float(a @ b) / d + 1.0) ** 3

    m = len(x)
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    return xx + yy - 2 * xy


def test_kid_equals_its_formula():
    rng = np.random.default_rng(3)
    real, fake = rng.standard_normal((15, 5)), rng.standard_normal((15, 5)) + 0.3
    # With subset_size = N every subset is the whole set, so each value is the MMD of the full sets.
    mean, std, values = fid.kid_from_features(real, fake, subsets=3, subset_size=15, seed=0)
    assert mean == pytest.approx(brute_mmd(real, fake), rel=1e-10)
    assert std == pytest.approx(0.0, abs=1e-12)
    # With smaller subsets, each value is the MMD of the seeded draw.
    mean, std, values = fid.kid_from_features(real, fake, subsets=4, subset_size=6, seed=9)
    rng = np.random.default_rng(9)
    expected = []
    for _ in range(4):
        x = real[rng.permutation(15)[:6]]
        y = fake[rng.permutation(15)[:6]]
        expected.append(brute_mmd(x, y))
    np.testing.assert_allclose(values, expected, rtol=1e-10)
    assert mean == pytest.approx(np.mean(expected)) and std == pytest.approx(np.std(expected))


def test_kid_rejects_subsets_larger_than_the_sets():
    features = np.zeros((10, 3))
    with pytest.raises(ValueError, match="subset_size"):
        fid.kid_from_features(features, features, subsets=2, subset_size=11, seed=0)
