"""MMD schedule, augmentation, router and scoring of the retrieval model against independent hand computations."""

import math

import numpy as np
import pytest
import torch

from ttdnet.eval.retrieval import retrieval_scores
from ttdnet.models.registry import DEFAULT_SIGNAL, build_encoder
from ttdnet.stages.contrastive import mmd_weight
from ttdnet.stages.retrieval_augment import gaussian_kernel, gaussian_smooth
from ttdnet.stages.retrieval_model import RetrievalModel, SubjectAwareRouter
from ttdnet.stages.retrieval_persistence import load_retrieval_model, save_retrieval_model


def test_mmd_weight_schedule():
    assert mmd_weight(1, 20, 0.9, 0.2) == pytest.approx(0.9)
    assert mmd_weight(20, 20, 0.9, 0.2) == pytest.approx(0.2)
    assert mmd_weight(11, 20, 0.9, 0.2) == pytest.approx(0.9 - 0.7 * 10 / 19)
    assert mmd_weight(21, 20, 0.9, 0.2) == 0.0 and mmd_weight(1, 0, 0.9, 0.2) == 0.0


def test_gaussian_smoothing_matches_numpy_and_respects_probability():
    kernel = gaussian_kernel(5, 1.0).numpy()
    expected_kernel = np.exp(-(np.arange(-2, 3) ** 2) / 2.0)
    np.testing.assert_allclose(kernel, expected_kernel / expected_kernel.sum(), rtol=1e-6)
    eeg = torch.randn(4, 3, 20)
    smoothed = gaussian_smooth(eeg, 1.0, 5, 1.0)
    for b in range(4):
        for c in range(3):
            np.testing.assert_allclose(
                smoothed[b, c].numpy(), np.convolve(eeg[b, c].numpy(), kernel, mode="same"), rtol=1e-5, atol=1e-6
            )
    assert torch.equal(gaussian_smooth(eeg, 0.0), eeg)
    generator = torch.Generator().manual_seed(0)
    half = gaussian_smooth(torch.randn(400, 1, 20), 0.3, generator=generator)
    assert half.shape == (400, 1, 20)


def test_router_uses_the_global_prior_in_eval_and_the_subject_bias_in_training():
    router = SubjectAwareRouter(3, 2, init_logits=[1.0, 0.0, -1.0], subject_dropout=0.0, layer_dropout=0.0)
    with torch.no_grad():
        router.subject_bias.weight.copy_(torch.tensor([[0.0, 0.0, 0.0], [0.0, 0.0, 5.0]]))
    prior = torch.softmax(torch.tensor([1.0, 0.0, -1.0]), dim=0)
    subjects = torch.tensor([0, 1])
    router.train()
    weights = router(2, subjects)
    torch.testing.assert_close(weights[0], prior)
    torch.testing.assert_close(weights[1], torch.softmax(torch.tensor([1.0, 0.0, 4.0]), dim=0))
    router.eval()
    torch.testing.assert_close(router(2, subjects), prior.expand(2, 3))
    router.train()
    torch.testing.assert_close(router(2, None), prior.expand(2, 3))


def test_layer_dropout_masks_with_minus_infinity():
    # Zeroing a negative logit would raise its weight; masking must only ever remove weight.
    torch.manual_seed(0)
    router = SubjectAwareRouter(4, 1, init_logits=[-3.0, -1.0, 0.0, 2.0], subject_dropout=1.0, layer_dropout=0.5)
    router.train()
    weights = router(2000, torch.zeros(2000, dtype=torch.long))
    logits = torch.tensor([-3.0, -1.0, 0.0, 2.0])
    dropped = weights == 0
    assert dropped.any() and not dropped.all(dim=1).any()
    expected = torch.softmax(logits.masked_fill(dropped, float("-inf")), dim=1)
    torch.testing.assert_close(weights, expected)
    torch.testing.assert_close(weights.sum(dim=1), torch.ones(2000))


def tiny_model(layer_mode="router", n_layers=3, dim=6):
    torch.manual_seed(0)
    encoder = build_encoder("eegproject", DEFAULT_SIGNAL, "tiny")
    return RetrievalModel(encoder, "eegproject", n_layers, dim, n_subjects=2, proj_dim=4, image_hidden_dim=8,
                          layer_mode=layer_mode, router_subject_dropout=0.0, router_layer_dropout=0.0)  # fmt: skip


def test_gallery_ignores_the_subject_at_eval_time():
    model = tiny_model()
    with torch.no_grad():
        model.router.subject_bias.weight.normal_()
    features = torch.randn(5, 3, 6)
    model.train()
    a, b = (
        model.encode_image(features, torch.zeros(5, dtype=torch.long)),
        model.encode_image(features, torch.ones(5, dtype=torch.long)),
    )
    assert not torch.allclose(a, b)
    model.eval()
    torch.testing.assert_close(
        model.encode_image(features, torch.zeros(5, dtype=torch.long)), model.encode_image(features)
    )
    torch.testing.assert_close(model.encode_image(features).norm(dim=1), torch.ones(5))


def test_single_layer_mode_reads_only_that_layer():
    model = tiny_model("single").eval()
    features = torch.randn(5, 3, 6)
    changed = features.clone()
    changed[:, 0] += 10.0
    torch.testing.assert_close(model.encode_image(features), model.encode_image(changed))
    changed[:, -1] += 1.0
    assert not torch.allclose(model.encode_image(features), model.encode_image(changed))


def test_temperature_is_trained_or_fixed():
    model = tiny_model()
    assert any(p is model.logit_scale for p in model.parameters())
    torch.manual_seed(0)
    fixed = RetrievalModel(build_encoder("eegproject", DEFAULT_SIGNAL, "tiny"), "eegproject", 3, 6, 2,
                           learn_temperature=False, init_temperature=0.1)  # fmt: skip
    assert not any(p is fixed.logit_scale for p in fixed.parameters())
    assert fixed.logit_scale.item() == pytest.approx(math.log(10.0))


def test_save_and_load_round_trip(tmp_path):
    model = tiny_model().eval()
    save_retrieval_model(model, tmp_path / "model", {"note": "x"})
    loaded, provenance = load_retrieval_model(tmp_path / "model")
    eeg, features = torch.randn(3, 17, 100), torch.randn(3, 3, 6)
    torch.testing.assert_close(loaded.encode_eeg(eeg), model.encode_eeg(eeg), rtol=0, atol=0)
    torch.testing.assert_close(loaded.encode_image(features), model.encode_image(features), rtol=0, atol=0)
    assert provenance == {"note": "x"}


def test_perfect_embedding_scores_one_and_a_derangement_scores_zero():
    torch.manual_seed(0)
    z = torch.nn.functional.normalize(torch.randn(200, 16), dim=-1).numpy()
    perfect = retrieval_scores(z @ z.T, ks=(2, 200), ts=(1, 5))
    assert perfect["top1"].value == 1.0 and perfect["top5"].value == 1.0 and perfect["top1_2way"].value == 1.0
    # Queries matched to a cyclic shift of the gallery: the true image is never the nearest.
    shifted = retrieval_scores(z @ np.roll(z, 1, axis=0).T, ks=(200,), ts=(1,))
    assert shifted["top1"].value == 0.0


def test_random_embeddings_score_near_chance():
    rng = np.random.default_rng(0)
    values = []
    for _ in range(20):
        q = rng.standard_normal((200, 32))
        g = rng.standard_normal((200, 32))
        values.append(retrieval_scores(q @ g.T, ks=(2,), ts=(1, 5))["top5"].value)
    assert np.mean(values) == pytest.approx(5 / 200, abs=0.01)
