"""Weight resolution (local paths, one offline error listing everything), and the real builders' feature nodes."""

from pathlib import Path

import numpy as np
import pytest
import torch

from ttdnet.errors import TtdnetError
from ttdnet.eval import backbones as bb
from ttdnet.eval import weights
from ttdnet.eval.api import load_backbones, needed_backbones
from ttdnet.eval.command import EvaluateConfig
from ttdnet.eval.feature_backbone import Backbone
from ttdnet.eval.metrics import select_groups
from ttdnet.hashing import sha256_file
from ttdnet.image_constants import CLIP_MEAN, CLIP_STD


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """No network and empty caches: torch hub and Hugging Face point into tmp_path."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    return tmp_path


def test_offline_missing_weights_is_one_error_listing_every_file(offline):
    names = needed_backbones(select_groups(["all"]))
    with pytest.raises(weights.MissingWeightsError) as caught:
        weights.resolve_weights(names, offline / "weights", {}, allow_download=True, cache_dir=str(offline / "hf"))
    message = str(caught.value)
    files = weights.weight_files()
    for spec in files.values():
        assert spec.file_name in message and spec.url in message
        assert str(offline / "weights" / spec.file_name) in message
    expected_names = [
        "alexnet-owt-7be5be79.pth",
        "inception_v3_google-0cc3c7bd.pth",
        "efficientnet_b1-c27df63c.pth",
        "swav_800ep_pretrain.pth.tar",
        "vit_h_14_swag-80465313.pth",
        "weights-inception-2015-12-05-6726825d.pth",
        "openai/clip-vit-large-patch14",
        "ViT-L-14.pt",
    ]
    for expected in expected_names:
        assert expected in message
    assert message.startswith("7 weight file(s)")


def test_weights_are_found_in_weights_dir_and_loaded(offline):
    weights_dir = offline / "weights"
    weights_dir.mkdir()
    torch.manual_seed(0)
    from torchvision.models import alexnet

    reference = alexnet(weights=None)
    torch.save(reference.state_dict(), weights_dir / "alexnet-owt-7be5be79.pth")
    resolved = weights.resolve_weights(["alexnet", "lpips"], weights_dir, {}, allow_download=False)
    assert resolved["alexnet"].location == str(weights_dir / "alexnet-owt-7be5be79.pth")
    config = EvaluateConfig(ground_truth="x", weights_dir=str(weights_dir), download_weights=False)
    built = load_backbones(config, ["alexnet", "lpips"])
    assert built["alexnet"].info["sha256"] == sha256_file(weights_dir / "alexnet-owt-7be5be79.pth")
    lpips_trunk = built["lpips"].module.model.net.slice1[0].weight
    assert torch.equal(lpips_trunk, reference.features[0].weight)
    images = torch.rand(2, 3, 64, 64)
    features = built["alexnet"](images)
    assert features["alexnet2"].shape == (2, 192 * 31 * 31) and features["alexnet5"].shape == (2, 256 * 15 * 15)


def test_explicit_path_that_does_not_exist_is_reported(offline):
    with pytest.raises(weights.MissingWeightsError, match="--swav_weights /nowhere/swav.tar does not exist"):
        weights.resolve_weights(["swav"], None, {"swav": "/nowhere/swav.tar"}, allow_download=False)


def test_wrong_file_is_a_clear_error(offline):
    path = offline / "alexnet.pth"
    torch.save({"not": torch.zeros(1)}, path)
    resolved = weights.ResolvedWeights("alexnet", "file", str(path), "AlexNet_Weights.IMAGENET1K_V1")
    with pytest.raises(TtdnetError, match="does not hold torchvision AlexNet weights"):
        bb.build_alexnet(resolved)


@pytest.mark.slow
def test_full_size_random_backbones_have_the_specified_feature_sizes():
    images = torch.rand(1, 3, 500, 500)
    expected = {"inception": {"inception": 2048}, "effnet_b1": {"effnet_b": 1280}, "swav": {"swav": 2048}}
    for name, dims in expected.items():
        out = bb.BUILDERS[name](None, random_weights=True)(images)
        assert {key: value.shape[1] for key, value in out.items()} == dims
    assert bb.build_clip(None, random_weights=True)(images)["clip"].shape == (1, 768)
    assert bb.build_fid_inception(None, random_weights=True)((images * 255).to(torch.uint8))["fid"].shape == (1, 2048)
    classifier = bb.build_classifier(None, random_weights=True)
    assert classifier.resize.size == 518 and classifier.resize.interpolation == "bicubic" and classifier.crop == 518


def test_clip_from_a_local_hugging_face_folder(offline):
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(0)
    config = CLIPVisionConfig(
        hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2, image_size=224, patch_size=32
    )
    reference = CLIPVisionModelWithProjection(config).eval()
    folder = offline / "weights" / "clip-vit-large-patch14"
    reference.save_pretrained(folder)
    weights_dir = offline / "weights"
    resolved = weights.resolve_weights(["clip"], weights_dir, {}, allow_download=False, cache_dir=str(offline / "hf"))
    assert resolved["clip"].kind == "hf_dir" and resolved["clip"].location == str(folder)
    backbone = bb.build_clip(resolved["clip"])
    assert backbone.info["source"] == "hf_dir"
    backbone.expected_dims = None  # the real ViT-L/14 gives 768; this tiny one 512
    images = torch.rand(2, 3, 50, 50)
    ours = backbone(images)["clip"]
    x = torch.nn.functional.interpolate(images, size=(224, 224), mode="bilinear", align_corners=False, antialias=False)
    x = (x - torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)) / torch.tensor(CLIP_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        expected = reference(pixel_values=x).image_embeds.numpy()
    np.testing.assert_allclose(ours, expected, rtol=1e-4, atol=1e-5)


def test_fid_inception_weights_are_read_without_unpickling_objects(offline):
    torch.manual_seed(0)
    reference = bb.fidelity_inception(None).state_dict()
    path = offline / "weights-inception-2015-12-05-6726825d.pth"
    torch.save(reference, path)
    resolved = weights.ResolvedWeights("fid_inception", "file", str(path), "TF Inception 2015-12-05")
    loaded = bb.build_fid_inception(resolved).module.net.state_dict()
    assert loaded.keys() == reference.keys()
    assert all(torch.equal(loaded[key], reference[key]) for key in reference)
    torch.save({"weights": reference, "extra": Path("not a tensor")}, path)
    with pytest.raises(TtdnetError, match="cannot read the FID Inception weights"):
        bb.build_fid_inception(resolved)
    torch.save({"not": torch.zeros(1)}, path)
    with pytest.raises(TtdnetError, match="does not hold the FID Inception weights"):
        bb.build_fid_inception(resolved)


def test_fid_inception_wraps_any_feature_network():
    class Pool(torch.nn.Module):
        def forward(self, x):
            return (x.float().mean(dim=(2, 3)).repeat(1, 683)[:, :2048],)

    backbone = Backbone("fid_inception", bb.FidInception(Pool()), None, input_kind="uint8")
    features = backbone(torch.full((2, 3, 8, 8), 51, dtype=torch.uint8))
    assert features["fid"].shape == (2, 2048) and np.allclose(features["fid"], 51.0)
