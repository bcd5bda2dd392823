import os

import numpy as np
import pytest
from things_files import OFFICIAL_TIMES, write_eeg_file

from ttdnet.data import cache as cache_module
from ttdnet.data.cache import cache_entry_dir, check_shared_axes, load_cached_eeg
from ttdnet.data.channels import POSTERIOR_17_CHANNELS
from ttdnet.data.things_eeg2 import ThingsEEG2FormatError


@pytest.fixture
def source(tmp_path):
    path = tmp_path / "sub-01" / "preprocessed_eeg_training.npy"
    data = np.random.default_rng(0).standard_normal((40, 4, 17, 100))
    write_eeg_file(path, data, list(POSTERIOR_17_CHANNELS), OFFICIAL_TIMES)
    return path, data


def test_cache_is_float32_memmap_with_same_values(source, tmp_path):
    path, data = source
    cached = load_cached_eeg(path, tmp_path / "cache")
    assert isinstance(cached.data, np.memmap) and cached.data.dtype == np.float32 and not cached.data.flags.writeable
    np.testing.assert_array_equal(cached.data, data.astype(np.float32))
    assert cached.ch_names == POSTERIOR_17_CHANNELS and cached.sfreq == 100.0
    assert cached.data_path == cache_entry_dir(path, tmp_path / "cache") / "data.npy"


def test_conversion_chunks_do_not_change_the_result(source, tmp_path, monkeypatch):
    path, data = source
    monkeypatch.setattr(cache_module, "CONVERSION_CHUNK", 7)
    np.testing.assert_array_equal(load_cached_eeg(path, tmp_path / "cache").data, data.astype(np.float32))


def test_unchanged_source_reuses_the_cache(source, tmp_path, monkeypatch):
    path, _ = source
    load_cached_eeg(path, tmp_path / "cache")
    monkeypatch.setattr(cache_module, "read_preprocessed_eeg", lambda p: pytest.fail("cache was rebuilt"))
    load_cached_eeg(path, tmp_path / "cache")


def test_changed_source_rebuilds_the_cache(source, tmp_path):
    path, data = source
    load_cached_eeg(path, tmp_path / "cache")
    write_eeg_file(path, data[:10] * 2, list(POSTERIOR_17_CHANNELS), OFFICIAL_TIMES)
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # be sure the mtime differs
    rebuilt = load_cached_eeg(path, tmp_path / "cache")
    np.testing.assert_array_equal(rebuilt.data, (data[:10] * 2).astype(np.float32))


def test_interrupted_conversion_leaves_no_valid_entry(source, tmp_path, monkeypatch):
    path, data = source
    original_write = cache_module.atomic_write_json

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cache_module, "atomic_write_json", crash)
    with pytest.raises(KeyboardInterrupt):
        load_cached_eeg(path, tmp_path / "cache")
    entry = cache_entry_dir(path, tmp_path / "cache")
    assert not (entry / "meta.json").exists()
    assert [p.name for p in entry.iterdir() if p.name.endswith(".tmp")] == []
    monkeypatch.setattr(cache_module, "atomic_write_json", original_write)
    np.testing.assert_array_equal(load_cached_eeg(path, tmp_path / "cache").data, data.astype(np.float32))


def test_corrupt_cache_data_is_rebuilt(source, tmp_path):
    path, data = source
    cached = load_cached_eeg(path, tmp_path / "cache")
    cached.data_path.write_bytes(cached.data_path.read_bytes()[:1000])
    np.testing.assert_array_equal(load_cached_eeg(path, tmp_path / "cache").data, data.astype(np.float32))


def test_default_cache_dir_honours_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("TTDNET_CACHE_DIR", str(tmp_path / "c"))
    assert cache_module.default_cache_dir() == tmp_path / "c"
    monkeypatch.delenv("TTDNET_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert cache_module.default_cache_dir() == tmp_path / "x" / "ttdnet"


def test_a_value_beyond_float32_is_never_cached(source, tmp_path):
    path, data = source
    data = data.copy()
    data[39, 3, 16, 99] = -1e300
    write_eeg_file(path, data, list(POSTERIOR_17_CHANNELS), OFFICIAL_TIMES)
    with pytest.raises(ThingsEEG2FormatError, match=r"value -1e\+300 at index \(39, 3, 16, 99\)"):
        load_cached_eeg(path, tmp_path / "cache")
    entry = cache_entry_dir(path, tmp_path / "cache")
    assert not (entry / "data.npy").exists() and not (entry / "meta.json").exists()


def test_an_entry_of_an_older_format_is_validated_again(source, tmp_path, monkeypatch):
    path, _ = source
    meta = cache_entry_dir(path, tmp_path / "cache") / "meta.json"
    load_cached_eeg(path, tmp_path / "cache")
    meta.write_text(
        meta.read_text().replace(f'"format_version": {cache_module.CACHE_FORMAT_VERSION}', '"format_version": 1')
    )
    reads = []
    original = cache_module.read_preprocessed_eeg
    monkeypatch.setattr(cache_module, "read_preprocessed_eeg", lambda p: reads.append(p) or original(p))
    load_cached_eeg(path, tmp_path / "cache")
    assert reads == [path]


def _cached(tmp_path, name, ch_names=POSTERIOR_17_CHANNELS, times=OFFICIAL_TIMES):
    path = tmp_path / name / "preprocessed_eeg_test.npy"
    write_eeg_file(path, np.zeros((2, 3, len(ch_names), len(times))), list(ch_names), times)
    return load_cached_eeg(path, tmp_path / "cache")


def test_shared_axes_tolerate_differences_far_below_a_sample(tmp_path):
    reference = _cached(tmp_path, "a")
    rounded = _cached(tmp_path, "b", times=OFFICIAL_TIMES + 1e-6)  # 1e-4 of the 10 ms step
    assert not np.array_equal(rounded.times, reference.times)
    check_shared_axes([reference, rounded])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"times": OFFICIAL_TIMES[:90]}, r"at 100 Hz from -0.2 s \(90 samples\), .* at 100 Hz from -0.2 s \(100"),
        ({"times": OFFICIAL_TIMES / 2}, "at 200 Hz from -0.1 s"),
        ({"ch_names": POSTERIOR_17_CHANNELS[::-1]}, "in another order \\(channel 0 is P2, there Pz\\)"),
    ],
)
def test_shared_axes_name_both_files_and_the_difference(tmp_path, kwargs, message):
    reference = _cached(tmp_path, "a")
    other = _cached(tmp_path, "b", **kwargs)
    with pytest.raises(ThingsEEG2FormatError, match=message) as error:
        check_shared_axes([reference, other])
    assert str(error.value).startswith(str(other.source)) and str(reference.source) in str(error.value)
