import numpy as np
import pytest
from things_files import OFFICIAL_TIMES, write_eeg_file

from ttdnet.data.channels import NICE_63_CHANNELS, POSTERIOR_17_CHANNELS, RAW_63_CHANNELS
from ttdnet.data.image_metadata import concept_label, read_image_metadata
from ttdnet.data.preprocessed_eeg import read_preprocessed_eeg
from ttdnet.data.things_eeg2 import ThingsEEG2FormatError, ThingsEEG2Layout, locate_image_set, subject_name


CH17 = list(POSTERIOR_17_CHANNELS)


def test_seventeen_channels_are_the_official_list():
    official = [
        "Pz",
        "P3",
        "P7",
        "O1",
        "Oz",
        "O2",
        "P4",
        "P8",
        "P1",
        "P5",
        "PO7",
        "PO3",
        "POz",
        "PO4",
        "PO8",
        "P6",
        "P2",
    ]
    assert list(POSTERIOR_17_CHANNELS) == official
    assert sorted(RAW_63_CHANNELS) == sorted(NICE_63_CHANNELS) and len(set(RAW_63_CHANNELS)) == 63


def test_reads_official_file_written_independently(things_root):
    path = things_root["root"] / "preprocessed_data" / "sub-01" / "preprocessed_eeg_training.npy"
    eeg = read_preprocessed_eeg(path)
    np.testing.assert_array_equal(eeg.data, things_root["eeg"][("sub-01", "training")])
    assert eeg.ch_names == tuple(CH17)
    assert eeg.sfreq == 100.0 and eeg.variant == "official" and eeg.container == "npy"
    np.testing.assert_allclose(eeg.times, OFFICIAL_TIMES)


def test_reads_nice_variant_and_crops_times(nice_file):
    path, data = nice_file
    eeg = read_preprocessed_eeg(path)
    np.testing.assert_array_equal(eeg.data, data)
    assert eeg.variant == "nice" and eeg.container == "pickle" and eeg.sfreq == 250.0
    assert len(eeg.times) == 250 and eeg.times[0] == pytest.approx(0.0) and eeg.times[-1] == pytest.approx(0.996)
    assert eeg.ch_names == NICE_63_CHANNELS


def _write(tmp_path, data=None, ch_names=None, times=None, extra=None):
    path = tmp_path / "sub-01" / "preprocessed_eeg_test.npy"
    contents = {
        "preprocessed_eeg_data": np.zeros((2, 3, 17, 100)) if data is None else data,
        "ch_names": CH17 if ch_names is None else ch_names,
        "times": OFFICIAL_TIMES if times is None else times,
    }
    contents.update(extra or {})
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, contents, allow_pickle=True)
    return path


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"data": np.zeros((2, 17, 100))}, r"shape \(2, 17, 100\); expected 4 axes"),
        ({"ch_names": CH17[:16]}, "16 channel names but the channel axis"),
        ({"times": OFFICIAL_TIMES[:99]}, "'times' has 99 entries but the time axis"),
        ({"times": OFFICIAL_TIMES[::-1].copy()}, "not strictly increasing"),
        ({"times": np.r_[OFFICIAL_TIMES[:50], OFFICIAL_TIMES[50:] + 0.003]}, "not evenly spaced"),
        ({"ch_names": ["Xx"] + CH17[1:]}, "not in the standard 10-05 system: Xx"),
        ({"ch_names": ["pz"] + CH17[1:]}, r"pz \(did you mean Pz\?\)"),
        ({"ch_names": ["P3"] + CH17[1:]}, r"duplicate channel names \['P3'\]"),
        ({"extra": {"subject": 1}}, r"unexpected \['subject'\]"),
    ],
)
def test_validation_errors_name_file_and_problem(tmp_path, kwargs, message):
    path = _write(tmp_path, **kwargs)
    with pytest.raises(ThingsEEG2FormatError, match=message) as error:
        read_preprocessed_eeg(path)
    assert str(path) in str(error.value)


def test_missing_key_is_named(tmp_path):
    path = tmp_path / "f.npy"
    np.save(path, {"preprocessed_eeg_data": np.zeros((1, 1, 17, 100)), "ch_names": CH17}, allow_pickle=True)
    with pytest.raises(ThingsEEG2FormatError, match=r"missing \['times'\]"):
        read_preprocessed_eeg(path)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_values_are_located(tmp_path, bad):
    data = np.zeros((3, 2, 17, 100))
    data[2, 1, 5, 40] = bad
    path = _write(tmp_path, data=data)
    with pytest.raises(ThingsEEG2FormatError, match=r"non-finite value .* at index \(2, 1, 5, 40\)"):
        read_preprocessed_eeg(path)


@pytest.mark.parametrize("value", [1e39, -4e38])
def test_values_beyond_float32_are_located(tmp_path, value):
    data = np.zeros((3, 2, 17, 100))
    data[1, 0, 16, 99] = value  # finite as float64, infinite as float32
    path = _write(tmp_path, data=data)
    with pytest.raises(ThingsEEG2FormatError, match=r"value .* at index \(1, 0, 16, 99\) .* beyond the float32 range"):
        read_preprocessed_eeg(path)


def test_largest_float32_value_is_accepted(tmp_path):
    data = np.zeros((2, 3, 17, 100))
    data[0, 0, 0, 0] = np.finfo(np.float32).max
    assert read_preprocessed_eeg(_write(tmp_path, data=data)).data[0, 0, 0, 0] == np.finfo(np.float32).max


@pytest.mark.parametrize(
    ("shape", "message"),
    [
        ((0, 3, 17, 100), r"no image conditions \(axis 0 is empty\)"),
        ((2, 0, 17, 100), r"no repetitions \(axis 1 is empty\)"),
        ((2, 0, 17, 0), r"no repetitions \(axis 1 is empty\) and no time points \(axis 3 is empty\)"),
    ],
)
def test_empty_axes_are_rejected(tmp_path, shape, message):
    with pytest.raises(ThingsEEG2FormatError, match=message):
        read_preprocessed_eeg(_write(tmp_path, data=np.zeros(shape)))


@pytest.mark.parametrize(
    ("times", "message"),
    [
        (np.array([str(t) for t in OFFICIAL_TIMES]), "got str values such as '-0.2'"),
        ([None] * 100, "got NoneType values such as None"),
        (np.ones(100, dtype=bool), "got bool values such as True"),
    ],
)
def test_times_that_are_not_numbers_are_rejected(tmp_path, times, message):
    path = _write(tmp_path, times=times)
    with pytest.raises(ThingsEEG2FormatError, match=message) as error:
        read_preprocessed_eeg(path)
    assert str(error.value).startswith(f"{path}: 'times' must be numbers")


def test_integer_times_are_numbers(tmp_path):
    eeg = read_preprocessed_eeg(_write(tmp_path, times=np.arange(100)))
    assert eeg.sfreq == 1.0 and eeg.times.dtype == np.float64


def test_float32_times_are_evenly_spaced_but_uneven_ones_are_not(tmp_path):
    eeg = read_preprocessed_eeg(_write(tmp_path, times=OFFICIAL_TIMES.astype(np.float32)))
    assert eeg.sfreq == pytest.approx(100.0, rel=1e-5)
    uneven = OFFICIAL_TIMES.copy()
    uneven[50:] += 0.002  # one step of 12 ms among 10 ms steps
    with pytest.raises(ThingsEEG2FormatError, match="'times' is not evenly spaced"):
        read_preprocessed_eeg(_write(tmp_path, times=uneven))


def test_missing_file_is_named(tmp_path):
    with pytest.raises(ThingsEEG2FormatError, match="file not found"):
        read_preprocessed_eeg(tmp_path / "nope.npy")


def test_image_metadata_reads_official_order(things_root):
    metadata = read_image_metadata(locate_image_set(things_root["root"]))
    written = things_root["metadata"]
    assert list(metadata.train_files) == written["train_img_files"]
    assert metadata.test_relative_paths[0] == "test_images/00001_antelope/antelope_01s.jpg"
    assert metadata.unique_concepts("training")[1] == "00002_aircraft_carrier"
    assert concept_label("00002_aircraft_carrier") == "aircraft_carrier"
    # 5 concepts x 3 images: concept index of row i is i // 3 (computed independently of the code).
    np.testing.assert_array_equal(metadata.concept_indices("training"), np.arange(15) // 3)


def test_image_metadata_out_of_order_is_rejected(tmp_path, things_root):
    written = dict(things_root["metadata"])
    written["train_img_files"] = (
        written["train_img_files"][1:2] + written["train_img_files"][:1] + written["train_img_files"][2:]
    )
    np.save(tmp_path / "image_metadata.npy", written, allow_pickle=True)
    with pytest.raises(ThingsEEG2FormatError, match="not in the official .* order at row 1"):
        read_image_metadata(tmp_path)


def test_image_metadata_length_mismatch_is_rejected(tmp_path, things_root):
    written = dict(things_root["metadata"])
    written["test_img_files"] = written["test_img_files"][:-1]
    np.save(tmp_path / "image_metadata.npy", written, allow_pickle=True)
    with pytest.raises(ThingsEEG2FormatError, match="test lists differ in length"):
        read_image_metadata(tmp_path)


def test_image_metadata_without_test_images_is_rejected(tmp_path, things_root):
    written = dict(things_root["metadata"])
    for key in ("test_img_concepts", "test_img_files", "test_img_concepts_THINGS"):
        written[key] = []
    np.save(tmp_path / "image_metadata.npy", written, allow_pickle=True)
    with pytest.raises(ThingsEEG2FormatError, match="'test_img_concepts' is empty; the file lists no test images"):
        read_image_metadata(tmp_path)


def test_layout_accepts_flat_and_nested_roots(things_root, tmp_path):
    nested = ThingsEEG2Layout.discover(things_root["root"])
    assert nested.subjects == ["sub-01", "sub-02"]
    flat = ThingsEEG2Layout.discover(eeg_dir=things_root["root"] / "preprocessed_data", image_dir=nested.image_dir)
    assert flat.eeg_file(2, "test") == nested.eeg_file("sub-02", "test")
    legacy = tmp_path / "legacy"
    write_eeg_file(legacy / "sub03" / "preprocessed_eeg_test.npy", np.zeros((1, 1, 17, 100)), CH17, OFFICIAL_TIMES)
    assert ThingsEEG2Layout.discover(legacy, require_images=False).subjects == ["sub-03"]


def test_layout_errors_explain_the_fix(tmp_path):
    with pytest.raises(ThingsEEG2FormatError, match="no subject folders"):
        ThingsEEG2Layout.discover(tmp_path, require_images=False)
    with pytest.raises(ThingsEEG2FormatError, match="no image_metadata.npy"):
        locate_image_set(tmp_path)


@pytest.mark.parametrize(
    ("given", "expected"), [(1, "sub-01"), ("7", "sub-07"), ("sub01", "sub-01"), ("sub-10", "sub-10")]
)
def test_subject_names(given, expected):
    assert subject_name(given) == expected
