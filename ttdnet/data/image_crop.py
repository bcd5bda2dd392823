"""The square crop every image consumer uses: shorter side resized (bicubic), then centre-cropped."""

import os

from ttdnet.errors import TtdnetError


def open_rgb(path: str | os.PathLike):
    """An RGB ``PIL.Image`` of ``path``; an unreadable file is a :class:`TtdnetError` naming it."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except OSError as error:
        raise TtdnetError(f"cannot read image {path}: {error}") from error


def resize_center_crop(image, size: int):
    """Resize ``image`` so its shorter side is ``size`` (bicubic), then cut the central ``size x size`` square.

    Parameters
    ----------
    image : PIL.Image.Image
    size : int

    Returns
    -------
    crop : PIL.Image.Image
        ``size x size``.
    top_left : tuple of int
        ``(top, left)`` of the crop in the resized image (SDXL's ``crops_coords_top_left``).
    resized_size : tuple of int
        ``(height, width)`` of the resized image.
    """
    from PIL import Image

    w, h = image.size
    scale = size / min(w, h)
    image = image.resize((max(size, round(w * scale)), max(size, round(h * scale))), Image.BICUBIC)
    w, h = image.size
    left, top = (w - size) // 2, (h - size) // 2
    return image.crop((left, top, left + size, top + size)), (top, left), (h, w)


def to_signed_tensor(image):
    """A float32 ``(3, H, W)`` tensor of an RGB ``PIL.Image`` in ``[-1, 1]``, the range diffusers' VAEs take."""
    import numpy as np
    import torch

    return torch.from_numpy(np.asarray(image, dtype=np.float32) / 127.5 - 1.0).permute(2, 0, 1)


def typical_original_size(image_dir: str | os.PathLike, paths: list[str]) -> tuple[int, int]:
    """The most common ``(height, width)`` of the images ``image_dir / path`` (ties: the smallest).

    Only the file headers are read. Stage B records it as SDXL's ``original_size`` micro-conditioning for
    generation: the pipeline's default, the output size, is a value the model never saw in training whenever
    the images were resized.
    """
    from collections import Counter

    from PIL import Image

    sizes = Counter()
    for path in paths:
        try:
            with Image.open(os.path.join(image_dir, path)) as image:
                sizes[(image.height, image.width)] += 1
        except OSError as error:
            raise TtdnetError(f"cannot read image {os.path.join(image_dir, path)}: {error}") from error
    if not sizes:
        raise TtdnetError(f"no images under {image_dir} to take the training image size from")
    best = max(sizes.values())
    return min(size for size, count in sizes.items() if count == best)
