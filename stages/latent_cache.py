"""VAE latents of the training images, computed once into a safetensors cache, so training never runs the encoder.

One file per (VAE weights, resolution, flip, image list): its name and metadata carry those settings, so
another VAE or resolution gets its own file and a matching file is reused. It is computed in chunks that
survive an interruption (:mod:`ttdnet.stages.chunked_cache`) and written atomically.

Contents (``n`` images, rows in ``image_metadata.npy`` training order):

* ``latents``: float16 ``(n, C, h, w)``, the **mean** of the VAE's latent distribution, unscaled (multiply by
  ``vae.config.scaling_factor`` before noising). The mean rather than a sample: the distribution's spread is
  tiny next to the noise added in training, and the mean makes the cache deterministic.
* ``latents_flipped``: the same for the horizontally flipped image (with ``random_flip``).
* ``original_sizes`` int32 ``(n, 2)``: (height, width) before resizing; ``crop_top_left`` and
  ``crop_top_left_flipped`` int32 ``(n, 2)``: (top, left) of the square crop. SDXL's ``time_ids`` are
  ``[*original_size, *crop_top_left, resolution, resolution]``.
"""

import hashlib
import json
import logging
import os
import shutil
from pathlib import Path

import torch

from ttdnet.errors import TtdnetError
from ttdnet.hashing import sha256_text
from ttdnet.models.fingerprint import state_fingerprint


logger = logging.getLogger(__name__)

CACHE_FORMAT = "ttdnet-vae-latents"


def latent_settings(vae, resolution: int, random_flip: bool, paths: list[str]) -> dict:
    """What identifies a latent cache: the VAE's class, config and weights, the resolution, flips, the images."""
    config = {key: value for key, value in dict(vae.config).items() if not key.startswith("_")}
    return {
        "format": CACHE_FORMAT,
        "version": 1,
        "vae_class": type(vae).__name__,
        "vae_config_sha256": sha256_text(json.dumps(config, sort_keys=True, default=str)),
        "vae_weights_sha256": state_fingerprint(vae),
        "resolution": resolution,
        "random_flip": random_flip,
        "crop": "shorter side resized (bicubic) to the resolution, centre crop",
        "images_sha256": sha256_text("\n".join(paths)),
        "n_images": len(paths),
    }


def cache_path(cache_dir: str | os.PathLike, settings: dict) -> Path:
    """``cache_dir/latents-<digest of the settings>.safetensors``."""
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]
    return Path(cache_dir) / f"latents-{settings['resolution']}px-{digest}.safetensors"


def _encode(vae, images: torch.Tensor, names: list[str]) -> torch.Tensor:
    """Latent means of ``images`` (B, 3, H, W) in [-1, 1]; non-finite output is an error naming the image."""
    with torch.no_grad():
        mean = vae.encode(images.to(device=vae.device, dtype=vae.dtype)).latent_dist.mean.float().cpu()
    bad = ~torch.isfinite(mean.flatten(1)).all(dim=1)
    if bad.any():
        raise TtdnetError(
            f"the VAE gave non-finite latents for {names[int(bad.nonzero()[0])]} (in {vae.dtype}); keep the VAE "
            "in fp32, or give an fp16-safe VAE with --pretrained_vae_model_name_or_path"
        )
    return mean


def build_latent_cache(
    cache_dir: str | os.PathLike,
    vae,
    image_dir: Path,
    paths: list[str],
    resolution: int,
    random_flip: bool,
    batch_size: int = 16,
    chunk_size: int = 256,
) -> Path:
    """Encode every image once (or reuse a matching cache) and return the cache file.

    Parameters
    ----------
    cache_dir : path-like
        Folder of latent caches.
    vae : diffusers.AutoencoderKL
        In evaluation mode on its device and dtype.
    image_dir : pathlib.Path
        The image-set folder; ``paths`` are relative to it.
    paths : list of str
    resolution : int
        Square image size in pixels.
    random_flip : bool
        Also encode each image flipped left-right.
    batch_size, chunk_size : int
        Images per VAE call, images per saved chunk.
    """
    from safetensors.torch import save
    from tqdm.auto import tqdm

    from ttdnet.data.image_crop import open_rgb, resize_center_crop, to_signed_tensor
    from ttdnet.io import atomic_open
    from ttdnet.stages.chunked_cache import compute_in_chunks, open_partial_dir

    settings = latent_settings(vae, resolution, random_flip, paths)
    target = cache_path(cache_dir, settings)
    if target.is_file():
        logger.info(f"reusing the VAE latents in {target}")
        return target
    partial_dir = target.with_name(f".{target.name}.partial")
    if open_partial_dir(partial_dir, settings):
        logger.info(f"resuming the VAE latents from {partial_dir}")
    progress = tqdm(total=len(paths), desc="VAE latents", unit="img")

    def compute(start: int, stop: int) -> dict[str, torch.Tensor]:
        out: dict[str, list] = {"latents": [], "latents_flipped": [], "original_sizes": [], "crop_top_left": []}
        out["crop_top_left_flipped"] = []
        for first in range(start, stop, batch_size):
            names = paths[first : min(first + batch_size, stop)]
            pixels = []
            for name in names:
                image = open_rgb(image_dir / name)
                crop, (top, left), (_, resized_width) = resize_center_crop(image, resolution)
                out["original_sizes"].append((image.height, image.width))
                out["crop_top_left"].append((top, left))
                out["crop_top_left_flipped"].append((top, resized_width - left - resolution))
                pixels.append(to_signed_tensor(crop))
            batch = torch.stack(pixels)
            out["latents"].append(_encode(vae, batch, names))
            if random_flip:
                out["latents_flipped"].append(_encode(vae, batch.flip(-1), names))
            progress.update(len(names))
        chunk = {key: torch.cat(out[key]).half() for key in ("latents", "latents_flipped") if out[key]}
        for key in ("original_sizes", "crop_top_left", "crop_top_left_flipped"):
            chunk[key] = torch.tensor(out[key], dtype=torch.int32)
        return chunk

    tensors = compute_in_chunks(partial_dir, "latents", len(paths), chunk_size, compute, progress)
    progress.close()
    metadata = {"settings": json.dumps(settings, sort_keys=True), "paths": json.dumps(paths)}
    with atomic_open(target, "wb") as handle:
        handle.write(save(tensors, metadata=metadata))
    shutil.rmtree(partial_dir)
    return target


class LatentCache:
    """Row access to a latent cache; the file is memory-mapped and read row by row.

    Parameters
    ----------
    path : path-like
        A file from :func:`build_latent_cache`.
    """

    def __init__(self, path: str | os.PathLike):
        from safetensors import safe_open

        self.path = Path(path)
        self._file = safe_open(str(self.path), framework="pt")
        metadata = self._file.metadata() or {}
        self.settings = json.loads(metadata.get("settings", "{}"))
        if self.settings.get("format") != CACHE_FORMAT:
            raise TtdnetError(f"{self.path} is not a ttdnet VAE latent cache; delete it to rebuild")
        self.paths = json.loads(metadata["paths"])
        self.resolution = int(self.settings["resolution"])
        self.flipped = bool(self.settings["random_flip"])
        self.original_sizes = self._file.get_tensor("original_sizes")
        self.crop_top_left = self._file.get_tensor("crop_top_left")
        self.crop_top_left_flipped = self._file.get_tensor("crop_top_left_flipped")

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_file"] = None  # re-opened by each DataLoader worker
        return state

    def _rows(self, name: str, rows: list[int]) -> torch.Tensor:
        from safetensors import safe_open

        if self._file is None:
            self._file = safe_open(str(self.path), framework="pt")
        view = self._file.get_slice(name)
        return torch.stack([view[row] for row in rows]).float()

    def latents(self, rows: torch.Tensor, flipped: torch.Tensor | None = None) -> torch.Tensor:
        """Unscaled latent means of image ``rows`` (B,), flipped where ``flipped`` (B,) bool; float32 (B, C, h, w)."""
        rows = [int(row) for row in rows]
        latents = self._rows("latents", rows)
        if flipped is not None and bool(flipped.any()):
            if not self.flipped:
                raise TtdnetError(f"{self.path} holds no flipped latents (built without random_flip)")
            latents = torch.where(flipped[:, None, None, None].cpu(), self._rows("latents_flipped", rows), latents)
        return latents

    def time_ids(self, rows: torch.Tensor, flipped: torch.Tensor | None = None) -> torch.Tensor:
        """SDXL ``time_ids`` of image ``rows``: ``[orig_h, orig_w, crop_top, crop_left, res, res]``, float (B, 6)."""
        index = torch.as_tensor(rows, dtype=torch.long).cpu()
        crops = self.crop_top_left[index]
        if flipped is not None:
            crops = torch.where(flipped[:, None].cpu(), self.crop_top_left_flipped[index], crops)
        target = torch.full((len(index), 2), self.resolution, dtype=torch.int32)
        return torch.cat([self.original_sizes[index], crops, target], dim=1).float()
