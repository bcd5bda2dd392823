"""The ranking rule and the k-way estimators against enumerations over every distractor set."""

import itertools
import math

import numpy as np
import pytest

from ttdnet import ranking


def enumerate_kway(row, target, k, t):
    others = [i for i in range(len(row)) if i != target]
    subsets = list(itertools.combinations(others, k - 1))
    return sum(sum(row[i] >= row[target] for i in subset) < t for subset in subsets) / len(subsets)


def test_ranks_count_ties_against_the_target():
    similarity = np.array([[0.5, 0.5, 0.1], [0.2, 0.9, 0.3], [0.9, 0.8, 0.1]])
    assert ranking.ranks(similarity).tolist() == [2, 1, 3]


@pytest.mark.parametrize(("k", "t"), [(2, 1), (3, 1), (4, 2), (8, 1), (8, 5)])
def test_kway_exact_equals_enumeration(k, t):
    rng = np.random.default_rng(0)
    similarity = rng.standard_normal((8, 8)).round(1)  # rounding creates ties
    expected = [enumerate_kway(similarity[j], j, k, t) for j in range(8)]
    np.testing.assert_allclose(ranking.kway_top_exact(similarity, k, t), expected, atol=1e-12)


def test_full_gallery_kway_reduces_to_top_t():
    rng = np.random.default_rng(1)
    similarity = rng.standard_normal((10, 10))
    for t in (1, 5):
        np.testing.assert_allclose(ranking.kway_top_exact(similarity, 10, t), ranking.top_k(similarity, t))


def test_targets_off_the_diagonal():
    similarity = np.array([[0.1, 0.9, 0.2], [0.8, 0.1, 0.3]])
    assert ranking.top_k(similarity, 1, targets=np.array([1, 0])).tolist() == [1.0, 1.0]
    assert ranking.top_k(similarity, 1, targets=np.array([2, 2])).tolist() == [0.0, 0.0]


def test_monte_carlo_is_seeded_and_close_to_exact():
    rng = np.random.default_rng(2)
    similarity = rng.standard_normal((20, 20)) + 0.8 * np.eye(20)
    exact = ranking.kway_top_exact(similarity, 4, 1).mean()
    result = ranking.kway_top_monte_carlo(similarity, 4, 1, trials=500, seed=7)
    mean, (low, high) = result.mean, result.ci95
    mean_again = ranking.kway_top_monte_carlo(similarity, 4, 1, trials=500, seed=7).mean
    assert mean == mean_again
    assert abs(mean - exact) < 4 * (high - low) / (2 * 1.96)


def test_nan_counts_against_the_target():
    # Only a strictly higher target score wins; a NaN on either side of the comparison does not.
    scores = np.array([[0.5, np.nan, 0.1], [0.2, np.nan, 0.3], [0.9, 0.8, 0.95]])
    assert ranking.target_wins(scores).tolist() == [1, 0, 2]
    assert ranking.ranks(scores).tolist() == [2, 3, 1]


def test_monte_carlo_replays_the_documented_draws():
    rng = np.random.default_rng(4)
    scores = rng.standard_normal((5, 9)).round(1)
    targets = np.array([3, 0, 8, 8, 1])
    result = ranking.kway_top_monte_carlo(scores, 4, 2, trials=30, seed=11, targets=targets)
    for j in range(5):
        draws = np.random.default_rng(11 + j)
        others = np.delete(np.arange(9), targets[j])
        for trial in range(30):
            drawn = others[draws.choice(8, 3, replace=False)]
            against = sum(not scores[j, targets[j]] > scores[j, i] for i in drawn)
            assert result.outcomes[j, trial] == float(against < 2)
    assert result.per_query.tolist() == result.outcomes.mean(axis=1).tolist()
    assert (result.trials, result.seed) == (30, 11)


@pytest.mark.parametrize(("k", "t"), [(1, 1), (10, 1), (3, 0)])
def test_kway_rejects_impossible_sizes(k, t):
    scores = np.zeros((4, 4))
    with pytest.raises(ValueError, match="k-way|top-t"):
        ranking.kway_top_exact(scores, k, t)
    with pytest.raises(ValueError, match="k-way|top-t"):
        ranking.kway_top_monte_carlo(scores, k, t, trials=2, seed=0)


def test_monte_carlo_interval_is_wilson_at_the_effective_number_of_draws():
    z = 1.959963984540054
    outcomes = np.ones((3, 20))
    outcomes[1, 4] = 0.0  # 59 of 60 draws succeed: mean ± 1.96·SE would end above 1
    mean, (low, high) = ranking.monte_carlo_ci(outcomes)
    se = math.sqrt(np.var([1.0] * 19 + [0.0], ddof=1) / 20) / 3  # only query 1 varies
    assert mean == 59 / 60 and mean + 1.96 * se > 1.0
    n_eff = mean * (1 - mean) / se**2
    centre = (mean + z**2 / (2 * n_eff)) / (1 + z**2 / n_eff)
    half = z * math.sqrt(mean * (1 - mean) / n_eff + z**2 / (4 * n_eff**2)) / (1 + z**2 / n_eff)
    assert (low, high) == pytest.approx((centre - half, centre + half), abs=1e-12)
    assert low < mean < high < 1.0


def test_monte_carlo_interval_when_every_draw_agrees():
    z2 = 1.959963984540054**2
    mean, (low, high) = ranking.monte_carlo_ci(np.ones((4, 5)))
    assert mean == 1.0 and high == 1.0 and low == pytest.approx(20 / (20 + z2), abs=1e-12)
    mean, (low, high) = ranking.monte_carlo_ci(np.zeros((4, 5)))
    assert mean == 0.0 and low == 0.0 and high == pytest.approx(z2 / (20 + z2), abs=1e-12)
