"""End to end: the suite with small random backbones, the outputs, the command line and the YAML preset."""

import base64
import dataclasses
import io
import json
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from bad_input import assert_one_line_error
from eval_fixtures import noisy, smooth_image, tiny_backbones, write_image
from PIL import Image

from ttdnet.cli import main
from ttdnet.config import ConfigParser, load_yaml_overrides
from ttdnet.eval.api import evaluate
from ttdnet.eval.command import COMMAND, EvaluateConfig


REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def backbones():
    """Every backbone the suite can use, small and random (see ``eval_fixtures.tiny_backbones``)."""
    return tiny_backbones()


def config_for(gt_dir, rec_dir, out_dir, **overrides):
    values = {
        "ground_truth": str(gt_dir),
        "reconstructions": str(rec_dir),
        "output_dir": str(out_dir),
        "eval_size": 48,
        "nway_n": 5,
        "nway_clip_ns": [2, 4],
        "kid_subsets": 20,
        "kid_subset_size": 6,
        "device": "cpu",
        "progress": False,
        "download_weights": False,
    }
    values.update(overrides)
    return EvaluateConfig(**values)


@pytest.fixture(scope="module")
def perfect(tmp_path_factory, backbones):
    """Reconstructions identical to the ground truth (2 samples)."""
    tmp = tmp_path_factory.mktemp("perfect")
    rng = np.random.default_rng(0)
    for i in range(8):
        image = smooth_image(rng, 40)
        write_image(tmp / "gt" / f"img{i}.png", image)
        for s in range(2):
            write_image(tmp / "rec" / f"img{i}_s{s}.png", image)
    _, document = evaluate(
        config_for(tmp / "gt", tmp / "rec", tmp / "out"), backbones=dict(backbones), log=lambda _: None
    )
    return tmp, document


def test_identical_images_score_perfectly(perfect):
    _, document = perfect
    metrics = document["metrics"]
    perfect_keys = ["alexnet2", "alexnet5", "inception", "clip", "pairid_mse", "pairid_pcc", "pairid_ssim_rgb"]
    perfect_keys += ["pairid_lpips_alex", "nway_cls_top1", "nway_cls_top1_mc"]
    perfect_keys += ["nway_clip_top1_2way", "nway_clip_top1_4way", "nway_clip_top1_8way"]
    for key in perfect_keys:
        assert metrics[key]["value"] == 1.0, key
    for key in ("pixcorr", "ssim", "pcc", "ssim_rgb"):
        assert metrics[key]["value"] == pytest.approx(1.0, abs=1e-5), key
    for key in ("mse", "lpips_alex", "effnet_b", "swav"):
        assert metrics[key]["value"] == pytest.approx(0.0, abs=1e-5), key
    assert abs(metrics["fid"]["value"]) < 1e-6
    assert metrics["alexnet2"]["chance"] == 0.5 and metrics["pixcorr"]["chance_key"] == "pixcorr_shuffled"
    assert metrics["nway_cls_top1"]["chance"] == pytest.approx(1 / 5)
    assert metrics["nway_clip_top1_8way"]["chance"] == pytest.approx(1 / 8)
    assert metrics["kid_mean"]["settings"]["kid_subset_size"] == 6 and "caveat" in metrics["kid_mean"]


def test_metrics_json_records_definitions_settings_versions_and_seeds(perfect):
    tmp, document = perfect
    on_disk = json.loads((tmp / "out" / "metrics.json").read_text())
    assert on_disk["metrics"].keys() == document["metrics"].keys()
    entry = on_disk["metrics"]["ssim"]
    assert entry["settings"]["resize"] == {
        "size": [425, 425], "interpolation": "bilinear", "antialias": False,
        "implementation": "torch.nn.functional.interpolate(align_corners=False) on float32 [0, 1]",
    }  # fmt: skip
    assert entry["settings"]["ssim"]["use_sample_covariance"] is False
    assert on_disk["metrics"]["ssim_rgb"]["settings"]["resize"]["size"] == [48, 48]
    for field in (
        "name",
        "key",
        "value",
        "std",
        "n",
        "ci95",
        "direction",
        "definition",
        "settings",
        "seed",
        "value_sample0",
        "undefined",
        "undefined_reason",
    ):
        assert field in entry
    assert entry["undefined"] == 0 and entry["undefined_reason"] is None
    assert on_disk["per_trial"]["trial_ids"] == [f"img{i}" for i in range(8)]
    assert len(on_disk["per_trial"]["scores"]["clip"]) == 8 and "clip" in on_disk["per_trial"]["scores_sample0"]
    assert on_disk["versions"]["torch"] and on_disk["versions"]["scikit-image"]
    assert on_disk["seed"] == 0 and sorted(on_disk["settings"]["shuffled_pair_derangement"]) == list(range(8))
    assert (tmp / "out" / "config.yaml").is_file()
    assert "| CLIP | `clip` | 1.0000 |" in (tmp / "out" / "report.md").read_text()


class _Images(HTMLParser):
    def __init__(self):
        super().__init__()
        self.sources, self.tags = [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if tag == "img":
            self.sources.append(dict(attrs)["src"])


def test_html_report_parses_and_embeds_its_images(perfect):
    tmp, _ = perfect
    parser = _Images()
    parser.feed((tmp / "out" / "report.html").read_text())
    assert "table" in parser.tags
    # 8 trials x (GT + 2 samples) in the grid, plus best and worst (4 trials each).
    assert len(parser.sources) == 8 * 3 + 2 * 4 * 3
    for source in parser.sources:
        assert source.startswith("data:image/jpeg;base64,")
        image = Image.open(io.BytesIO(base64.b64decode(source.split(",", 1)[1])))
        assert image.size == (40, 40)


def test_shuffled_pairs_score_near_chance(tmp_path, backbones):
    rng = np.random.default_rng(1)
    images = [smooth_image(rng, 32) for _ in range(40)]
    order = rng.permutation(40)
    for i in range(40):
        write_image(tmp_path / "gt" / f"{i:02d}.png", images[i])
        write_image(tmp_path / "rec" / f"{i:02d}.png", noisy(rng, images[(i + 1 + order[i] % 38) % 40], 0.02))
    config = config_for(
        tmp_path / "gt",
        tmp_path / "rec",
        tmp_path / "out",
        metrics=["alexnet5", "clip", "pcc", "nway_clip"],
        nway_clip_ns=[2, 10],
    )
    _, document = evaluate(config, backbones=dict(backbones), log=lambda _: None)
    metrics = document["metrics"]
    for key in ("alexnet5", "clip", "pairid_pcc", "nway_clip_top1_2way"):
        assert abs(metrics[key]["value"] - 0.5) < 0.15, key
    assert abs(metrics["nway_clip_top1_10way"]["value"] - 0.1) < 0.1
    assert abs(metrics["pcc"]["value"] - metrics["pcc_shuffled"]["value"]) < 0.15


def test_sample_aggregation_is_mean_and_sample0_never_max(tmp_path, backbones):
    rng = np.random.default_rng(2)
    for i in range(6):
        image = smooth_image(rng, 32)
        write_image(tmp_path / "gt" / f"{i}.png", image)
        write_image(tmp_path / "rec" / f"{i}_s0.png", noisy(rng, image, 0.3))
        write_image(tmp_path / "rec" / f"{i}_s1.png", image)
    _, document = evaluate(
        config_for(tmp_path / "gt", tmp_path / "rec", tmp_path / "out", metrics=["pcc"]), log=lambda _: None
    )
    entry = document["metrics"]["pcc"]
    assert entry["per_sample"][1] == pytest.approx(1.0)
    assert entry["value_sample0"] == entry["per_sample"][0] < 0.99
    assert entry["value"] == pytest.approx(np.mean(entry["per_sample"]))
    per_trial = np.array(document["per_trial"]["scores"]["pcc"])
    assert entry["value"] == pytest.approx(per_trial.mean())


def test_cli_end_to_end_without_networks(tmp_path, capsys):
    gt_dir, rec_dir = tmp_path / "gt", tmp_path / "rec"
    rng = np.random.default_rng(3)
    for i in range(5):
        image = smooth_image(rng, 32)
        write_image(gt_dir / f"{i}.jpg", image)
        write_image(rec_dir / f"{i}.png", noisy(rng, image, 0.1))
    argv = ["evaluate", "--ground_truth", str(gt_dir), "--reconstructions", str(rec_dir)]
    argv += ["--output_dir", str(tmp_path / "out"), "--metrics", "pixcorr", "ssim", "mse"]
    argv += ["--eval_size", "32", "--device", "cpu", "--no_progress"]
    assert main(argv) == 0
    assert "PixCorr" in capsys.readouterr().out
    document = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert set(document["metrics"]) == {
        "pixcorr",
        "pixcorr_shuffled",
        "ssim",
        "ssim_shuffled",
        "mse",
        "mse_shuffled",
        "pairid_mse",
    }


@pytest.mark.bad_input
def test_cli_offline_missing_weights_is_a_clear_error(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    rng = np.random.default_rng(4)
    for i in range(3):
        write_image(tmp_path / "gt" / f"{i}.png", smooth_image(rng, 16))
        write_image(tmp_path / "rec" / f"{i}.png", smooth_image(rng, 16))
    argv = ["evaluate", "--ground_truth", str(tmp_path / "gt"), "--reconstructions", str(tmp_path / "rec")]
    argv += [
        "--output_dir",
        str(tmp_path / "out"),
        "--metrics",
        "alexnet2",
        "swav",
        "--weights_dir",
        str(tmp_path / "w"),
    ]
    assert main(argv) == 1
    error = assert_one_line_error(capsys, "evaluate", "2 weight file(s) needed by the selected metrics are missing")
    assert "(1) alexnet (" in error and "alexnet-owt-7be5be79.pth" in error
    assert "(2) swav (" in error and "swav_800ep_pretrain.pth.tar" in error
    assert not (tmp_path / "out" / "metrics.json").exists()


def test_cli_reports_matching_errors(tmp_path, capsys):
    rng = np.random.default_rng(5)
    for i in range(3):
        write_image(tmp_path / "gt" / f"{i}.png", smooth_image(rng, 16))
    write_image(tmp_path / "rec" / "0.png", smooth_image(rng, 16))
    write_image(tmp_path / "rec" / "extra.png", smooth_image(rng, 16))
    argv = [
        "evaluate",
        "--ground_truth",
        str(tmp_path / "gt"),
        "--reconstructions",
        str(tmp_path / "rec"),
        "--metrics",
        "pixcorr",
    ]
    assert main(argv) == 1
    assert "extra" in capsys.readouterr().err


def test_unknown_metric_name_lists_valid_ones(tmp_path):
    with pytest.raises(Exception, match="unknown metric 'clipp'.*nway_clip"):
        evaluate(config_for(tmp_path, tmp_path, tmp_path / "out", metrics=["clipp"]))


def test_yaml_preset_parses_into_the_config():
    path = REPO / "configs" / "evaluate.yaml"
    overrides = load_yaml_overrides(EvaluateConfig, path)
    names = {field.name for field in dataclasses.fields(EvaluateConfig)}
    assert set(overrides) == names  # every option is in the preset
    config, _ = ConfigParser(EvaluateConfig).parse_config(["--config", str(path), "--ground_truth", "gt"])
    assert config.ground_truth == "gt" and config.metrics == overrides["metrics"]
    assert COMMAND.config_class is EvaluateConfig
