"""The streamed SHA-256 helpers equal hashlib over the whole data, with and without a byte limit."""

import hashlib

import pytest
import torch

from ttdnet.hashing import CHUNK_BYTES, file_chunks, sha256_chunks, sha256_file
from ttdnet.models.fingerprint import state_fingerprint


@pytest.fixture
def data_file(tmp_path):
    data = bytes(range(256)) * (CHUNK_BYTES // 256 * 2 + 3)  # two full chunks and a partial one
    path = tmp_path / "weights.bin"
    path.write_bytes(data)
    return path, data


def test_sha256_file_streams_the_whole_file(data_file):
    path, data = data_file
    assert sha256_file(path) == hashlib.sha256(data).hexdigest()
    assert [len(chunk) for chunk in file_chunks(path)] == [CHUNK_BYTES, CHUNK_BYTES, 768]


@pytest.mark.parametrize("limit", [0, 1, CHUNK_BYTES, CHUNK_BYTES + 5, 10 * CHUNK_BYTES])
def test_sha256_file_limit_hashes_the_leading_bytes(data_file, limit):
    path, data = data_file
    assert sha256_file(path, limit=limit) == hashlib.sha256(data[:limit]).hexdigest()


def test_sha256_chunks_is_the_digest_of_the_concatenation():
    pieces = [b"name", b"(2, 3)", bytes(24)]
    assert sha256_chunks(pieces) == hashlib.sha256(b"".join(pieces)).hexdigest()
    assert sha256_chunks([]) == hashlib.sha256(b"").hexdigest()


def test_state_fingerprint_hashes_names_shapes_and_bytes():
    module = torch.nn.Linear(3, 2)
    expected = hashlib.sha256()
    for key, value in sorted(module.state_dict().items()):
        expected.update(key.encode())
        expected.update(str(tuple(value.shape)).encode())
        expected.update(value.detach().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    assert state_fingerprint(module) == expected.hexdigest()
    with torch.no_grad():
        module.bias[0] += 1.0
    assert state_fingerprint(module) != expected.hexdigest()
