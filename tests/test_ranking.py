"""The ranking rule and the k-way estimators against enumerations over every distractor set."""

import itertools

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
