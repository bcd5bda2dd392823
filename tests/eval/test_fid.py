"""FID against the closed form on Gaussian features; KID against its formula with explicit kernel loops; both
against torch-fidelity, the reference implementation whose Inception features the suite uses."""

import numpy as np
import pytest
import scipy.linalg
import torch
from torch_fidelity import metric_fid, metric_kid

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


def test_fewer_images_than_feature_dimensions_equals_the_textbook_formula():
    """The test-set case (200 images, 2048-d features): scipy's sqrtm of the D x D product as the reference."""
    rng = np.random.default_rng(7)
    real = rng.standard_normal((30, 80)) @ rng.standard_normal((80, 80))
    fake = 0.8 * rng.standard_normal((25, 80)) @ rng.standard_normal((80, 80)) + 0.2
    expected = closed_form(real.mean(0), np.cov(real, rowvar=False), fake.mean(0), np.cov(fake, rowvar=False))
    assert fid.fid_from_features(real, fake) == pytest.approx(expected, rel=1e-7)


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


@pytest.mark.parametrize(("n_real", "n_fake", "dim"), [(120, 90, 16), (40, 30, 64)])  # both branches: D < N, N < D
def test_fid_matches_torch_fidelity(n_real, n_fake, dim):
    rng = np.random.default_rng(4)
    real = rng.standard_normal((n_real, dim)) @ rng.standard_normal((dim, dim))
    fake = rng.standard_normal((n_fake, dim)) @ rng.standard_normal((dim, dim)) + 0.3
    stats = [metric_fid.fid_features_to_statistics(torch.from_numpy(x)) for x in (real, fake)]
    reference = metric_fid.fid_statistics_to_metric(*stats, verbose=False)[metric_fid.KEY_METRIC_FID]
    # With N < D the product is singular, where torch-fidelity's scipy sqrtm is itself only good to ~1e-8.
    assert fid.fid_from_features(real, fake) == pytest.approx(reference, rel=1e-9 if n_real > dim else 1e-7)


def test_kid_matches_torch_fidelity():
    rng = np.random.default_rng(5)
    real, fake = rng.standard_normal((40, 12)), rng.standard_normal((30, 12)) + 0.2
    poly = {"kid_kernel": "poly", "kid_kernel_poly_degree": 3, "kid_kernel_poly_gamma": None}
    # Whole sets: every subset holds every row, so both libraries' subset draws give the same MMD².
    reference = metric_kid.kid_features_to_metric(
        torch.from_numpy(real[:30]),
        torch.from_numpy(fake),
        kid_subsets=3,
        kid_subset_size=30,
        kid_kernel_poly_coef0=1,
        verbose=False,
        **poly,
    )
    mean, std, _ = fid.kid_from_features(real[:30], fake, subsets=3, subset_size=30, seed=0)
    assert mean == pytest.approx(reference[metric_kid.KEY_METRIC_KID_MEAN], rel=1e-9)
    assert std == pytest.approx(reference[metric_kid.KEY_METRIC_KID_STD], abs=1e-12)
    # Seeded subsets of 10: each value is torch-fidelity's unbiased MMD² of the same (replayed) subsets.
    _, _, values = fid.kid_from_features(real, fake, subsets=5, subset_size=10, seed=7)
    draws = np.random.default_rng(7)
    for value in values:
        x, y = real[draws.permutation(40)[:10]], fake[draws.permutation(30)[:10]]
        assert value == pytest.approx(metric_kid.kernel_mmd(x, y, kid_kernel_poly_coef0=1, **poly), rel=1e-9)
