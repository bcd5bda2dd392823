"""``ttdnet evaluate-summary``: mean ± SD over subjects of real ``ttdnet evaluate`` runs, checks and errors.

The runs are real evaluations of small synthetic image sets (pixel metrics only, no weights); every expected
number is computed here with numpy from the runs' own ``metrics.json``.
"""

import json
import shutil
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from bad_input import assert_one_line_error
from eval_fixtures import noisy, smooth_image, write_image

from ttdnet.cli import main


METRICS = ["pixcorr", "mse", "pcc", "ssim_rgb"]  # no weights; MindEye's SSIM at 425x425 is slow
OUTPUTS = {"config.yaml", "summary.md", "summary.html", "summary.json"}
MISMATCH_FIX = (
    "evaluate every subject with the same settings and weights, or pass --allow_mismatch to summarise them "
    "anyway (the difference is then listed as a warning)."
)


def strict_json(path: Path):
    """``json.loads`` that rejects NaN and Infinity (which Python's parser accepts by default)."""

    def refuse(constant):
        raise AssertionError(f"{constant} in {path}")

    return json.loads(path.read_text(encoding="utf-8"), parse_constant=refuse)


def evaluate(root: Path, subject: str, out: str, *flags: str, metrics=METRICS) -> Path:
    argv = ["evaluate", "--ground_truth", str(root / subject / "gt"), "--reconstructions", str(root / subject / "rec"),
            "--output_dir", str(root / out), "--metrics", *metrics, "--eval_size", "16", "--device", "cpu",
            "--no_progress", *flags]  # fmt: skip
    assert main(argv) == 0
    return root / out


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Real evaluations: sub-01..03 (noise 0.05, 0.15, 0.3), sub-04 (constant reconstructions: PixCorr
    undefined), and two that break the protocol: sub-02 at eval_size 24 and sub-03 with PixCorr only."""
    root = tmp_path_factory.mktemp("summary")
    rng = np.random.default_rng(3)
    for subject, scale in (("sub-01", 0.05), ("sub-02", 0.15), ("sub-03", 0.3), ("sub-04", None)):
        for i in range(6):
            image = smooth_image(rng, 32 if scale else 425)  # 425: PixCorr's size, so a constant image stays one
            write_image(root / subject / "gt" / f"img{i}.png", image)
            for s in range(2):
                rec = np.full_like(image, 40 * i + 10) if scale is None else noisy(rng, image, scale)
                write_image(root / subject / "rec" / f"img{i}_s{s}.png", rec)
    folders = {subject: evaluate(root, subject, f"eval/{subject}") for subject in ("sub-01", "sub-02", "sub-03")}
    folders["constant"] = evaluate(root, "sub-04", "eval/sub-04")
    folders["eval_size_24"] = evaluate(root, "sub-02", "other/sub-02", "--eval_size", "24")
    folders["pixcorr_only"] = evaluate(root, "sub-03", "other/sub-03", metrics=["pixcorr"])
    return root, folders


def values_of(folders: list[Path], key: str) -> list:
    return [strict_json(folder / "metrics.json")["metrics"][key]["value"] for folder in folders]


class TagChecker(HTMLParser):
    """Records every tag and the text of table cells; fails on a closing tag that does not match."""

    VOID = {"meta", "br", "img", "hr", "link"}

    def __init__(self):
        super().__init__()
        self.open, self.seen, self.cells, self.in_cell = [], [], [], False

    def handle_starttag(self, tag, attrs):
        self.seen.append(tag)
        if tag not in self.VOID:
            self.open.append(tag)
        self.in_cell = tag in ("td", "th") or self.in_cell

    def handle_endtag(self, tag):
        assert self.open and self.open[-1] == tag, f"</{tag}> closes {self.open[-1:]}"
        self.open.pop()
        if tag in ("td", "th"):
            self.in_cell = False

    def handle_data(self, data):
        if self.in_cell:
            self.cells.append(data.strip())


def test_mean_and_sd_over_subjects_are_those_of_the_runs_values(runs, tmp_path, capsys):
    root, folders = runs
    chosen = [folders["sub-01"], folders["sub-02"], folders["sub-03"]]
    out = tmp_path / "summary"
    assert main(["evaluate-summary", *map(str, chosen), "--output_dir", str(out)]) == 0
    assert {path.name for path in out.iterdir()} == OUTPUTS
    summary = strict_json(out / "summary.json")
    assert summary["subjects"] == ["sub-01", "sub-02", "sub-03"]
    assert [run["label_source"] for run in summary["runs"]] == ["pairing.reconstructions"] * 3
    keys = list(strict_json(chosen[0] / "metrics.json")["metrics"])
    assert list(summary["metrics"]) == keys and "pixcorr_shuffled" in keys
    for key in keys:
        values = np.array(values_of(chosen, key), dtype=np.float64)
        entry = summary["metrics"][key]
        assert entry["mean"] == pytest.approx(values.mean(), rel=1e-12, abs=1e-15), key
        assert entry["sd"] == pytest.approx(values.std(ddof=1), rel=1e-12, abs=1e-15), key
        assert (entry["min"], entry["max"], entry["n"], entry["n_runs"]) == (values.min(), values.max(), 3, 3)
        assert entry["per_subject"] == dict(zip(summary["subjects"], values.tolist()))
    pixcorr = np.array(values_of(chosen, "pixcorr"))
    assert pixcorr.std() > 0.01 and summary["metrics"]["pixcorr"]["sd"] != pytest.approx(pixcorr.std())  # not ddof 0
    assert summary["protocol"]["mismatches"] == [] and summary["warnings"] == []
    markdown = (out / "summary.md").read_text()
    mean, sd = summary["metrics"]["pixcorr"]["mean"], summary["metrics"]["pixcorr"]["sd"]
    assert f"| PixCorr | `pixcorr` | {mean:.4f} ± {sd:.4f} | 3 |" in markdown
    shuffled = summary["metrics"]["pixcorr_shuffled"]
    assert "(shuffled)" in markdown and "`pixcorr_shuffled`" not in markdown.split("## Per subject")[1]
    assert shuffled["mean"] == pytest.approx(np.mean(values_of(chosen, "pixcorr_shuffled")))
    assert "ddof = 1" in markdown and "All runs agree." in markdown
    checker = TagChecker()
    checker.feed((out / "summary.html").read_text())
    checker.close()
    assert checker.open == [] and checker.seen.count("table") == 3
    assert {"sub-01", "sub-02", "sub-03", f"{mean:.4f} ± {sd:.4f}"} <= set(checker.cells)
    assert "src=" not in (out / "summary.html").read_text()  # self-contained: nothing to fetch
    assert f"{mean:.4f} ± {sd:.4f}" in capsys.readouterr().out


def test_config_yaml_reruns_the_same_summary_into_its_folder(runs, tmp_path):
    root, folders = runs
    out = tmp_path / "summary"
    assert main(["evaluate-summary", str(folders["sub-01"]), str(folders["sub-02"]), "--output_dir", str(out)]) == 0
    first = strict_json(out / "summary.json")
    (out / "notes.txt").write_text("mine\n")
    assert main(["evaluate-summary", "--config", str(out / "config.yaml")]) == 0
    again = strict_json(out / "summary.json")
    assert again["metrics"] == first["metrics"] and again["config"]["runs"] == [
        str(folders["sub-01"]),
        str(folders["sub-02"]),
    ]
    assert (out / "notes.txt").read_text() == "mine\n"
    assert not [path for path in out.iterdir() if path.name.startswith(".")]  # no staging folder left


def test_one_subject_gives_a_mean_and_no_sd(runs, tmp_path):
    root, folders = runs
    out = tmp_path / "one"
    assert main(["evaluate-summary", str(folders["sub-02"] / "metrics.json"), "--output_dir", str(out)]) == 0
    entry = strict_json(out / "summary.json")["metrics"]["ssim_rgb"]
    assert entry["sd"] is None and entry["n"] == 1
    assert entry["mean"] == values_of([folders["sub-02"]], "ssim_rgb")[0]
    assert f"| SSIM (RGB) | `ssim_rgb` | {entry['mean']:.4f} | 1 |" in (out / "summary.md").read_text()


def test_an_undefined_subject_value_is_left_out_and_counted(runs, tmp_path):
    root, folders = runs
    chosen = [folders["sub-01"], folders["sub-02"], folders["constant"]]
    assert values_of([folders["constant"]], "pixcorr") == [None]  # constant images: Pearson r undefined
    out = tmp_path / "undefined"
    assert main(["evaluate-summary", *map(str, chosen), "--output_dir", str(out)]) == 0
    summary = strict_json(out / "summary.json")
    pixcorr = summary["metrics"]["pixcorr"]
    defined = values_of(chosen[:2], "pixcorr")
    assert (pixcorr["n"], pixcorr["n_runs"], pixcorr["undefined_in"]) == (2, 3, ["sub-04"])
    assert pixcorr["mean"] == pytest.approx(np.mean(defined), rel=1e-12)
    assert pixcorr["sd"] == pytest.approx(np.std(defined, ddof=1), rel=1e-12)
    assert pixcorr["per_subject"]["sub-04"] is None
    assert summary["metrics"]["mse"]["n"] == 3
    markdown = (out / "summary.md").read_text()
    assert "| PixCorr | `pixcorr` |" in markdown and "| 2 of 3 |" in markdown
    assert "`pixcorr`: undefined (no defined pair) for sub-04; left out of the mean and SD." in markdown


def test_labels_replace_the_subjects_read_from_the_paths(runs, tmp_path):
    root, folders = runs
    out = tmp_path / "labels"
    argv = ["evaluate-summary", str(folders["sub-01"]), str(folders["sub-02"]), "--labels", "S1", "S2",
            "--output_dir", str(out)]  # fmt: skip
    assert main(argv) == 0
    summary = strict_json(out / "summary.json")
    assert summary["subjects"] == ["S1", "S2"] and summary["runs"][0]["label_source"] == "--labels"


def test_a_run_without_a_subject_in_its_paths_is_named_by_its_folder(runs, tmp_path):
    root, folders = runs
    document = strict_json(folders["sub-01"] / "metrics.json")
    document["pairing"].update(ground_truth="/data/gt", reconstructions="/data/rec")
    (tmp_path / "night-run").mkdir()
    (tmp_path / "night-run" / "metrics.json").write_text(json.dumps(document))
    assert main(["evaluate-summary", str(tmp_path / "night-run"), "--output_dir", str(tmp_path / "out")]) == 0
    run = strict_json(tmp_path / "out" / "summary.json")["runs"][0]
    assert (run["label"], run["label_source"]) == ("night-run", "evaluation folder name")


def test_allow_mismatch_summarises_and_lists_every_difference(runs, tmp_path):
    root, folders = runs
    chosen = [folders["sub-01"], folders["eval_size_24"], folders["pixcorr_only"]]
    out = tmp_path / "mismatch"
    assert main(["evaluate-summary", *map(str, chosen), "--allow_mismatch", "--output_dir", str(out)]) == 0
    summary = strict_json(out / "summary.json")
    first, second, third = (
        f"{label} ({folder / 'metrics.json'})" for label, folder in zip(summary["subjects"], chosen)
    )
    assert summary["subjects"] == ["sub-01", "sub-02", "sub-03"]
    assert summary["warnings"] == [
        f"runs {first} and {second} differ in eval_size (settings of mse, mse_shuffled, pairid_mse, pcc and 5 "
        "more): 16 vs 24",
        f"runs {first} and {second} differ in resize.size (settings of mse, mse_shuffled, pairid_mse, pcc and 5 "
        "more): [16, 16] vs [24, 24]",
        f"runs {first} and {third} differ in the metrics computed: sub-01 alone has mse, mse_shuffled, "
        "pairid_mse, pcc and 5 more",
    ]
    assert [m["setting"] for m in summary["protocol"]["mismatches"]][2] == "the metrics computed"
    ssim = summary["metrics"]["ssim_rgb"]
    assert (ssim["n"], ssim["n_runs"], ssim["missing_in"]) == (2, 2, ["sub-03"])
    assert ssim["mean"] == pytest.approx(np.mean(values_of(chosen[:2], "ssim_rgb")), rel=1e-12)
    assert summary["metrics"]["pixcorr"]["n"] == 3
    markdown = (out / "summary.md").read_text()
    assert "## Warnings" in markdown and "| SSIM (RGB) | `ssim_rgb` |" in markdown and "| 2 of 3 |" in markdown
    assert "computed in 2 of 3 runs (not for sub-03)" in markdown


@pytest.mark.bad_input
def test_runs_with_different_settings_are_refused_naming_both_and_the_values(runs, tmp_path, capsys):
    root, folders = runs
    a, b = folders["sub-01"], folders["eval_size_24"]
    out = tmp_path / "refused"
    assert main(["evaluate-summary", str(a), str(b), "--output_dir", str(out)]) == 1
    assert_one_line_error(
        capsys,
        "evaluate-summary",
        f"runs sub-01 ({a / 'metrics.json'}) and sub-02 ({b / 'metrics.json'}) differ in eval_size (settings of "
        f"mse, mse_shuffled, pairid_mse, pcc and 5 more): 16 vs 24; {MISMATCH_FIX}",
    )
    assert not out.exists()


@pytest.mark.bad_input
def test_runs_with_different_metrics_are_refused(runs, tmp_path, capsys):
    root, folders = runs
    a, b = folders["sub-01"], folders["pixcorr_only"]
    assert main(["evaluate-summary", str(a), str(b), "--output_dir", str(tmp_path / "out")]) == 1
    assert_one_line_error(
        capsys,
        "evaluate-summary",
        f"runs sub-01 ({a / 'metrics.json'}) and sub-03 ({b / 'metrics.json'}) differ in the metrics computed: "
        f"sub-01 alone has mse, mse_shuffled, pairid_mse, pcc and 5 more; {MISMATCH_FIX}",
    )


@pytest.mark.bad_input
def test_a_folder_without_metrics_json_is_refused(runs, tmp_path, capsys):
    root, folders = runs
    empty = tmp_path / "sub-05"
    empty.mkdir()
    assert main(["evaluate-summary", str(folders["sub-01"]), str(empty), "--output_dir", str(tmp_path / "o")]) == 1
    assert_one_line_error(
        capsys,
        "evaluate-summary",
        f"{empty} holds no metrics.json; pass the --output_dir of a finished `ttdnet evaluate` run (an "
        "interrupted one leaves none: re-run it) or a metrics.json file.",
    )
    assert not (tmp_path / "o").exists()


@pytest.mark.bad_input
def test_a_path_that_does_not_exist_is_refused(tmp_path, capsys):
    missing = tmp_path / "sub-01" / "metrics.json"
    assert main(["evaluate-summary", str(missing), "--output_dir", str(tmp_path / "o")]) == 1
    assert_one_line_error(
        capsys,
        "evaluate-summary",
        f"{missing} does not exist; pass the --output_dir of a `ttdnet evaluate` run or its metrics.json.",
    )


@pytest.mark.bad_input
def test_a_truncated_metrics_json_is_refused(runs, tmp_path, capsys):
    root, folders = runs
    broken = tmp_path / "metrics.json"
    broken.write_text((folders["sub-02"] / "metrics.json").read_text()[:200])
    assert main(["evaluate-summary", str(folders["sub-01"]), str(broken), "--output_dir", str(tmp_path / "o")]) == 1
    err = assert_one_line_error(capsys, "evaluate-summary", f"{broken} is not valid JSON (")
    assert err.endswith("re-run `ttdnet evaluate` to rewrite it.")


@pytest.mark.bad_input
def test_a_nan_in_metrics_json_is_refused_not_averaged(runs, tmp_path, capsys):
    root, folders = runs
    text = (folders["sub-02"] / "metrics.json").read_text()
    value = strict_json(folders["sub-02"] / "metrics.json")["metrics"]["pixcorr"]["value"]
    assert text.count(f'"value": {value!r}') == 1
    (tmp_path / "sub-02").mkdir()
    (tmp_path / "sub-02" / "metrics.json").write_text(text.replace(f'"value": {value!r}', '"value": NaN'))
    out = tmp_path / "o"
    assert main(["evaluate-summary", str(folders["sub-01"]), str(tmp_path / "sub-02"), "--output_dir", str(out)]) == 1
    assert_one_line_error(
        capsys,
        "evaluate-summary",
        f"{tmp_path / 'sub-02' / 'metrics.json'} holds NaN, which `ttdnet evaluate` never writes (an undefined "
        "value is null); re-run `ttdnet evaluate` to rewrite it.",
    )
    assert not out.exists()


@pytest.mark.bad_input
def test_a_json_file_that_is_not_an_evaluation_is_refused(tmp_path, capsys):
    other = tmp_path / "sub-01" / "metrics.json"
    other.parent.mkdir()
    other.write_text(json.dumps({"loss": 0.3, "metrics": {}}))
    assert main(["evaluate-summary", str(other), "--output_dir", str(tmp_path / "o")]) == 1
    assert_one_line_error(
        capsys,
        "evaluate-summary",
        f"{other} is not a metrics.json of `ttdnet evaluate` (it lacks 'pairing', 'ttdnet_version', 'n_trials', "
        "'n_samples'); pass the metrics.json that `ttdnet evaluate` wrote.",
    )


@pytest.mark.bad_input
def test_a_value_that_is_not_a_number_is_refused(runs, tmp_path, capsys):
    root, folders = runs
    document = strict_json(folders["sub-02"] / "metrics.json")
    document["metrics"]["ssim_rgb"]["value"] = "0.61"
    bad = tmp_path / "sub-02" / "metrics.json"
    bad.parent.mkdir()
    bad.write_text(json.dumps(document))
    assert main(["evaluate-summary", str(folders["sub-01"]), str(bad), "--output_dir", str(tmp_path / "o")]) == 1
    assert_one_line_error(
        capsys,
        "evaluate-summary",
        f"{bad}: metrics.ssim_rgb.value is '0.61'; it must be a number or null. Re-run `ttdnet evaluate` to "
        "rewrite it.",
    )


@pytest.mark.bad_input
def test_the_same_evaluation_under_two_names_is_refused(runs, tmp_path, capsys):
    root, folders = runs
    copy = tmp_path / "copy"
    shutil.copytree(folders["sub-01"], copy)
    argv = ["evaluate-summary", str(folders["sub-01"]), str(copy), "--labels", "a", "b",
            "--output_dir", str(tmp_path / "o")]  # fmt: skip
    assert main(argv) == 1
    assert_one_line_error(
        capsys,
        "evaluate-summary",
        f"runs a ({folders['sub-01'] / 'metrics.json'}) and b ({copy / 'metrics.json'}) have identical values for "
        "every metric: the same evaluation given twice; give each subject's evaluation once.",
    )
    assert main(["evaluate-summary", str(folders["sub-01"]), str(copy), "--output_dir", str(tmp_path / "o")]) == 1
    assert_one_line_error(
        capsys,
        "evaluate-summary",
        f"runs {folders['sub-01'] / 'metrics.json'} and {copy / 'metrics.json'} both have the subject label "
        "'sub-01'; name the runs with --labels.",
    )


@pytest.mark.bad_input
def test_one_file_given_twice_is_refused(runs, tmp_path, capsys):
    root, folders = runs
    folder = folders["sub-01"]
    argv = ["evaluate-summary", str(folder), str(folder / "metrics.json"), "--output_dir", str(tmp_path / "o")]
    assert main(argv) == 1
    assert_one_line_error(
        capsys,
        "evaluate-summary",
        f"{folder / 'metrics.json'} is given twice (as {folder} and {folder / 'metrics.json'}); give each "
        "subject's evaluation once.",
    )


@pytest.mark.bad_input
def test_a_wrong_number_of_labels_is_refused(runs, tmp_path, capsys):
    root, folders = runs
    argv = ["evaluate-summary", str(folders["sub-01"]), str(folders["sub-02"]), "--labels", "S1",
            "--output_dir", str(tmp_path / "o")]  # fmt: skip
    assert main(argv) == 1
    assert_one_line_error(
        capsys,
        "evaluate-summary",
        "--labels gives 1 label(s) for 2 run(s); give one label per run, in the order of the runs.",
    )


@pytest.mark.bad_input
def test_no_run_is_refused(tmp_path, capsys):
    assert main(["evaluate-summary", "--output_dir", str(tmp_path / "o")]) == 1
    assert_one_line_error(capsys, "evaluate-summary", "pass the evaluation folders to summarise")


@pytest.mark.bad_input
def test_an_evaluation_folder_is_not_overwritten_by_a_summary(runs, tmp_path, capsys):
    root, folders = runs
    target = folders["sub-03"]
    before = (target / "config.yaml").read_text()
    assert main(["evaluate-summary", str(folders["sub-01"]), "--output_dir", str(target)]) == 1
    assert_one_line_error(
        capsys,
        "evaluate-summary",
        f"--output_dir {target}: {target / 'config.yaml'} was not written by `ttdnet evaluate-summary` and a "
        "summary would replace it; choose another --output_dir, or move that file away.",
    )
    assert (target / "config.yaml").read_text() == before and not (target / "summary.json").exists()


def with_alexnet(folder: Path, out: Path, sha256: str, weights_dir: str, torch_version: str | None = None) -> Path:
    """A copy of ``folder``'s metrics.json that records an AlexNet weight file (as `ttdnet evaluate` writes it)."""
    document = strict_json(folder / "metrics.json")
    document["backbones"] = {
        "alexnet": {
            "weights_id": "AlexNet_Weights.IMAGENET1K_V1",
            "source": "file",
            "file": f"{weights_dir}/alexnet-owt-7be5be79.pth",
            "sha256": sha256,
            "preprocessing": {"resize": "bilinear 224"},
        }
    }
    if torch_version:
        document["versions"]["torch"] = torch_version
    out.mkdir(parents=True)
    (out / "metrics.json").write_text(json.dumps(document, indent=2))
    return out


def test_the_same_weights_in_another_folder_pass_and_library_versions_are_a_warning(runs, tmp_path):
    root, folders = runs
    a = with_alexnet(folders["sub-01"], tmp_path / "a", "ab" * 32, "/cluster/weights")
    b = with_alexnet(folders["sub-02"], tmp_path / "b", "ab" * 32, "/home/me/weights", torch_version="0.0.1")
    assert main(["evaluate-summary", str(a), str(b), "--output_dir", str(tmp_path / "out")]) == 0
    summary = strict_json(tmp_path / "out" / "summary.json")
    torch_version = strict_json(a / "metrics.json")["versions"]["torch"]
    assert summary["protocol"]["mismatches"] == []
    assert summary["warnings"] == [
        f"runs sub-01 and sub-02 used different library versions (torch {torch_version} vs 0.0.1); the last "
        "digits of some values can differ."
    ]


@pytest.mark.bad_input
def test_runs_with_different_weight_files_are_refused(runs, tmp_path, capsys):
    root, folders = runs
    a = with_alexnet(folders["sub-01"], tmp_path / "a", "ab" * 32, "/weights")
    b = with_alexnet(folders["sub-02"], tmp_path / "b", "cd" * 32, "/weights")
    assert main(["evaluate-summary", str(a), str(b), "--output_dir", str(tmp_path / "out")]) == 1
    assert_one_line_error(
        capsys,
        "evaluate-summary",
        f"runs sub-01 ({a / 'metrics.json'}) and sub-02 ({b / 'metrics.json'}) differ in backbones.alexnet.sha256: "
        f'"{"ab" * 32}" vs "{"cd" * 32}"; {MISMATCH_FIX}',
    )
