"""Bad input to `ttdnet preprocess things-eeg2` and `ttdnet preprocess edf`: one clear line and exit status 1.

Covers a rerun with options that differ from those of the finished subjects, corpora in which no recording gives a
window, recordings that would be mostly interpolated, and numeric options out of range or inconsistent.
"""

import json
import shutil

import pytest
from bad_input import assert_one_line_error
from raw_files import PHYSIONET_LABELS, write_physionet_edf

from ttdnet.cli import main


pytestmark = pytest.mark.bad_input


@pytest.fixture
def no_progress_bar(monkeypatch):
    """Silence the recordings bar of `preprocess edf`: on stderr it would be a line beside the error line."""
    from tqdm.auto import tqdm

    from ttdnet.preprocessing import edf_corpus

    class Silent(tqdm):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **{**kwargs, "disable": True})

    monkeypatch.setattr(edf_corpus, "tqdm", Silent)


@pytest.fixture(scope="module")
def finished(raw_things, tmp_path_factory):
    """Raw sub-01 and sub-02 (the same recordings), and an output folder where sub-01 is done with the defaults."""
    root = tmp_path_factory.mktemp("two") / "raw_data"
    for subject in ("sub-01", "sub-02"):
        shutil.copytree(raw_things["root"] / "sub-01", root / subject)
    out = root.parent / "out"
    assert main(things_args(root, out, "--subjects", "1")) == 0
    return root, out


def things_args(root, out, *flags):
    return ["preprocess", "things-eeg2", "--raw_dir", str(root), "--output_dir", str(out), "--no_checksums", *flags]


def snapshot(out):
    return {path.relative_to(out): path.read_bytes() for path in sorted(out.rglob("*")) if path.is_file()}


def test_rerun_with_another_whitening_fit_is_refused_and_nothing_changes(finished, capsys):
    root, out = finished
    before = snapshot(out)
    capsys.readouterr()
    assert main(things_args(root, out, "--subjects", "1", "--mvnn_fit", "train+test")) == 1
    assert capsys.readouterr().out == ""  # not "already preprocessed; skipped"
    main(things_args(root, out, "--subjects", "1", "--mvnn_fit", "train+test"))
    assert_one_line_error(
        capsys,
        "preprocess things-eeg2",
        f"{out / 'sub-01' / 'provenance.json'}: sub-01 was preprocessed with other options (mvnn_fit: recorded "
        "'train', now 'train+test'). Pass --overwrite to redo it with the new options, or choose another --output_dir",
    )
    assert snapshot(out) == before  # config.yaml still says what provenance.json says
    assert "mvnn_fit: train\n" in (out / "config.yaml").read_text()


def test_every_differing_option_is_named_with_both_values(finished, capsys):
    root, out = finished
    assert main(things_args(root, out, "--subjects", "1", "--channels", "raw63", "--sfreq", "50")) == 1
    assert_one_line_error(
        capsys,
        "preprocess things-eeg2",
        "(channels: recorded 'posterior17', now 'raw63'; sfreq: recorded 100.0, now 50.0)",
    )


def test_a_subject_left_out_by_subjects_must_share_the_options(finished, capsys):
    root, out = finished
    assert main(things_args(root, out, "--subjects", "2", "--mvnn_fit", "train+test")) == 1
    assert_one_line_error(
        capsys,
        "preprocess things-eeg2",
        "sub-01 was preprocessed with other options (mvnn_fit: recorded 'train', now 'train+test'). All subjects of "
        "one --output_dir share these options: add it to --subjects and pass --overwrite to redo it, or choose "
        "another --output_dir",
    )
    assert not (out / "sub-02").exists()


def test_a_preset_with_other_options_is_refused(finished, tmp_path, capsys):
    root, out = finished
    preset = tmp_path / "preset.yaml"
    preset.write_text(f"raw_dir: {root}\noutput_dir: {out}\nsubjects: [1]\nmvnn_dim: epochs\ncrop_tmin: 0.0\n")
    assert main(["preprocess", "things-eeg2", "--config", str(preset), "--no_checksums"]) == 1
    assert_one_line_error(
        capsys,
        "preprocess things-eeg2",
        "(crop_tmin: recorded None, now 0.0; mvnn_dim: recorded 'time', now 'epochs')",
    )


def test_an_unreadable_provenance_is_named(finished, tmp_path, capsys):
    root, out = finished
    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    (copy / "sub-01" / "provenance.json").write_text("{not json")
    assert main(things_args(root, copy, "--subjects", "1")) == 1
    assert_one_line_error(
        capsys,
        "preprocess things-eeg2",
        f"{copy / 'sub-01' / 'provenance.json'}: unreadable (JSONDecodeError: Expecting property name enclosed in "
        "double quotes: line 1 column 2 (char 1)); pass --overwrite to redo the subject",
    )


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--sfreq", "0"], "option: 'sfreq' is 0.0; it must be in (0, inf)"),
        (["--max_rep_test", "0"], "option: 'max_rep_test' is 0; it must be in [1, inf)"),
        (["--max_rep_train", "-2"], "option: 'max_rep_train' is -2; it must be in [1, inf)"),
        (["--epoch_chunk", "0"], "option: 'epoch_chunk' is 0; it must be in [1, inf)"),
        (["--seed", "-1"], "option: 'seed' is -1; it must be in [0, 4294967295]"),
        (["--subjects", "1", "-3"], "option: 'subjects' is -3; it must be in [0, inf)"),
        (["--sessions", "-1"], "option: 'sessions' is -1; it must be in [0, inf)"),
        (["--tmin", "0.5", "--tmax", "0.1", "--no_baseline"], "--tmin 0.5 must be below --tmax 0.1"),
        (["--crop_tmin", "0.9"], "--crop_tmin 0.9 is outside the epoch --tmin -0.2 ... --tmax 0.8 s"),
    ],
)
def test_things_eeg2_values_out_of_range(raw_things, tmp_path, capsys, flags, expected):
    out = tmp_path / "out"
    assert main(things_args(raw_things["root"], out, *flags)) == 1
    assert_one_line_error(capsys, "preprocess things-eeg2", expected)
    assert not out.exists()


def test_things_eeg2_yaml_value_out_of_range(raw_things, tmp_path, capsys):
    preset = tmp_path / "preset.yaml"
    preset.write_text(f"raw_dir: {raw_things['root']}\noutput_dir: {tmp_path / 'out'}\nmax_rep_train: 0\n")
    assert main(["preprocess", "things-eeg2", "--config", str(preset)]) == 1
    assert_one_line_error(capsys, "preprocess things-eeg2", "option: 'max_rep_train' is 0; it must be in [1, inf)")


# --------------------------------------------------------------------------------------------------
# preprocess edf
# --------------------------------------------------------------------------------------------------


def edf_args(input_dir, out, *flags):
    return ["preprocess", "edf", "--input_dir", str(input_dir), "--output_dir", str(out), *flags]


def test_edf_run_where_every_recording_fails(tmp_path, capsys, no_progress_bar):
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("a.edf", "b.edf", "c.bdf", "d.edf", "e.edf"):
        (folder / name).write_bytes(b"this is not an EDF file" * 20)
    out = tmp_path / "out"
    assert main(edf_args(folder, out)) == 1
    line = assert_one_line_error(
        capsys,
        "preprocess edf",
        f"{folder}: none of the 5 recordings gave a window (5 failed, 0 skipped): a.edf: not an EDF/BDF file: "
        "unreadable header (invalid literal for int() with base 10: 'this is'); b.edf: ",
    )
    assert line.endswith(
        f"; and 2 more. Every reason is listed under 'failed' and 'skipped' in {out / 'index.json'}; fix the "
        "recordings or the options and rerun"
    )
    index = json.loads((out / "index.json").read_text())
    assert index["n_windows"] == 0 and sorted(entry["path"] for entry in index["failed"]) == sorted(
        path.name for path in folder.iterdir()
    )


POSTERIOR_WITHOUT_PO = [label for label in PHYSIONET_LABELS if label not in ("Po7", "Po3", "Poz", "Po4", "Po8")]


def test_edf_recording_that_would_be_mostly_interpolated_is_refused(tmp_path, capsys, no_progress_bar):
    folder = tmp_path / "in"
    write_physionet_edf(folder / "S001R01.edf", 160.0, 12.0, seed=1, labels=POSTERIOR_WITHOUT_PO)
    out = tmp_path / "out"
    assert main(edf_args(folder, out, "--missing_channels", "interpolate")) == 1
    assert_one_line_error(
        capsys,
        "preprocess edf",
        "(1 failed, 0 skipped): S001R01.edf: lacks 5 of the 17 target channels (PO7, PO3, POz, PO4, PO8): "
        "interpolating 29% of the output is above --max_interpolated_fraction 0.25; choose another --channels set, "
        "or raise --max_interpolated_fraction (1 accepts any number)",
    )


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--sfreq", "0"], "option: 'sfreq' is 0.0; it must be in (0, inf)"),
        (["--window_seconds", "0"], "option: 'window_seconds' is 0.0; it must be in (0, inf)"),
        (["--stride_seconds", "-1"], "option: 'stride_seconds' is -1.0; it must be in (0, inf)"),
        (["--shard_windows", "0"], "option: 'shard_windows' is 0; it must be in [1, inf)"),
        (["--l_freq", "-0.5"], "option: 'l_freq' is -0.5; it must be in (0, inf)"),
        (["--h_freq", "0"], "option: 'h_freq' is 0.0; it must be in (0, inf)"),
        (["--baseline_seconds", "-0.1"], "option: 'baseline_seconds' is -0.1; it must be in [0, inf)"),
        (["--max_interpolated_fraction", "1.5"], "option: 'max_interpolated_fraction' is 1.5; it must be in [0, 1]"),
        (["--h_freq", "60"], "--h_freq 60 must be below the target Nyquist 50 Hz"),
        (["--l_freq", "30", "--h_freq", "20"], "--l_freq 30 must be below --h_freq 20 (a band-pass needs low < high)"),
        (
            ["--window_seconds", "1.005"],
            "--window_seconds 1.005 at --sfreq 100 is 100.5 samples, not a whole number; choose a multiple of 0.01 s",
        ),
        (
            ["--stride_seconds", "0.001"],
            "--stride_seconds 0.001 at --sfreq 100 is 0.1 samples, not a whole number; choose a multiple of 0.01 s",
        ),
        (
            ["--baseline_seconds", "1.5"],
            "--baseline_seconds 1.5 is longer than the 1 s window; choose at most --window_seconds, or null for no "
            "baseline",
        ),
    ],
)
def test_edf_values_out_of_range(tmp_path, capsys, flags, expected):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.edf").write_bytes(b"0")
    out = tmp_path / "out"
    assert main(edf_args(folder, out, *flags)) == 1
    assert_one_line_error(capsys, "preprocess edf", expected)
    assert not out.exists()


def test_edf_yaml_value_out_of_range(tmp_path, capsys):
    preset = tmp_path / "preset.yaml"
    preset.write_text(f"input_dir: {tmp_path}\noutput_dir: {tmp_path / 'out'}\nmax_interpolated_fraction: -0.1\n")
    assert main(["preprocess", "edf", "--config", str(preset)]) == 1
    assert_one_line_error(
        capsys, "preprocess edf", "option: 'max_interpolated_fraction' is -0.1; it must be in [0, 1]"
    )
