"""Bad-input corpus: THINGS-EEG2 roots that are invalid or inconsistent, and bad ``ttdnet simulate`` options.

Every case writes the bad file in the published format (``things_files`` writers, or the raw bytes of a
corrupt JPEG), runs the command through :func:`ttdnet.cli.main` and expects one error line and exit status 1.
"""

import numpy as np
import pytest
from bad_input import assert_one_line_error
from things_files import OFFICIAL_TIMES, write_eeg_file

from ttdnet.cli import main
from ttdnet.data.cache import cache_entry_dir
from ttdnet.data.channels import POSTERIOR_17_CHANNELS


pytestmark = pytest.mark.bad_input

CH17 = list(POSTERIOR_17_CHANNELS)


def eeg_path(things_root, subject: str, partition: str):
    return things_root["root"] / "preprocessed_data" / subject / f"preprocessed_eeg_{partition}.npy"


def run_info(things_root, *extra) -> int:
    return main(["info", str(things_root["root"]), "--eeg_cache_dir", str(things_root["cache_dir"]), *extra])


def rewrite(things_root, subject: str, partition: str, data=None, ch_names=CH17, times=OFFICIAL_TIMES):
    """Replace one EEG file of the fixture, keeping its data unless ``data`` is given; return its path."""
    path = eeg_path(things_root, subject, partition)
    write_eeg_file(path, things_root["eeg"][(subject, partition)] if data is None else data, ch_names, times)
    return path


# ----- every split and subject shares one channel list and time axis -----


def test_test_split_at_another_rate_than_training_is_refused_by_info(things_root, capsys):
    test_file = rewrite(things_root, "sub-01", "test", times=np.arange(100) / 250 - 0.2)  # 250 Hz, same length
    training_file = eeg_path(things_root, "sub-01", "training")
    assert run_info(things_root) == 1
    assert capsys.readouterr().out == ""  # no summary reporting one of the two rates
    assert run_info(things_root) == 1  # again, now from the cache
    assert_one_line_error(
        capsys,
        "info",
        f"{test_file} has times at 250 Hz from -0.2 s (100 samples), {training_file} at 100 Hz from -0.2 s "
        "(100 samples); every split and subject must share one time axis",
    )


def test_test_split_at_another_rate_is_refused_by_train_retrieval(tmp_path, capsys):
    from retrieval_files import options, write_retrieval_dataset

    root = tmp_path / "things"
    features = write_retrieval_dataset(root)
    test_file, training_file = (root / "sub-01" / f"preprocessed_eeg_{p}.npy" for p in ("test", "training"))
    data = np.random.default_rng(0).standard_normal((10, 80, 17, 100))
    write_eeg_file(test_file, data, CH17, np.arange(100) / 250 - 0.2)
    capsys.readouterr()
    output_dir = tmp_path / "run"
    assert main(["train-retrieval", *options(root, features, output_dir)]) == 1
    assert_one_line_error(
        capsys,
        "train-retrieval",
        f"{test_file} has times at 250 Hz from -0.2 s (100 samples), {training_file} at 100 Hz from -0.2 s "
        "(100 samples); every split and subject must share one time axis",
    )
    assert not output_dir.exists()


def test_a_time_axis_shifted_by_one_sample_is_refused(things_root, capsys):
    shifted = rewrite(things_root, "sub-02", "training", times=OFFICIAL_TIMES + 0.01)
    assert run_info(things_root) == 1
    assert_one_line_error(
        capsys,
        "info",
        f"{shifted} has times at 100 Hz from -0.19 s (100 samples), {eeg_path(things_root, 'sub-01', 'training')} "
        "at 100 Hz from -0.2 s (100 samples)",
    )


def test_a_subject_with_channels_in_another_order_is_refused(things_root, capsys):
    swapped = rewrite(things_root, "sub-02", "training", ch_names=[CH17[1], CH17[0], *CH17[2:]])
    assert run_info(things_root) == 1
    assert_one_line_error(
        capsys,
        "info",
        f"{swapped} has the channels of {eeg_path(things_root, 'sub-01', 'training')} in another order "
        "(channel 0 is P3, there Pz); every split and subject must share the same channels in the same order",
    )


def test_a_split_with_other_channels_is_refused(things_root, capsys):
    data = things_root["eeg"][("sub-01", "test")][:, :, :16]
    other = rewrite(things_root, "sub-01", "test", data=data, ch_names=[*CH17[:15], "Cz"])
    assert run_info(things_root) == 1
    assert_one_line_error(
        capsys,
        "info",
        f"{other} has 16 channels, {eeg_path(things_root, 'sub-01', 'training')} 17 (only in the first: ['Cz']; "
        "only in the second: ['P6', 'P2'])",
    )


# ----- values and shapes of one file -----


def test_a_value_beyond_float32_is_refused_before_it_is_cached(things_root, capsys):
    data = things_root["eeg"][("sub-02", "training")].copy()
    data[3, 1, 2, 7] = 1e39  # finite in float64, inf in float32
    path = rewrite(things_root, "sub-02", "training", data=data)
    assert run_info(things_root) == 1
    assert_one_line_error(
        capsys,
        "info",
        f"{path}: value 1e+39 at index (3, 1, 2, 7) (condition, repetition, channel, time) is beyond the float32 "
        "range (±3.403e+38)",
    )
    assert not (cache_entry_dir(path, things_root["cache_dir"]) / "data.npy").exists()  # no cached inf


def test_zero_repetitions_are_refused_at_load(things_root, capsys):
    path = rewrite(things_root, "sub-01", "test", data=np.zeros((4, 0, 17, 100)))
    assert run_info(things_root) == 1
    assert_one_line_error(
        capsys,
        "info",
        f"{path}: 'preprocessed_eeg_data' has shape (4, 0, 17, 100), with no repetitions (axis 1 is empty); a file "
        "needs at least one image condition, repetition, channel and time point",
    )


def test_times_as_strings_are_refused(things_root, capsys):
    path = rewrite(things_root, "sub-02", "test", times=[f"{t:.2f}" for t in OFFICIAL_TIMES])
    assert run_info(things_root) == 1
    assert_one_line_error(
        capsys,
        "info",
        f"{path}: 'times' must be numbers (seconds relative to stimulus onset), got str values such as '-0.20'",
    )


# ----- the image set -----


def test_a_truncated_jpeg_is_refused(things_root, capsys):
    image = things_root["root"] / "image_set" / "training_images" / "00003_bagel" / "bagel_02n.jpg"
    image.write_bytes(image.read_bytes()[:200])
    assert run_info(things_root) == 1
    line = assert_one_line_error(capsys, "info", f"{image}: cannot be decoded: ")  # then PIL's reason
    assert line.endswith("; replace it with the file from the THINGS-EEG2 image set")


def test_a_file_that_is_no_image_is_refused(things_root, capsys):
    image = things_root["root"] / "image_set" / "test_images" / "00003_cello" / "cello_01s.jpg"
    image.write_bytes(b"<html>404 not found</html>")
    assert run_info(things_root) == 1
    assert_one_line_error(
        capsys,
        "info",
        f"{image}: not an image file PIL can identify; replace it with the file from the THINGS-EEG2 image set",
    )


def test_a_missing_image_metadata_file_is_an_error(things_root, capsys):
    (things_root["root"] / "image_set" / "image_metadata.npy").unlink()
    assert run_info(things_root) == 1
    root = things_root["root"]
    assert_one_line_error(
        capsys,
        "info",
        f"{root}: no image_metadata.npy in this folder or in {root / 'image_set'}; unpack the THINGS-EEG2 image set "
        "there or give its folder with --image_dir, or pass --eeg_only to check the EEG files alone",
    )


def test_eeg_only_with_image_dir_is_contradictory(things_root, capsys):
    image_dir = things_root["root"] / "image_set"
    assert run_info(things_root, "--eeg_only", "--image_dir", str(image_dir)) == 1
    assert_one_line_error(
        capsys, "info", "--eeg_only skips the image set, so --image_dir would be ignored; give one of them"
    )


# ----- ttdnet simulate options -----


@pytest.mark.parametrize(
    ("flag", "value", "expected"),
    [
        ("--n_subjects", "0", "option: 'n_subjects' is 0; it must be in [1, 99]"),
        ("--snr", "0", "option: 'snr' is 0.0; it must be in (0, inf)"),
        ("--image_size", "8", "option: 'image_size' is 8; it must be in [16, inf)"),
    ],
)
def test_simulate_options_out_of_range_write_nothing(tmp_path, capsys, flag, value, expected):
    output_dir = tmp_path / "sim"
    assert main(["simulate", "--output_dir", str(output_dir), flag, value]) == 1
    assert_one_line_error(capsys, "simulate", expected)
    assert not output_dir.exists()
