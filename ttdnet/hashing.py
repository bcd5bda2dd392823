"""SHA-256 digests: of text, of a file (whole or its first bytes) streamed, or of any sequence of buffers."""

import hashlib
import os
from collections.abc import Iterable, Iterator


CHUNK_BYTES = 1 << 20
"""Bytes read from a file at a time (1 MiB): memory stays flat for weight files of several GB."""


def sha256_chunks(chunks: Iterable[bytes]) -> str:
    """Hex SHA-256 of the concatenation of ``chunks``, fed to the hash one at a time.

    Parameters
    ----------
    chunks : iterable of bytes-like
        Consecutive pieces of the data (``bytes``, or any buffer such as a contiguous uint8 numpy array).

    Returns
    -------
    str
        64 lowercase hex digits; equal to ``hashlib.sha256(b"".join(chunks)).hexdigest()``.
    """
    digest = hashlib.sha256()
    for chunk in chunks:
        digest.update(chunk)
    return digest.hexdigest()


def sha256_text(text: str) -> str:
    """Hex SHA-256 of ``text`` encoded as UTF-8 (identities of settings, image lists, configs)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def file_chunks(path: str | os.PathLike, limit: int | None = None) -> Iterator[bytes]:
    """The bytes of a file in pieces of at most :data:`CHUNK_BYTES`, stopping after ``limit`` bytes (None: all)."""
    remaining = limit
    with open(path, "rb") as handle:
        while remaining is None or remaining > 0:
            block = handle.read(CHUNK_BYTES if remaining is None else min(CHUNK_BYTES, remaining))
            if not block:
                return
            if remaining is not None:
                remaining -= len(block)
            yield block


def sha256_file(path: str | os.PathLike, limit: int | None = None) -> str:
    """Hex SHA-256 of a file, streamed; with ``limit``, of its first ``limit`` bytes only (the whole file if shorter).

    Parameters
    ----------
    path : path-like
        A regular file.
    limit : int, optional
        Hash only this many leading bytes (cheap identity of a large file that still catches a swapped one).
    """
    return sha256_chunks(file_chunks(path, limit))
