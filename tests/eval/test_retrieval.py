"""Retrieval scores against enumerations over every distractor set."""

import itertools

import numpy as np
import pytest

from ttdnet.eval import retrieval


def enumerate_kway(row, target, k, t):
    others = [i for i in range(len(row)) if i != target]
    subsets = list(itertools.combinations(others, k - 1))
    return sum(sum(row[i] >= row[target] for i in subset) < t for subset in subsets) / len(subsets)


def test_ranks_count_ties_against_the_target():
    similarity = np.array([[0.5, 0.5, 0.1], [0.2, 0.9, 0.3], [0.9, 0.8, 0.1]])
    assert retrieval.ranks(similarity).tolist() == [2, 1, 3]


@pytest.mark.parametrize(("k", "t"), [(2, 1), (3, 1), (4, 2), (8, 1), (8, 5)])
def test_kway_exact_equals_enumeration(k, t):
    rng = np.random.default_rng(0)
    similarity = rng.standard_normal((8, 8)).round(1)  # rounding creates ties
    expected = [enumerate_kway(similarity[j], j, k, t) for j in range(8)]
    np.testing.assert_allclose(retrieval.kway_top_exact(similarity, k, t), expected, atol=1e-12)


def test_full_gallery_kway_reduces_to_top_t():
    rng = np.random.default_rng(1)
    similarity = rng.standard_normal((10, 10))
    for t in (1, 5):
        np.testing.assert_allclose(retrieval.kway_top_exact(similarity, 10, t), retrieval.top_k(similarity, t))


def test_targets_off_the_diagonal():
    similarity = np.array([[0.1, 0.9, 0.2], [0.8, 0.1, 0.3]])
    assert retrieval.top_k(similarity, 1, targets=np.array([1, 0])).tolist() == [1.0, 1.0]
    assert retrieval.top_k(similarity, 1, targets=np.array([2, 2])).tolist() == [0.0, 0.0]


def test_monte_carlo_is_seeded_and_close_to_exact():
    rng = np.random.default_rng(2)
    similarity = rng.standard_normal((20, 20)) + 0.8 * np.eye(20)
    exact = retrieval.kway_top_exact(similarity, 4, 1).mean()
    _, mean, (low, high) = retrieval.kway_top_monte_carlo(similarity, 4, 1, trials=500, seed=7)
    _, mean_again, _ = retrieval.kway_top_monte_carlo(similarity, 4, 1, trials=500, seed=7)
    assert mean == mean_again
    assert abs(mean - exact) < 4 * (high - low) / (2 * 1.96)


def test_retrieval_scores_keys_and_chance():
    rng = np.random.default_rng(3)
    identical = rng.standard_normal((12, 6))
    identical /= np.linalg.norm(identical, axis=1, keepdims=True)
    scores = retrieval.retrieval_scores(identical @ identical.T, ks=(2, 4, 10, 50), ts=(1, 5))
    assert set(scores) == {"top1", "top5", "top1_2way", "top1_4way", "top1_10way", "top5_10way"}
    assert all(score.value == 1.0 for score in scores.values())
    assert scores["top5_10way"].chance == 0.5 and scores["top1"].chance == 1 / 12
    unrelated = rng.standard_normal((200, 200))
    chance = retrieval.retrieval_scores(unrelated, ks=(2, 10), ts=(1,))
    assert abs(chance["top1_2way"].value - 0.5) < 0.05
    assert abs(chance["top1_10way"].value - 0.1) < 0.03
