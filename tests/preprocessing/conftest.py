"""Fixtures for the preprocessing tests (the file writers are in ``tests/raw_files.py``)."""

import pytest
from raw_files import write_raw_subject


@pytest.fixture(scope="session")
def raw_things(tmp_path_factory):
    """One small subject of raw THINGS-EEG2 files: 8 training images, 3 test images, 4 sessions."""
    root = tmp_path_factory.mktemp("raw") / "raw_data"
    written = write_raw_subject(root, "sub-01")
    return {"root": root, "written": written}
