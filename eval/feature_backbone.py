"""The interface every metric network goes through: a feature module plus its pinned preprocessing.

The suite only talks to :class:`Backbone` objects, so tests inject small random-weight ones through the same
interface (``backbones={"alexnet": ...}``) as the real networks built in :mod:`~ttdnet.eval.backbones`.
"""

import numpy as np
import torch
from torch import nn

from .images import ResizeSpec


class Backbone:
    """A feature network with its pinned preprocessing.

    Parameters
    ----------
    name : str
    module : torch.nn.Module
        Maps a preprocessed batch to a dict of named outputs (any shape ``(B, ...)``).
    resize : ResizeSpec or None
        Applied to float [0, 1] input first; None keeps the input size (the caller resized).
    crop : int or None
        Centre crop side after resizing.
    mean, std : tuple of float or None
        Normalisation after resize/crop.
    input_kind : {"float01", "uint8"}
        ``uint8``: the module takes uint8 images at their stored size (the FID Inception resizes internally).
    expected_dims : dict or None
        Flattened output sizes to assert (e.g. AlexNet ``features.4`` 184,512 at 256 px).
    info : dict
        What was loaded (weights id, file, sha256, implementation), recorded in ``metrics.json``.
    """

    def __init__(
        self,
        name: str,
        module: nn.Module,
        resize: ResizeSpec | None,
        mean: tuple[float, ...] | None = None,
        std: tuple[float, ...] | None = None,
        crop: int | None = None,
        input_kind: str = "float01",
        expected_dims: dict[str, int] | None = None,
        info: dict | None = None,
    ):
        self.name = name
        self.module = module.eval().requires_grad_(False).float()
        self.resize = resize
        self.crop = crop
        self.mean = mean
        self.std = std
        self.input_kind = input_kind
        self.expected_dims = expected_dims
        self.info = dict(info or {})
        self.to("cpu")

    def to(self, device: str | torch.device) -> "Backbone":
        """Move to ``device``; on a CPU the module and its input are held channels-last (NHWC).

        oneDNN's NHWC convolutions are faster than NCHW on a CPU, with the same outputs to rounding
        (``benchmarks/eval.py``: Inception-v3 about 1.4 times; the others about the same).
        """
        self.device = torch.device(device)
        memory_format = torch.channels_last if self.device.type == "cpu" else torch.contiguous_format
        self.module.to(self.device, memory_format=memory_format)
        return self

    def preprocess_settings(self) -> dict[str, object]:
        """Preprocessing as recorded in ``metrics.json``."""
        return {
            "resize": self.resize.describe() if self.resize else None,
            "center_crop": self.crop,
            "normalize": {"mean": list(self.mean), "std": list(self.std)} if self.mean else None,
            "input": self.input_kind,
            "dtype": "float32",
        }

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> dict[str, np.ndarray]:
        """Features of a batch.

        Parameters
        ----------
        images : torch.Tensor
            float32 ``(B, 3, H, W)`` in [0, 1], or uint8 ``(B, 3, H, W)`` when ``input_kind == "uint8"``.

        Returns
        -------
        dict
            Output name to float32 ``(B, D)`` numpy arrays (flattened).
        """
        x = images.to(self.device)
        if self.input_kind == "float01":
            if x.dtype != torch.float32:
                raise TypeError(f"{self.name} expects float32 images in [0, 1], got {x.dtype}")
            if self.resize is not None:
                x = self.resize(x)
            if self.crop is not None and self.crop < x.shape[-1]:
                top = (x.shape[-2] - self.crop) // 2
                left = (x.shape[-1] - self.crop) // 2
                x = x[..., top : top + self.crop, left : left + self.crop]
            if self.mean is not None:
                mean = torch.tensor(self.mean, device=x.device).view(1, -1, 1, 1)
                std = torch.tensor(self.std, device=x.device).view(1, -1, 1, 1)
                x = (x - mean) / std
        elif x.dtype != torch.uint8:
            raise TypeError(f"{self.name} expects uint8 images, got {x.dtype}")
        if self.device.type == "cpu" and x.ndim == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        outputs = self.module(x)
        result = {}
        for key, value in outputs.items():
            flat = value.float().flatten(1).cpu().numpy()
            if (
                self.expected_dims is not None
                and key in self.expected_dims
                and flat.shape[1] != self.expected_dims[key]
            ):
                raise RuntimeError(
                    f"{self.name} output {key!r} has {flat.shape[1]} features, expected {self.expected_dims[key]}: "
                    "wrong feature node or input size"
                )
            result[key] = flat
        return result
