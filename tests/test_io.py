import os
import stat

import numpy as np
import pytest

from ttdnet.io import atomic_np_save, atomic_open, atomic_write_json, atomic_write_text


def test_atomic_write_replaces_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "sub" / "out.txt"
    atomic_write_text(path, "one")
    atomic_write_text(path, "two")
    assert path.read_text() == "two" and os.listdir(path.parent) == ["out.txt"]


def test_failed_write_keeps_the_old_file(tmp_path):
    path = tmp_path / "out.json"
    atomic_write_json(path, {"a": 1})
    with pytest.raises(RuntimeError), atomic_open(path, "w") as handle:
        handle.write('{"a": 2')
        raise RuntimeError("crash mid-write")
    assert path.read_text() == '{\n  "a": 1\n}\n' and os.listdir(tmp_path) == ["out.json"]


def test_files_get_the_mode_open_would_give(tmp_path):
    umask = os.umask(0)
    os.umask(umask)
    atomic_np_save(tmp_path / "a.npy", np.zeros(3))
    (tmp_path / "b.npy").write_bytes(b"")
    mode = stat.S_IMODE((tmp_path / "a.npy").stat().st_mode)
    assert mode == stat.S_IMODE((tmp_path / "b.npy").stat().st_mode) == 0o666 & ~umask
