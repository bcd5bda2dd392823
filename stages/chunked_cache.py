"""Resumable computation of per-image tensors (features, VAE latents) in chunks saved as they finish.

Long passes over an image set (a backbone's features, a VAE's latents) write each finished chunk to a hidden
``.<file>.partial/`` folder, atomically; a rerun with the same settings loads the saved chunks and computes
only the rest, and a rerun with other settings starts over. Saved chunks of another chunk size are never
mixed with new ones (:class:`ChunkSizeError`). The caller writes the final file and then removes the folder.
"""

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import torch

from ttdnet.errors import TtdnetError
from ttdnet.io import atomic_open, atomic_write_json


class ChunkSizeError(TtdnetError):
    """The saved chunks of a partial folder were made with another chunk size than the one asked for.

    Attributes
    ----------
    saved : int or None
        The chunk size that resumes them (the rows of the first saved chunk), None if that chunk is missing.
    """

    def __init__(self, message: str, saved: int | None):
        super().__init__(message)
        self.saved = saved


def chunk_file(partial_dir: Path, prefix: str, start: int) -> Path:
    """The saved chunk of ``prefix`` that starts at item ``start``."""
    return partial_dir / f"{prefix}-{start:07d}.safetensors"


def check_saved_chunks(partial_dir: Path, prefix: str, n_items: int, chunk_size: int) -> None:
    """Raise :class:`ChunkSizeError` unless every saved chunk of ``prefix`` is one of ``chunk_size`` items.

    Only the safetensors headers are read. A saved chunk that starts elsewhere or holds another number of
    rows was made with another chunk size; mixing it with new chunks would misalign every later row.
    """
    from safetensors import safe_open

    for path in sorted(partial_dir.glob(f"{prefix}-[0-9]*.safetensors")):
        start = int(path.stem.rsplit("-", 1)[1])
        with safe_open(str(path), framework="pt") as handle:
            rows = {handle.get_slice(key).get_shape()[0] for key in handle.keys()}
        if start % chunk_size == 0 and rows == {min(start + chunk_size, n_items) - start}:
            continue
        first = chunk_file(partial_dir, prefix, 0)
        saved = None
        if first.is_file():
            with safe_open(str(first), framework="pt") as handle:
                saved = handle.get_slice(next(iter(handle.keys()))).get_shape()[0]
        made = f"{saved} images at a time" if saved else "with another chunk size"
        raise ChunkSizeError(
            f"{partial_dir} holds the {prefix} chunks of an interrupted run made {made}, not {chunk_size}", saved
        )


def open_partial_dir(partial_dir: Path, settings: dict, overwrite: bool = False) -> bool:
    """Prepare ``partial_dir`` for chunks made with ``settings``; return whether earlier chunks are kept.

    Chunks saved with other settings (or with ``overwrite``) are deleted. ``settings`` must be JSON-ready.
    """
    settings_file = partial_dir / "settings.json"
    kept = False
    if partial_dir.is_dir():
        stored = json.loads(settings_file.read_text()) if settings_file.is_file() else None
        kept = stored == json.loads(json.dumps(settings)) and not overwrite
        if not kept:
            shutil.rmtree(partial_dir)
    partial_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(settings_file, settings)
    return kept


def compute_in_chunks(
    partial_dir: Path,
    prefix: str,
    n_items: int,
    chunk_size: int,
    compute: Callable[[int, int], dict[str, torch.Tensor]],
    progress=None,
) -> dict[str, torch.Tensor]:
    """Tensors for items ``0 … n_items − 1``, computed ``chunk_size`` items at a time.

    Saved chunks are taken as they are, once :func:`check_saved_chunks` found them all of ``chunk_size``.

    Parameters
    ----------
    partial_dir : pathlib.Path
        From :func:`open_partial_dir`. Chunk ``start`` is :func:`chunk_file` ``(partial_dir, prefix, start)``.
    prefix : str
        Names this pass's chunks (e.g. the split).
    n_items, chunk_size : int
    compute : callable
        ``compute(start, stop) -> {name: tensor (stop − start, ...)}`` for one chunk; it may update
        ``progress`` itself as it goes.
    progress : tqdm, optional
        Advanced by the size of every chunk loaded instead of computed.

    Returns
    -------
    dict of str to torch.Tensor
        Each name's tensors of all chunks, concatenated along the first axis (empty when ``n_items`` is 0).
    """
    from safetensors.torch import load_file, save

    check_saved_chunks(partial_dir, prefix, n_items, chunk_size)
    chunks = []
    for start in range(0, n_items, chunk_size):
        stop = min(start + chunk_size, n_items)
        path = chunk_file(partial_dir, prefix, start)
        if path.is_file():
            chunks.append(load_file(str(path)))
            if progress is not None:
                progress.update(stop - start)
            continue
        chunk = {name: tensor.contiguous() for name, tensor in compute(start, stop).items()}
        with atomic_open(path, "wb") as handle:
            handle.write(save(chunk))
        chunks.append(chunk)
    if not chunks:
        return {}
    return {name: torch.cat([chunk[name] for chunk in chunks]) for name in chunks[0]}
