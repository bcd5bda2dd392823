"""Image loading and per-metric resizing.

Every image is opened with PIL and converted to 8-bit RGB by its bit depth (:func:`read_image`: 8-bit
grayscale, palette and RGBA files with ``.convert("RGB")``, 16-bit grayscale scaled from [0, 65535]),
kept as ``uint8`` at its stored size, and turned into float32 in [0, 1] (``/255``) **before any
arithmetic**. Each metric then resizes both ground truth and reconstruction to its own square size with an
explicit interpolation and ``antialias`` flag (:class:`ResizeSpec`); nothing relies on library defaults.
"""

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from ttdnet.errors import TtdnetError


IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")


@dataclasses.dataclass(frozen=True)
class ResizeSpec:
    """How one metric resizes its inputs: to ``(size, size)`` with a stated interpolation and antialias flag.

    The resize is ``torch.nn.functional.interpolate(x, (size, size), mode=interpolation,
    align_corners=False, antialias=antialias)`` on float32 tensors, which is what torchvision's tensor
    ``Resize`` runs. Non-square inputs are stretched to the square (never a shorter-side resize).

    Attributes
    ----------
    size : int
        Output side in pixels.
    interpolation : {"bilinear", "bicubic"}
    antialias : bool
        False reproduces the MindEye/ATM-era tensor resizes (torchvision < 0.17); True is PIL-like.
    """

    size: int
    interpolation: Literal["bilinear", "bicubic"] = "bilinear"
    antialias: bool = False

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """Resize a batch.

        Parameters
        ----------
        images : torch.Tensor
            float32 ``(B, 3, H, W)`` in [0, 1].

        Returns
        -------
        torch.Tensor
            float32 ``(B, 3, size, size)``. Bicubic output is clamped to [0, 1] (its overshoot is not an image value).
        """
        if images.dtype != torch.float32:
            raise TypeError(f"ResizeSpec expects float32 images in [0, 1], got {images.dtype}")
        if tuple(images.shape[-2:]) == (self.size, self.size):
            return images
        out = F.interpolate(
            images, size=(self.size, self.size), mode=self.interpolation, align_corners=False, antialias=self.antialias
        )
        if self.interpolation == "bicubic":
            out = out.clamp_(0.0, 1.0)
        return out

    def describe(self) -> dict[str, object]:
        """The settings as recorded in ``metrics.json``."""
        return {
            "size": [self.size, self.size],
            "interpolation": self.interpolation,
            "antialias": self.antialias,
            "implementation": "torch.nn.functional.interpolate(align_corners=False) on float32 [0, 1]",
        }


SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N")
"""PIL modes of 16-bit grayscale pixels (PNG, TIFF)."""


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read one image file as 8-bit RGB, converting by bit depth.

    Parameters
    ----------
    path : path-like
        Any format PIL reads. 8-bit modes (grayscale, palette, RGBA, CMYK, ...) are converted with
        ``.convert("RGB")``. 16-bit grayscale (PIL modes ``I;16*``, and ``I`` for a PNG, which older Pillow
        versions use for 16-bit PNGs) is scaled from [0, 65535] to [0, 255] with rounding, ``round(v · 255 /
        65535)``, then copied to the three channels. 16-bit colour PNG and TIFF files reach this function
        already reduced to 8 bits by Pillow (it keeps the high byte).

    Returns
    -------
    numpy.ndarray
        uint8 ``(H, W, 3)``.

    Raises
    ------
    TtdnetError
        If the file cannot be read as an image, or its pixels have no fixed range (32-bit integer or
        floating-point images: mode ``I`` outside PNG, mode ``F``).
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            if image.mode in SIXTEEN_BIT_MODES or (image.mode == "I" and image.format == "PNG"):
                gray = np.asarray(image).astype(np.float64)
                return np.repeat(np.rint(gray * (255.0 / 65535.0)).astype(np.uint8)[:, :, None], 3, axis=2)
            if image.mode in ("I", "F"):
                kind = "32-bit integer" if image.mode == "I" else "floating-point"
                raise TtdnetError(
                    f"cannot score image {path}: its pixels are {kind} (PIL mode {image.mode}), which has no fixed "
                    "range to map to [0, 1]. Save it as an 8- or 16-bit PNG."
                )
            return np.asarray(image.convert("RGB"), dtype=np.uint8).copy()
    except (OSError, UnidentifiedImageError) as error:
        raise TtdnetError(f"cannot read image {path}: {error}. Replace or remove the file.") from error


def to_float(images: np.ndarray | Sequence[np.ndarray]) -> torch.Tensor:
    """uint8 HWC image(s) to a float32 batch in [0, 1].

    Parameters
    ----------
    images : numpy.ndarray or sequence of numpy.ndarray
        uint8 ``(H, W, 3)`` or ``(B, H, W, 3)``, or a list of ``(H_b, W_b, 3)`` arrays of one size.

    Returns
    -------
    torch.Tensor
        float32 ``(B, 3, H, W)`` in [0, 1], converted with ``/255`` before anything else.
    """
    array = np.stack(images) if isinstance(images, list | tuple) else np.asarray(images)
    if array.dtype != np.uint8:
        raise TypeError(f"to_float expects uint8 images, got {array.dtype}")
    if array.ndim == 3:
        array = array[None]
    return torch.from_numpy(np.ascontiguousarray(array)).permute(0, 3, 1, 2).to(torch.float32).div_(255.0)


class ImageStore:
    """The images of one side (ground truth, or one sample set of reconstructions), read once and cached as uint8.

    Parameters
    ----------
    paths : sequence of path-like
        One file per trial, in trial order.

    Notes
    -----
    The cache holds decoded uint8 arrays at their stored size (750 kB per 500×500 image, 150 MB for the
    200 THINGS-EEG2 test images). Resized float copies are made per batch and not kept.
    """

    def __init__(self, paths: Sequence[str | os.PathLike]):
        self.paths = [Path(path) for path in paths]
        self._cache: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.paths)

    def uint8(self, index: int) -> np.ndarray:
        """Image ``index`` as uint8 ``(H, W, 3)``."""
        if index not in self._cache:
            self._cache[index] = read_image(self.paths[index])
        return self._cache[index]

    def batch(self, indices: Sequence[int], resize: ResizeSpec | None) -> torch.Tensor:
        """Images ``indices`` as float32 ``(B, 3, s, s)`` in [0, 1], each resized with ``resize``.

        With ``resize=None`` all images must share one size and are returned at that size.
        """
        if resize is None:
            return to_float([self.uint8(i) for i in indices])
        return torch.cat([resize(to_float(self.uint8(i))) for i in indices])

    def batch_uint8(self, indices: Sequence[int]) -> torch.Tensor:
        """Images ``indices`` as uint8 ``(B, 3, H, W)`` at their stored size (all must share one size)."""
        arrays = [self.uint8(i) for i in indices]
        shapes = {array.shape for array in arrays}
        if len(shapes) != 1:
            raise TtdnetError(
                f"images of different sizes {sorted(shapes)} in one batch: {[str(self.paths[i]) for i in indices]}"
            )
        return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()

    def sizes(self) -> list[tuple[int, int]]:
        """``(H, W)`` of every image (reads them all)."""
        return [tuple(self.uint8(i).shape[:2]) for i in range(len(self))]
