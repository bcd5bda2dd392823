"""A correlation with a constant image is undefined: null with its count and reason, never NaN, in every output."""

import json
import re

import numpy as np
import pytest
from eval_fixtures import noisy, smooth_image, write_image

from ttdnet.cli import main
from ttdnet.eval import api


SIZE = 425  # MindEye's PixCorr size; used as eval_size too, so no metric resizes and numpy can check the values


def strict_json(text: str):
    """``json.loads`` that rejects NaN and Infinity (which Python's parser accepts by default)."""

    def refuse(constant):
        raise AssertionError(f"{constant} in metrics.json")

    return json.loads(text, parse_constant=refuse)


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.astype(np.float64).ravel() / 255, b.astype(np.float64).ravel() / 255)[0, 1])


@pytest.fixture(scope="module")
def constant_run(tmp_path_factory):
    """5 trials x 2 samples; sample 0 of trials 0 and 1 and sample 1 of trial 0 are constant images."""
    root = tmp_path_factory.mktemp("constant")
    rng = np.random.default_rng(0)
    truths, recs = [], [[], []]
    constant = {(0, 0), (0, 1), (1, 0)}  # (sample, trial)
    for i in range(5):
        truths.append(smooth_image(rng, SIZE))
        write_image(root / "gt" / f"{i}.png", truths[i])
        for s in range(2):
            rec = (
                np.full((SIZE, SIZE, 3), 60 * (i + 1), np.uint8) if (s, i) in constant else noisy(rng, truths[i], 0.2)
            )
            recs[s].append(rec)
            write_image(root / "rec" / f"{i}_s{s}.png", rec)
    argv = ["evaluate", "--ground_truth", str(root / "gt"), "--reconstructions", str(root / "rec"),
            "--output_dir", str(root / "out"), "--metrics", "pixcorr", "pcc", "--eval_size", str(SIZE),
            "--device", "cpu", "--no_progress"]  # fmt: skip
    return root, argv, truths, recs, constant


def test_undefined_pairs_are_null_counted_and_left_out_of_the_mean(constant_run, capsys):
    root, argv, truths, recs, constant = constant_run
    assert main(argv) == 0
    printed = capsys.readouterr().out
    text = (root / "out" / "metrics.json").read_text()
    assert "NaN" not in text
    document = strict_json(text)
    r = np.array(
        [[np.nan if (s, i) in constant else pearson(recs[s][i], truths[i]) for i in range(5)] for s in (0, 1)]
    )
    per_set = [np.nanmean(row) for row in r]
    for key in ("pixcorr", "pcc"):
        entry = document["metrics"][key]
        assert entry["undefined"] == 3
        assert entry["undefined_reason"] == (
            "3 of 10 pairs have a constant image (zero variance), so their Pearson r is undefined; the value is "
            "the mean over the 7 defined pairs (per sample set, then over sample sets)."
        )
        assert entry["per_sample"] == pytest.approx(per_set, abs=1e-6)
        assert entry["value"] == pytest.approx(np.mean(per_set), abs=1e-6)
        assert entry["value_sample0"] == pytest.approx(per_set[0], abs=1e-6)
        scores = document["per_trial"]["scores"][key]
        assert scores[0] is None and scores[1] == pytest.approx(r[1, 1], abs=1e-6)
        assert scores[2:] == pytest.approx(r[:, 2:].mean(axis=0), abs=1e-6)
        assert document["per_trial"]["scores_sample0"][key][:2] == [None, None]
        assert entry["std"] == pytest.approx(np.std(np.nanmean(r[:, 1:], axis=0), ddof=1), abs=1e-6)
    assert document["metrics"]["pixcorr_shuffled"]["undefined"] == 3
    # Pairwise identification stays defined: a comparison through an undefined correlation fails.
    pairid = document["metrics"]["pairid_pcc"]
    assert pairid["undefined"] == 0 and pairid["undefined_comparisons"] == 3
    assert pairid["caveat"].startswith("3 of 10 reconstructions were compared through an undefined similarity")
    assert document["per_trial"]["scores_sample0"]["pairid_pcc"][:2] == [0.0, 0.0]
    # The reports and the command line say it.
    value = document["metrics"]["pixcorr"]["value"]
    markdown = (root / "out" / "report.md").read_text()
    assert f"| PixCorr | `pixcorr` | {value:.4f} (7 of 10 pairs defined) |" in markdown
    assert f"- `pixcorr`: {document['metrics']['pixcorr']['undefined_reason']}" in markdown
    assert "nan" not in markdown.lower()
    html = (root / "out" / "report.html").read_text()
    assert "(7 of 10 pairs defined)" in html and "so their Pearson r is undefined" in html
    assert re.search(rf"^PixCorr +{value:.4f} \(7 of 10 pairs defined\)$", printed, re.MULTILINE), printed


def test_no_defined_pair_gives_no_value(tmp_path, capsys):
    rng = np.random.default_rng(1)
    for i in range(3):
        write_image(tmp_path / "gt" / f"{i}.png", smooth_image(rng, 32))
        write_image(tmp_path / "rec" / f"{i}.png", np.full((32, 32, 3), 128, np.uint8))
    argv = ["evaluate", "--ground_truth", str(tmp_path / "gt"), "--reconstructions", str(tmp_path / "rec"),
            "--output_dir", str(tmp_path / "out"), "--metrics", "pixcorr", "--device", "cpu",
            "--no_progress"]  # fmt: skip
    assert main(argv) == 0
    assert re.search(r"^PixCorr +undefined$", capsys.readouterr().out, re.MULTILINE)
    entry = strict_json((tmp_path / "out" / "metrics.json").read_text())["metrics"]["pixcorr"]
    assert entry["value"] is None and entry["value_sample0"] is None and entry["std"] is None
    assert entry["undefined"] == 3
    assert entry["undefined_reason"].endswith("no pair is defined, so there is no value.")
    assert "| PixCorr | `pixcorr` | undefined | undefined |" in (tmp_path / "out" / "report.md").read_text()


def test_a_nan_that_reaches_the_document_fails_before_anything_is_written(constant_run, tmp_path, monkeypatch):
    _, argv, *_ = constant_run
    argv = [*argv[: argv.index("--output_dir") + 1], str(tmp_path / "out"), *argv[argv.index("--output_dir") + 2 :]]
    build = api.build_metrics_document

    def with_nan(*args, **kwargs):
        document = build(*args, **kwargs)
        document["metrics"]["pcc"]["value"] = float("nan")
        return document

    monkeypatch.setattr(api, "build_metrics_document", with_nan)
    with pytest.raises(ValueError, match="not JSON compliant"):
        main(argv)
    assert not (tmp_path / "out").exists()
