"""Helpers of the evaluation tests: small image sets on disk and small random-weight backbones.

Test modules import these helpers (``tests/eval`` is their folder on ``sys.path``) and define their own fixtures.

The backbones go through the same :class:`ttdnet.eval.backbones.Backbone` interface as the real ones (the
CLIP one through the real Hugging Face wrapper, LPIPS through the real builder with a random trunk); only
the networks and their input sizes are small.
"""

import numpy as np
import torch
from PIL import Image
from torch import nn

from ttdnet.eval import backbones as bb
from ttdnet.eval.images import ResizeSpec


def smooth_image(rng: np.random.Generator, size: int) -> np.ndarray:
    """A random image with spatial structure: a coarse random field upsampled bilinearly, uint8 ``(size, size, 3)``."""
    coarse = rng.random((1, 3, 5, 5)).astype(np.float32)
    fine = torch.nn.functional.interpolate(
        torch.from_numpy(coarse), size=(size, size), mode="bilinear", align_corners=False
    )
    fine = fine + 0.05 * torch.from_numpy(rng.standard_normal((1, 3, size, size)).astype(np.float32))
    return (fine.clamp(0, 1)[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)


def noisy(rng: np.random.Generator, image: np.ndarray, scale: float) -> np.ndarray:
    """``image`` plus Gaussian noise (in uint8 units ``scale·255``), clipped to uint8."""
    noise = rng.standard_normal(image.shape) * scale * 255
    return np.clip(image.astype(np.float64) + noise, 0, 255).round().astype(np.uint8)


def write_image(path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


class TinyNet(nn.Module):
    """Two strided convolutions; outputs named as the real backbone's (flattened by the Backbone wrapper)."""

    def __init__(self, names: tuple[str, ...], seed: int):
        super().__init__()
        torch.manual_seed(seed)
        self.conv1 = nn.Conv2d(3, 6, 3, stride=2)
        self.conv2 = nn.Conv2d(6, 8, 3, stride=2)
        self.names = names

    def forward(self, x):
        a = torch.relu(self.conv1(x))
        b = torch.relu(self.conv2(a))
        outputs = {self.names[0]: a if len(self.names) > 1 else nn.functional.adaptive_avg_pool2d(b, 2)}
        if len(self.names) > 1:
            outputs[self.names[1]] = b
        return outputs


class TinyClassifier(nn.Module):
    def __init__(self, classes: int = 20):
        super().__init__()
        torch.manual_seed(5)
        self.conv = nn.Conv2d(3, 8, 3, stride=2)
        self.head = nn.Linear(8 * 4, classes)

    def forward(self, x):
        h = nn.functional.adaptive_avg_pool2d(torch.relu(self.conv(x)), 2).flatten(1)
        return {"probs": torch.softmax(self.head(h).double() * 5, dim=1)}


class TinyFid(nn.Module):
    """uint8 input like the FID Inception; 8-d features."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(6)
        self.conv = nn.Conv2d(3, 8, 3, stride=2)

    def forward(self, x):
        x = nn.functional.interpolate(x.float() / 255, size=(24, 24), mode="bilinear", align_corners=False)
        return {"fid": nn.functional.adaptive_avg_pool2d(self.conv(x), 1).flatten(1)}


def tiny_clip() -> bb.Backbone:
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(7)
    config = CLIPVisionConfig(
        hidden_size=32,
        intermediate_size=37,
        num_attention_heads=4,
        num_hidden_layers=2,
        image_size=32,
        patch_size=8,
        projection_dim=16,
    )
    model = CLIPVisionModelWithProjection(config)
    return bb.clip_backbone(bb.HfClipImageEncoder(model), {"weights": "tiny random"}, size=32, expected_dim=16)


def tiny_backbones() -> dict[str, bb.Backbone]:
    """Every backbone the suite can use, small and random."""
    info = {"weights": "tiny random"}
    small = ResizeSpec(32, "bilinear", antialias=False)
    mean, std = bb.IMAGENET_MEAN, bb.IMAGENET_STD
    torch.manual_seed(0)
    return {
        "alexnet": bb.Backbone("alexnet", TinyNet(("alexnet2", "alexnet5"), 1), small, mean, std, info=info),
        "inception": bb.Backbone("inception", TinyNet(("inception",), 2), small, mean, std, info=info),
        "effnet_b1": bb.Backbone("effnet_b1", TinyNet(("effnet_b",), 3), small, mean, std, info=info),
        "swav": bb.Backbone("swav", TinyNet(("swav",), 4), small, mean, std, info=info),
        "clip": tiny_clip(),
        "classifier": bb.Backbone("classifier", TinyClassifier(), small, mean, std, info=info),
        "lpips": bb.build_lpips(None, random_weights=True)[0],
        "fid_inception": bb.Backbone("fid_inception", TinyFid(), None, input_kind="uint8", info=info),
    }
