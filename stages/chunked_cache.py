"""Resumable computation of per-image tensors (features, VAE latents) in chunks saved as they finish.

Long passes over an image set (a backbone's features, a VAE's latents) write each finished chunk to a hidden
``.<file>.partial/`` folder, atomically; a rerun with the same settings loads the saved chunks and computes
only the rest, and a rerun with other settings starts over. The caller writes the final file and then
removes the folder.
"""

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import torch

from ttdnet.io import atomic_open, atomic_write_json


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

    Parameters
    ----------
    partial_dir : pathlib.Path
        From :func:`open_partial_dir`. Chunk ``start`` is ``partial_dir / f"{prefix}-{start:07d}.safetensors"``.
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

    chunks = []
    for start in range(0, n_items, chunk_size):
        stop = min(start + chunk_size, n_items)
        chunk_file = partial_dir / f"{prefix}-{start:07d}.safetensors"
        if chunk_file.is_file():
            chunks.append(load_file(str(chunk_file)))
            if progress is not None:
                progress.update(stop - start)
            continue
        chunk = {name: tensor.contiguous() for name, tensor in compute(start, stop).items()}
        with atomic_open(chunk_file, "wb") as handle:
            handle.write(save(chunk))
        chunks.append(chunk)
    if not chunks:
        return {}
    return {name: torch.cat([chunk[name] for chunk in chunks]) for name in chunks[0]}
