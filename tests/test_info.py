import json

import numpy as np
import pytest
from things_files import OFFICIAL_TIMES, write_eeg_file

from ttdnet.cli import main
from ttdnet.data.channels import POSTERIOR_17_CHANNELS


def run_info(things_root, *extra):
    return main(["info", str(things_root["root"]), "--eeg_cache_dir", str(things_root["cache_dir"]), *extra])


def test_info_text(things_root, capsys):
    assert run_info(things_root) == 0
    out = capsys.readouterr().out
    assert "sub-02  training  15 x 4 x 17 x 100" in out
    assert "sub-01  test      4 x 80 x 17 x 100" in out
    assert "channels (17): Pz P3 P7 O1 Oz O2 P4 P8 P1 P5 PO7 PO3 POz PO4 PO8 P6 P2" in out
    assert "-0.200 ... 0.790 s, 100 samples at 100 Hz (stimulus onset at index 20)" in out
    assert "training images: 15 in 5 concepts, 15/15 files present" in out


def test_info_json(things_root, capsys):
    assert run_info(things_root, "--json") == 0
    summary = json.loads(capsys.readouterr().out)
    assert list(summary["subjects"]) == ["sub-01", "sub-02"]
    assert summary["subjects"]["sub-02"]["test"]["shape"] == [4, 80, 17, 100]
    assert summary["times"]["sfreq_hz"] == 100.0 and summary["images"]["test"]["concepts"] == 4


def test_info_bad_file_exits_non_zero_naming_it(things_root, capsys):
    bad = things_root["root"] / "preprocessed_data" / "sub-02" / "preprocessed_eeg_test.npy"
    data = np.zeros((4, 80, 17, 100))
    data[0, 0, 0, 0] = np.nan
    write_eeg_file(bad, data, list(POSTERIOR_17_CHANNELS), OFFICIAL_TIMES)
    assert run_info(things_root) == 1
    err = capsys.readouterr().err
    assert str(bad) in err and "non-finite value nan" in err


def test_info_missing_image_is_reported(things_root, capsys):
    missing = things_root["root"] / "image_set" / "test_images" / "00002_backscratcher" / "backscratcher_01s.jpg"
    missing.unlink()
    assert run_info(things_root) == 1
    assert (
        "3/4 files present; missing e.g. test_images/00002_backscratcher/backscratcher_01s.jpg"
        in capsys.readouterr().out
    )


def test_eeg_only_accepts_a_root_without_image_set_and_reads_no_image(things_root, capsys, monkeypatch):
    import ttdnet.data.image_metadata as image_metadata

    (things_root["root"] / "image_set" / "image_metadata.npy").unlink()
    monkeypatch.setattr(image_metadata, "check_image_file", lambda path: pytest.fail(f"decoded {path}"))
    assert run_info(things_root, "--eeg_only") == 0
    out = capsys.readouterr().out
    assert "image set:   not checked (--eeg_only)" in out and "sub-02  test      4 x 80 x 17 x 100" in out
    assert "images:" not in out


def test_info_decodes_every_listed_image(things_root, capsys, monkeypatch):
    import ttdnet.data.image_metadata as image_metadata

    decoded = []
    original = image_metadata.check_image_file
    monkeypatch.setattr(image_metadata, "check_image_file", lambda path: decoded.append(path) or original(path))
    assert run_info(things_root, "--json") == 0
    image_dir = things_root["root"] / "image_set"
    expected = [
        image_dir / folder / concept / name
        for prefix, folder in (("train", "training_images"), ("test", "test_images"))
        for concept, name in zip(
            things_root["metadata"][f"{prefix}_img_concepts"], things_root["metadata"][f"{prefix}_img_files"]
        )
    ]
    assert decoded == expected and len(decoded) == 15 + 4
