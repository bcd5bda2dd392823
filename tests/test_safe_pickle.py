import os
import pickle

import numpy as np
import pytest

from ttdnet.data.safe_pickle import ContainerFormatError, UnsafePickleError, load_pickled_container


class WritesMarker:
    """Pickles into a call of os.system, the classic pickle exploit."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class CallsEval:
    def __reduce__(self):
        return (eval, ("__import__('os').getcwd()",))


def test_official_npy_container_round_trips(tmp_path):
    contents = {"preprocessed_eeg_data": np.arange(24.0).reshape(1, 2, 3, 4), "ch_names": ["Pz", "Oz", "O1"]}
    np.save(tmp_path / "a.npy", contents, allow_pickle=True)
    loaded = load_pickled_container(tmp_path / "a.npy")
    np.testing.assert_array_equal(loaded["preprocessed_eeg_data"], contents["preprocessed_eeg_data"])
    assert loaded["ch_names"] == ["Pz", "Oz", "O1"]


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_raw_pickle_of_any_protocol_loads(tmp_path, protocol):
    contents = {"x": np.linspace(0, 1, 7), "n": np.int64(3), "f": np.float32(0.5), "names": ("a", "b")}
    with open(tmp_path / "p.npy", "wb") as handle:
        pickle.dump(contents, handle, protocol=protocol)
    loaded = load_pickled_container(tmp_path / "p.npy")
    np.testing.assert_array_equal(loaded["x"], contents["x"])
    assert loaded["n"] == 3 and loaded["f"] == np.float32(0.5) and loaded["names"] == ("a", "b")


@pytest.mark.parametrize("raw_pickle", [False, True])
def test_malicious_pickle_is_refused_and_nothing_runs(tmp_path, raw_pickle):
    marker = tmp_path / "pwned"
    path = tmp_path / "preprocessed_eeg_training.npy"
    payload = {"preprocessed_eeg_data": WritesMarker(marker), "ch_names": [], "times": []}
    if raw_pickle:
        path.write_bytes(pickle.dumps(payload, protocol=4))
    else:
        np.save(path, payload, allow_pickle=True)
    with pytest.raises(UnsafePickleError) as error:
        load_pickled_container(path)
    assert not marker.exists()
    assert str(path) in str(error.value) and "system" in str(error.value)


def test_builtin_eval_is_refused(tmp_path):
    path = tmp_path / "x.npy"
    path.write_bytes(pickle.dumps({"a": CallsEval()}))
    with pytest.raises(UnsafePickleError, match="builtins.eval"):
        load_pickled_container(path)


def test_truncated_file_is_a_clear_error(tmp_path):
    path = tmp_path / "t.npy"
    np.save(path, {"x": np.zeros((50, 50))}, allow_pickle=True)
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(ContainerFormatError, match="truncated or corrupt"):
        load_pickled_container(path)


def test_unknown_container_is_rejected(tmp_path):
    path = tmp_path / "g.npy"
    path.write_bytes(b"PK\x03\x04 this is a zip file")
    with pytest.raises(ContainerFormatError, match="not a THINGS-EEG2 file"):
        load_pickled_container(path)


def test_plain_numeric_npy_is_rejected_with_hint(tmp_path):
    path = tmp_path / "plain.npy"
    np.save(path, np.zeros((2, 3), dtype=np.float32))
    with pytest.raises(ContainerFormatError, match="plain float32 array"):
        load_pickled_container(path)
