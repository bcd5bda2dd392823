"""Identification formulas against brute-force loops and enumerations computed here."""

import itertools

import numpy as np
import pytest

from ttdnet.eval import identification as ident


def brute_two_way(gt, rec):
    n = len(gt)
    r = np.corrcoef(gt, rec)[:n, n:]
    total = 0.0
    for j in range(n):
        wins = sum(1 for i in range(n) if i != j and r[i, j] < r[j, j])
        total += wins / (n - 1)
    return total / n


def test_correlation_matrix_matches_numpy_corrcoef():
    rng = np.random.default_rng(0)
    gt, rec = rng.standard_normal((7, 30)), rng.standard_normal((5, 30))
    np.testing.assert_allclose(ident.correlation_matrix(gt, rec), np.corrcoef(gt, rec)[:7, 7:], atol=1e-12)


def test_two_way_matches_brute_force_loop():
    rng = np.random.default_rng(1)
    gt = rng.standard_normal((12, 50))
    rec = gt + 1.5 * rng.standard_normal((12, 50))
    scores = ident.two_way_identification(ident.correlation_matrix(gt, rec))
    assert scores.mean() == pytest.approx(brute_two_way(gt, rec), abs=1e-12)


def test_two_way_orientation_fixes_the_reconstruction():
    # corr[i, j]: gt i vs rec j. Rec 0 beats both other GTs; rec 1 and 2 beat none.
    corr = np.array([[0.9, 0.95, 0.95], [0.1, 0.2, 0.99], [0.1, 0.99, 0.3]])
    np.testing.assert_allclose(ident.two_way_identification(corr), [1.0, 0.0, 0.0])


def test_two_way_ties_fail():
    assert ident.two_way_identification(np.ones((4, 4))).tolist() == [0.0] * 4


def test_identical_features_score_one_and_unrelated_near_chance():
    rng = np.random.default_rng(2)
    gt = rng.standard_normal((40, 64))
    assert ident.two_way_identification(ident.correlation_matrix(gt, gt)).mean() == 1.0
    unrelated = rng.standard_normal((40, 64))
    assert abs(ident.two_way_identification(ident.correlation_matrix(gt, unrelated)).mean() - 0.5) < 0.1


@pytest.mark.parametrize("higher", [True, False])
def test_pairwise_identification_matches_brute_force(higher):
    rng = np.random.default_rng(3)
    m = rng.random((9, 9))
    m[2, 5] = m[2, 2]  # a tie, which must fail
    expected = []
    for i in range(9):
        wins = sum(1 for j in range(9) if j != i and ((m[i, i] > m[i, j]) if higher else (m[i, i] < m[i, j])))
        expected.append(wins / 8)
    np.testing.assert_allclose(ident.pairwise_identification(m, higher), expected)


def enumerate_nway(scores_row, target, n):
    """Fraction of all (n-1)-subsets of the other entries that the target strictly beats."""
    others = [k for k in range(len(scores_row)) if k != target]
    subsets = list(itertools.combinations(others, n - 1))
    return sum(all(scores_row[k] < scores_row[target] for k in subset) for subset in subsets) / len(subsets)


@pytest.mark.parametrize("n", [2, 3, 5])
def test_nway_classifier_exact_equals_enumeration(n):
    rng = np.random.default_rng(4)
    probs = rng.dirichlet(np.ones(8), size=6)
    probs[0, 3] = probs[0, 1]  # tie with the label of item 0
    labels = np.array([1, 0, 7, 2, 2, 5])
    expected = [enumerate_nway(probs[i], labels[i], n) for i in range(6)]
    np.testing.assert_allclose(ident.nway_classifier_exact(probs, labels, n), expected, atol=1e-12)


def test_nway_hand_built_case():
    # K = 5 classes; the label (0) beats exactly 2 of the 4 others. 3-way: C(2,2)/C(4,2) = 1/6.
    probs = np.array([[0.2, 0.1, 0.3, 0.35, 0.05]])
    assert ident.nway_classifier_exact(probs, np.array([0]), 3)[0] == pytest.approx(1 / 6)
    assert ident.nway_classifier_exact(probs, np.array([0]), 2)[0] == pytest.approx(2 / 4)
    assert ident.nway_classifier_exact(probs, np.array([3]), 5)[0] == 1.0


def test_nway_monte_carlo_is_seeded_and_agrees_with_exact():
    rng = np.random.default_rng(5)
    probs = rng.dirichlet(np.ones(30), size=10)
    labels = rng.integers(0, 30, size=10)
    trials = 400
    first = ident.nway_classifier_monte_carlo(probs, labels, 5, trials=trials, seed=3)
    again = ident.nway_classifier_monte_carlo(probs, labels, 5, trials=trials, seed=3)
    assert first.mean == again.mean and np.array_equal(first.outcomes, again.outcomes)
    # Each trial's success probability, computed here by enumerating every distractor set; the stratified
    # estimator's standard error follows from it: SE² = Σ p_i (1 − p_i) / T / N².
    exact = np.array([enumerate_nway(probs[i], labels[i], 5) for i in range(10)])
    expected_se = np.sqrt(np.sum(exact * (1 - exact)) / trials) / len(exact)
    assert abs(first.mean - exact.mean()) < 4 * expected_se
    half_width = (first.ci95[1] - first.ci95[0]) / 2
    assert half_width == pytest.approx(1.96 * expected_se, rel=0.25)
    # The draws are the documented ones: trial i uses default_rng(seed + i) over the classes other than its label.
    replayed = []
    for i in range(10):
        draws = np.random.default_rng(3 + i)
        others = np.delete(np.arange(30), labels[i])
        replayed.append([np.all(probs[i, draws.choice(others, 4, replace=False)] < probs[i, labels[i]])
                         for _ in range(trials)])  # fmt: skip
    assert np.array_equal(first.outcomes, np.array(replayed, dtype=float))


@pytest.mark.parametrize("n", [2, 4, 7])
def test_nway_similarity_exact_equals_enumeration(n):
    rng = np.random.default_rng(6)
    similarity = rng.standard_normal((7, 7))
    expected = [enumerate_nway(similarity[j], j, n) for j in range(7)]
    np.testing.assert_allclose(ident.nway_similarity_exact(similarity, n), expected, atol=1e-12)


def test_derangement_has_no_fixed_points_and_is_seeded():
    for n in (2, 3, 10, 200):
        perm = ident.derangement(n, seed=1)
        assert sorted(perm.tolist()) == list(range(n))
        assert np.all(perm != np.arange(n))
    assert ident.derangement(50, 4).tolist() == ident.derangement(50, 4).tolist()
