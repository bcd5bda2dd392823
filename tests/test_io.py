import os
import stat
import subprocess
import sys

import numpy as np
import pytest

from ttdnet.io import (
    atomic_directory,
    atomic_np_save,
    atomic_open,
    atomic_write_json,
    atomic_write_text,
    remove_stale_temporaries,
    replace_directory,
    staging_path,
    temporary_prefix,
)


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


def _run_python(code: str) -> str:
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_importing_and_writing_never_changes_the_umask_on_linux(tmp_path):
    # Every os.umask call is recorded before ttdnet.io is imported; on Linux neither the import nor a write
    # may call it (it would change the mask of every thread for an instant).
    code = f"""
import os
calls = []
real_umask = os.umask
os.umask = lambda mask: calls.append(mask) or real_umask(mask)
import ttdnet.io
print("import", len(calls))
ttdnet.io.atomic_write_text({str(tmp_path / "a.txt")!r}, "x")
with ttdnet.io.atomic_directory({str(tmp_path / "d")!r}, unique=True):
    pass
print("write", len(calls))
"""
    lines = _run_python(code).splitlines()
    assert lines[0] == "import 0"
    if sys.platform.startswith("linux"):
        assert lines[1] == "write 0"


def test_files_and_folders_respect_the_umask(tmp_path):
    # In a child process, so this process's umask is never touched.
    code = f"""
import os, stat
from pathlib import Path
os.umask(0o027)
from ttdnet.io import atomic_directory, atomic_write_bytes, current_umask
root = Path({str(tmp_path)!r})
atomic_write_bytes(root / "file.bin", b"x")
with atomic_directory(root / "fixed") as staging:
    (staging / "inner").mkdir()
with atomic_directory(root / "unique", unique=True):
    pass
modes = [stat.S_IMODE(p.stat().st_mode) for p in (root / "file.bin", root / "fixed", root / "fixed" / "inner",
                                                     root / "unique")]
print(oct(current_umask()), *map(oct, modes))
"""
    assert _run_python(code).split() == ["0o27", "0o640", "0o750", "0o750", "0o750"]


def test_the_umask_fallback_restores_the_mask(monkeypatch):
    import builtins

    import ttdnet.io

    real_open = builtins.open

    def no_proc(path, *args, **kwargs):
        if str(path).startswith("/proc/"):
            raise OSError("no /proc")
        return real_open(path, *args, **kwargs)

    expected = ttdnet.io.current_umask()
    monkeypatch.setattr(builtins, "open", no_proc)
    assert ttdnet.io.current_umask() == expected
    monkeypatch.undo()
    assert ttdnet.io.current_umask() == expected  # read from /proc again on Linux: the pair restored it


def test_replace_directory_swaps_folders_and_leaves_no_sibling(tmp_path):
    destination, staging = tmp_path / "model", tmp_path / "new"
    destination.mkdir()
    (destination / "old.txt").write_text("old")
    staging.mkdir()
    (staging / "new.txt").write_text("new")
    replace_directory(staging, destination)
    assert os.listdir(destination) == ["new.txt"] and sorted(os.listdir(tmp_path)) == ["model"]
    (tmp_path / "file").write_text("x")
    staging.mkdir()
    with pytest.raises(NotADirectoryError):
        replace_directory(staging, tmp_path / "file")
    assert (tmp_path / "file").read_text() == "x" and staging.is_dir()


def test_atomic_directory_keeps_the_old_folder_when_the_build_fails(tmp_path):
    destination = tmp_path / "model"
    with atomic_directory(destination) as staging:
        assert staging == staging_path(destination) == tmp_path / ".model.tmp"
        (staging / "weights").write_text("1")
    with pytest.raises(RuntimeError), atomic_directory(destination) as staging:
        (staging / "weights").write_text("2")
        raise RuntimeError("crash mid-save")
    assert (destination / "weights").read_text() == "1" and os.listdir(tmp_path) == ["model"]


def test_atomic_directory_clears_a_leftover_of_an_interrupted_run(tmp_path):
    leftover = staging_path(tmp_path / "model")
    leftover.mkdir()
    (leftover / "partial").write_text("half")
    with atomic_directory(tmp_path / "model") as staging:
        assert os.listdir(staging) == []
    assert os.listdir(tmp_path) == ["model"] and os.listdir(tmp_path / "model") == []


KILLED_MID_WRITE = """
import os, sys
from ttdnet.io import atomic_directory, atomic_open
folder = sys.argv[1]
with atomic_directory(os.path.join(folder, "dataset"), unique=True) as staging:
    open(os.path.join(staging, "half.npy"), "w").write("x")
    with atomic_open(os.path.join(folder, "metrics.json"), "w") as handle:
        handle.write("{")
        handle.flush()
        print("writing", flush=True)
        {ending}
"""


def run_writer(folder, ending):
    code = KILLED_MID_WRITE.replace("{ending}", ending)
    return subprocess.Popen([sys.executable, "-c", code, str(folder)], stdout=subprocess.PIPE, text=True)


def test_the_temporaries_of_a_killed_writer_are_removed_and_a_live_ones_kept(tmp_path):
    killed = run_writer(tmp_path, "os._exit(9)")  # no cleanup code runs, as after SIGKILL
    assert killed.stdout.readline() == "writing\n" and killed.wait() == 9
    stale = sorted(entry.name for entry in tmp_path.iterdir())
    assert len(stale) == 2 and all(name.startswith((".dataset.ttdnet-", ".metrics.json.ttdnet-")) for name in stale)
    live = run_writer(tmp_path, "import time; time.sleep(60)")
    assert live.stdout.readline() == "writing\n"
    foreign = tmp_path / ".model.ttdnet-1-00000000-partial-abc"  # another host's: its process cannot be checked
    foreign.mkdir()
    (tmp_path / ".notes.tmp").write_text("not ours")  # a name ttdnet does not make
    try:
        assert remove_stale_temporaries(tmp_path, name="other") == []
        removed = remove_stale_temporaries(tmp_path)
        assert sorted(path.name for path in removed) == stale
        left = {entry.name for entry in tmp_path.iterdir()}
        assert left == {foreign.name, ".notes.tmp", *(n for n in left if f"ttdnet-{live.pid}-" in n)}
        assert len(left) == 4  # the live writer's folder and file are untouched
    finally:
        live.kill()
        live.wait()


def test_temporary_names_carry_the_writer(tmp_path):
    assert temporary_prefix("a.png") == f".a.png.ttdnet-{os.getpid()}-" + temporary_prefix("x").split("-")[2] + "-"
    with atomic_open(tmp_path / "a.png"):
        (temporary,) = os.listdir(tmp_path)
        assert temporary.startswith(temporary_prefix("a.png")) and temporary.endswith(".tmp")
    assert remove_stale_temporaries(tmp_path / "missing") == []
