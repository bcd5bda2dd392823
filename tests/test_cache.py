import os

import numpy as np
import pytest
from things_files import OFFICIAL_TIMES, write_eeg_file

from ttdnet.data import cache as cache_module
from ttdnet.data.cache import cache_entry_dir, load_cached_eeg
from ttdnet.data.channels import POSTERIOR_17_CHANNELS


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
