"""Retrieval scores: keys, chance levels and the Monte-Carlo entries."""

import numpy as np

from ttdnet import ranking
from ttdnet.eval import retrieval


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


def test_retrieval_keys_list_the_exact_scores_in_order():
    rng = np.random.default_rng(4)
    similarity = rng.standard_normal((12, 12))
    scores = retrieval.retrieval_scores(similarity, ks=(2, 4, 10, 50), ts=(1, 5), mc_trials=3, seed=2)
    exact = [key for key in scores if not key.endswith("_mc")]
    assert retrieval.retrieval_keys(12, (2, 4, 10, 50), (1, 5)) == exact
    assert [key for key in scores if key.endswith("_mc")] == [f"{key}_mc" for key in exact if "way" in key]
    mc = ranking.kway_top_monte_carlo(similarity, 10, 5, trials=3, seed=2)
    assert scores["top5_10way_mc"].value == mc.mean and scores["top5_10way_mc"].ci95 == mc.ci95


def test_monte_carlo_intervals_stay_in_zero_one_and_say_wilson():
    identical = np.eye(30)
    scores = retrieval.retrieval_scores(identical, ks=(2, 10), ts=(1,), mc_trials=20, seed=0)
    for key in ("top1_2way_mc", "top1_10way_mc"):
        low, high = scores[key].ci95
        assert scores[key].value == 1.0 and high == 1.0 and low < 1.0
        assert scores[key].ci95_method == "wilson"
    assert all(scores[key].ci95 is None and scores[key].ci95_method is None for key in ("top1", "top1_2way"))
