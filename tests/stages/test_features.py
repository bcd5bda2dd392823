"""``ttdnet features``: the file format, cache reuse and invalidation, resume, backbones with their own
preprocessing (checked against each library's transform) and hooks."""

import json

import numpy as np
import pytest
import torch
from PIL import Image
from things_files import write_image_set

from ttdnet.cli import available_commands, build_parser, main
from ttdnet.errors import TtdnetError
from ttdnet.stages import retrieval_features
from ttdnet.stages.feature_file import FeatureFileError, read_feature_file, write_feature_file
from ttdnet.stages.retrieval_features import run_features


@pytest.fixture(scope="module")
def image_set(tmp_path_factory):
    root = tmp_path_factory.mktemp("images")
    write_image_set(root / "image_set")  # 15 training images, 4 test images, 16 x 16 random pixels
    return root


def config(image_set, tmp_path, *args):
    command = available_commands()["features"]
    parsed, _ = build_parser(command).parse_config(
        ["--image_dir", str(image_set), "--output_dir", str(tmp_path / "features"), *args]
    )
    return parsed


def expected_thumbnail(path, n):
    """Independent reference: the 16 x 16 RGB image in [0, 1], averaged over (16/n) x (16/n) blocks."""
    pixels = np.asarray(Image.open(path).convert("RGB"), dtype=np.float64) / 255.0
    block = 16 // n
    return pixels.reshape(n, block, n, block, 3).mean(axis=(1, 3)).transpose(2, 0, 1).reshape(-1)


def test_pixels_round_trip_matches_an_independent_computation(image_set, tmp_path):
    summary = run_features(config(image_set, tmp_path, "--layers", "rgb4", "rgb8"))
    loaded = read_feature_file(summary["output"])
    assert loaded.layer_names == ["rgb4", "rgb8"] and loaded.layer_dims == [48, 192]
    assert loaded.features["training"].shape == (15, 2, 192) and loaded.features["training"].dtype == torch.float16
    assert not loaded.normalized
    for split in ("training", "test"):
        for row, relative in enumerate(loaded.paths[split]):
            path = image_set / "image_set" / relative
            got = loaded.features[split][row].float().numpy()
            np.testing.assert_allclose(got[0, :48], expected_thumbnail(path, 4), atol=2e-3)
            np.testing.assert_allclose(got[1], expected_thumbnail(path, 8), atol=2e-3)
            assert np.all(got[0, 48:] == 0)  # narrower layers are zero-padded
    assert loaded.paths["test"][0].startswith("test_images/00001_antelope/")


def test_cache_is_reused_when_settings_match_and_rebuilt_otherwise(image_set, tmp_path):
    first = run_features(config(image_set, tmp_path))
    path = tmp_path / "features" / "pixels.safetensors"
    stamp = path.stat().st_mtime_ns
    again = run_features(config(image_set, tmp_path))
    assert again["reused"] and path.stat().st_mtime_ns == stamp and not first["reused"]
    changed = run_features(config(image_set, tmp_path, "--layers", "rgb2"))
    assert not changed["reused"] and read_feature_file(path).layer_names == ["rgb2"]
    assert not run_features(config(image_set, tmp_path, "--layers", "rgb2", "--overwrite"))["reused"]
    assert not (tmp_path / "features" / ".pixels.safetensors.partial").exists()


def test_the_resolved_options_are_saved_beside_the_file_and_rerun_it(image_set, tmp_path, capsys):
    out = tmp_path / "features"
    assert main(["features", "--image_dir", str(image_set), "--output_dir", str(out), "--layers", "rgb2",
                 "--batch_size", "3"]) == 0  # fmt: skip
    saved = out / "pixels.config.yaml"
    assert sorted(p.name for p in out.iterdir()) == ["pixels.config.yaml", "pixels.safetensors"]
    text = saved.read_text()
    assert text.startswith("# Resolved configuration of `ttdnet features`")
    assert "batch_size: 3\n" in text and "- rgb2\n" in text
    stamp = (out / "pixels.safetensors").stat().st_mtime_ns
    capsys.readouterr()
    assert main(["features", "--config", str(saved)]) == 0  # the saved options describe this very file
    assert json.loads(capsys.readouterr().out)["reused"] and (out / "pixels.safetensors").stat().st_mtime_ns == stamp
    assert main(["features", "--image_dir", str(tmp_path / "nowhere"), "--output_dir", str(tmp_path / "x")]) == 1
    assert not (tmp_path / "x").exists()  # bad input writes nothing, not even the config


def test_a_cached_file_with_bad_rows_is_rebuilt_not_reused(image_set, tmp_path):
    from safetensors import safe_open
    from safetensors.torch import save_file

    path = tmp_path / "features" / "pixels.safetensors"
    run_features(config(image_set, tmp_path, "--layers", "rgb2"))
    with safe_open(str(path), framework="pt") as handle:
        metadata, tensors = handle.metadata(), {key: handle.get_tensor(key) for key in handle.keys()}
    good = tensors["training"].clone()
    tensors["training"][2, 0, 5] = float("nan")
    save_file(tensors, str(path), metadata=metadata)  # same settings, one corrupted value
    assert not run_features(config(image_set, tmp_path, "--layers", "rgb2"))["reused"]
    assert torch.equal(read_feature_file(path).features["training"], good)


def test_interrupted_extraction_resumes_from_saved_chunks(image_set, tmp_path, monkeypatch):
    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(retrieval_features, "write_feature_file", crash)
    with pytest.raises(KeyboardInterrupt):
        run_features(config(image_set, tmp_path, "--chunk_size", "4", "--layers", "rgb2"))
    partial = tmp_path / "features" / ".pixels.safetensors.partial"
    chunks = sorted(p.name for p in partial.glob("*.safetensors"))
    assert chunks == ["test-0000000.safetensors"] + [f"training-{i:07d}.safetensors" for i in (0, 4, 8, 12)]
    assert not (tmp_path / "features" / "pixels.config.yaml").exists()  # written with the file, not before
    # Mark one saved chunk: the resumed run must take it as is instead of recomputing it.
    from safetensors.torch import load_file, save_file

    marked = load_file(str(partial / "training-0000004.safetensors"))
    marker = torch.linspace(0.125, 0.875, marked["layer0"].shape[1]).expand_as(marked["layer0"]).contiguous()
    save_file({"layer0": marker}, str(partial / "training-0000004.safetensors"))
    monkeypatch.undo()
    run_features(config(image_set, tmp_path, "--chunk_size", "4", "--layers", "rgb2"))
    features = read_feature_file(tmp_path / "features" / "pixels.safetensors").features["training"].float()
    assert torch.equal(features[4:8, 0], marker.half().float()) and not torch.equal(features[:4, 0], marker)
    assert not partial.exists() and (tmp_path / "features" / "pixels.config.yaml").is_file()


def test_file_checks(image_set, tmp_path):
    run_features(config(image_set, tmp_path, "--layers", "rgb2"))
    loaded = read_feature_file(tmp_path / "features" / "pixels.safetensors")
    with pytest.raises(FeatureFileError, match="row 1 is"):
        loaded.check_paths("test", [loaded.paths["test"][0], *reversed(loaded.paths["test"][1:])])
    with pytest.raises(FeatureFileError, match="not normalised"):
        read_feature_file(tmp_path / "features" / "pixels.safetensors", expect_normalized=True)
    with pytest.raises(FeatureFileError, match="overflow float16"):
        write_feature_file(
            tmp_path / "bad.safetensors",
            {"training": torch.full((1, 1, 2), 1e6), "test": torch.zeros(1, 1, 2)},
            {"training": ["a"], "test": ["b"]},
            ["x"],
            [2],
            False,
            {},
        )
    training = torch.randn(3, 2, 4)
    training[1], training[1, 0, 2:] = 0.5, 0.0  # 0.5 over both layers' true widths, zero padding after layer x
    with pytest.raises(FeatureFileError, match=r"training row 1 \(b\) is constant \(every value is 0.5\)"):
        write_feature_file(tmp_path / "bad.safetensors", {"training": training, "test": torch.randn(1, 2, 4)},
                           {"training": ["a", "b", "c"], "test": ["d"]}, ["x", "y"], [2, 4], False, {})  # fmt: skip
    assert not (tmp_path / "bad.safetensors").exists()
    other = tmp_path / "other.safetensors"
    from safetensors.torch import save_file

    save_file({"training": torch.zeros(1, 1, 1)}, str(other), metadata={"format": "something-else"})
    with pytest.raises(FeatureFileError, match="expected 'ttdnet-image-features'"):
        read_feature_file(other)


def test_user_supplied_file_in_the_documented_format_is_accepted(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "mine.safetensors"
    metadata = {"format": "ttdnet-image-features", "version": "1", "training_paths": json.dumps(["a.jpg", "b.jpg"]),
                "test_paths": json.dumps(["c.jpg"]), "layer_names": json.dumps(["l1", "l2"]),
                "layer_dims": json.dumps([3, 3]), "normalized": "true"}  # fmt: skip
    tensors = {"training": torch.randn(2, 2, 3).half(), "test": torch.randn(1, 2, 3).half()}
    save_file(tensors, str(path), metadata=metadata)
    loaded = read_feature_file(path, expect_normalized=True)
    assert loaded.n_layers == 2 and loaded.dim == 3 and loaded.paths["test"] == ["c.jpg"]
    assert torch.equal(loaded.features["training"], tensors["training"])


def rgb_images(image_set, relative_paths):
    return [Image.open(image_set / "image_set" / path).convert("RGB") for path in relative_paths]


def test_torchvision_weights_use_their_own_transform_with_hooks_and_grid_pooling(image_set, tmp_path, monkeypatch):
    import torchvision
    from torchvision.models import ResNet18_Weights

    command = ["features", "--image_dir", str(image_set), "--backbone", "torchvision:resnet18"]
    assert main([*command, "--output_dir", str(tmp_path)]) == 1  # no weights and no --random_init
    # A weights name is loaded from torchvision's cache (filled here with seeded weights: nothing is downloaded).
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    weights = ResNet18_Weights.IMAGENET1K_V1
    cached = tmp_path / "torch" / "hub" / "checkpoints" / weights.url.rsplit("/", 1)[-1]
    cached.parent.mkdir(parents=True)
    torch.manual_seed(5)
    network = torchvision.models.resnet18(weights=None).eval()
    torch.save(network.state_dict(), cached)
    args = ["--backbone", "torchvision:resnet18", "--checkpoint", "IMAGENET1K_V1", "--layers", "layer1", "layer4",
            "final", "--pooling", "grid"]  # fmt: skip
    loaded = read_feature_file(run_features(config(image_set, tmp_path, *args))["output"])
    assert loaded.layer_dims == [64 * 4, 512 * 4, 1000]  # channels x 2 x 2 cells (adaptive pooling)
    assert loaded.settings["weights"]["weights"] == {"torchvision_weights": "ResNet18_Weights.IMAGENET1K_V1"}
    transform = weights.transforms()  # the library's own preprocessing (resize 256, crop 224, ImageNet statistics)
    with torch.no_grad():
        logits = network(torch.stack([transform(image) for image in rgb_images(image_set, loaded.paths["test"])]))
    torch.testing.assert_close(loaded.features["test"][:, 2, :1000].float(), logits.half().float(), rtol=2e-3,
                               atol=2e-3)  # fmt: skip
    with pytest.raises(TtdnetError, match=r"neither a file nor a weights name.*IMAGENET1K_V1"):
        run_features(config(image_set, tmp_path, "--backbone", "torchvision:resnet18", "--checkpoint", "NOPE"))


def test_torchvision_random_weights_use_the_architecture_default_transform(image_set, tmp_path):
    import torchvision
    from torchvision.models import ResNet18_Weights

    args = ["--backbone", "torchvision:resnet18", "--random_init", "--layers", "final"]
    loaded = read_feature_file(run_features(config(image_set, tmp_path, *args))["output"])
    assert "ResNet18_Weights.IMAGENET1K_V1" in loaded.settings["preprocessing"]["from"]
    torch.manual_seed(0)
    network = torchvision.models.resnet18(weights=None).eval()
    transform = ResNet18_Weights.DEFAULT.transforms()
    with torch.no_grad():
        logits = network(torch.stack([transform(image) for image in rgb_images(image_set, loaded.paths["test"])]))
    torch.testing.assert_close(loaded.features["test"][:, 0].float(), logits.half().float(), rtol=2e-3, atol=2e-3)
    with pytest.raises(TtdnetError, match="pixels backbone only"):
        run_features(config(image_set, tmp_path, *args, "--image_size", "32"))


def test_transformers_backbone_uses_the_model_image_processor(image_set, tmp_path):
    from transformers import AutoImageProcessor, CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(0)
    tiny = CLIPVisionConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2,
                            image_size=32, patch_size=8, projection_dim=8)  # fmt: skip
    model = CLIPVisionModelWithProjection(tiny).eval()
    folder = tmp_path / "tiny-clip"
    model.save_pretrained(folder)
    backbone = ["--backbone", f"transformers:{folder}", "--layers", "vision_model.encoder.layers.0", "final"]
    with pytest.raises(TtdnetError, match=rf"no image processor \(preprocessor_config.json\) for '{folder}'"):
        run_features(config(image_set, tmp_path, *backbone))  # never a silent fallback to other statistics
    CLIPImageProcessor(size={"shortest_edge": 40}, crop_size={"height": 32, "width": 32}, image_mean=[0.3, 0.4, 0.5],
                       image_std=[0.2, 0.25, 0.3]).save_pretrained(folder)  # fmt: skip
    loaded = read_feature_file(run_features(config(image_set, tmp_path, *backbone))["output"])
    assert run_features(config(image_set, tmp_path, *backbone))["reused"]
    assert loaded.layer_dims == [16, 8]
    assert loaded.settings["preprocessing"]["transformers_image_processor"]["image_mean"] == [0.3, 0.4, 0.5]
    processor = AutoImageProcessor.from_pretrained(folder)
    pixels = processor(images=rgb_images(image_set, loaded.paths["test"]), return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        output = model(pixel_values=pixels, output_hidden_states=True)
    torch.testing.assert_close(loaded.features["test"][:, 1, :8].float(), output.image_embeds.half().float(),
                               rtol=2e-3, atol=2e-3)  # fmt: skip
    torch.testing.assert_close(loaded.features["test"][:, 0, :16].float(),
                               output.hidden_states[1].mean(dim=1).half().float(), rtol=2e-3, atol=2e-3)  # fmt: skip


def test_open_clip_backbone_uses_its_preprocess_transform(image_set, tmp_path):
    import open_clip
    from safetensors.torch import save_file

    folder = tmp_path / "tiny-open-clip"
    folder.mkdir()
    vision_cfg = {"image_size": 32, "layers": 2, "width": 32, "head_width": 16, "patch_size": 8}
    text_cfg = {"context_length": 8, "vocab_size": 64, "width": 16, "heads": 2, "layers": 1}
    model_cfg = {"embed_dim": 8, "vision_cfg": vision_cfg, "text_cfg": text_cfg}
    preprocess_cfg = {"mean": [0.3, 0.4, 0.5], "std": [0.2, 0.25, 0.3], "interpolation": "bilinear",
                      "resize_mode": "squash"}  # fmt: skip
    (folder / "open_clip_config.json").write_text(
        json.dumps({"model_cfg": model_cfg, "preprocess_cfg": preprocess_cfg})
    )
    backbone = ["--backbone", f"open_clip:local-dir:{folder}", "--layers", "transformer.resblocks.0", "final"]
    with pytest.raises(TtdnetError, match="no weight file"):
        run_features(config(image_set, tmp_path, *backbone))
    torch.manual_seed(3)
    random_model = open_clip.create_model(f"local-dir:{folder}")
    save_file(
        {k: v.contiguous() for k, v in random_model.state_dict().items()}, folder / "open_clip_model.safetensors"
    )
    loaded = read_feature_file(run_features(config(image_set, tmp_path, *backbone))["output"])
    assert run_features(config(image_set, tmp_path, *backbone))["reused"]  # the settings are stable across runs
    assert loaded.settings["preprocessing"]["open_clip_preprocess_cfg"]["resize_mode"] == "squash"
    model, _, preprocess = open_clip.create_model_and_transforms(f"local-dir:{folder}")
    block = {}
    model.visual.transformer.resblocks[0].register_forward_hook(lambda _m, _i, out: block.update(out=out))
    with torch.no_grad():
        final = model.eval().encode_image(
            torch.stack([preprocess(im) for im in rgb_images(image_set, loaded.paths["test"])])
        )
    torch.testing.assert_close(loaded.features["test"][:, 1, :8].float(), final.half().float(), rtol=2e-3, atol=2e-3)
    torch.testing.assert_close(loaded.features["test"][:, 0].float(), block["out"].mean(dim=1).half().float(),
                               rtol=2e-3, atol=2e-3)  # fmt: skip
