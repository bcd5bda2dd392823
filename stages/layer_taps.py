"""Layer outputs to one vector per image: forward hooks on named modules, pooling, and pixel thumbnails."""

import re

import torch
from torch import nn

from ttdnet.errors import TtdnetError


def pool_output(output, pooling: str, grid_size: int, layer: str) -> torch.Tensor:
    """One vector per image from a layer's output.

    Parameters
    ----------
    output : torch.Tensor or tuple
        ``(B, C, H, W)`` feature maps, ``(B, N, D)`` tokens, or ``(B, D)``; a tuple's first tensor is used.
    pooling : {"mean", "grid"}
        ``mean``: spatial mean / token mean. ``grid``: average-pool to ``grid_size × grid_size`` cells and
        flatten (tokens: the patch tokens reshaped to their square grid, a leading CLS token dropped).

    Returns
    -------
    torch.Tensor, shape (B, dim) float32
    """
    if isinstance(output, tuple | list):
        output = next(item for item in output if isinstance(item, torch.Tensor))
    elif not isinstance(output, torch.Tensor):
        output = output[0]
    output = output.float()
    if output.ndim == 2:
        return output
    if output.ndim == 4:
        if pooling == "mean":
            return output.mean(dim=(2, 3))
        return torch.nn.functional.adaptive_avg_pool2d(output, grid_size).flatten(1)
    if output.ndim == 3:
        if pooling == "mean":
            return output.mean(dim=1)
        n = output.shape[1]
        side = int(round(n**0.5))
        if side * side != n:
            side = int(round((n - 1) ** 0.5))
            if side * side != n - 1:
                raise TtdnetError(f"layer {layer}: {n} tokens form no square grid; use --pooling mean")
            output = output[:, 1:]
        grid = output.transpose(1, 2).reshape(output.shape[0], output.shape[2], side, side)
        return torch.nn.functional.adaptive_avg_pool2d(grid, grid_size).flatten(1)
    raise TtdnetError(f"layer {layer}: cannot pool an output of shape {tuple(output.shape)}")


def pixel_layers(batch: torch.Tensor, layers: list[str]) -> list[torch.Tensor]:
    """``pixels`` backbone: layer ``rgbN`` is the [0, 1] image area-averaged to N × N, flattened (3·N² values).

    Parameters
    ----------
    batch : torch.Tensor, shape (B, 3, S, S)
    """
    out = []
    for layer in layers:
        match = re.fullmatch(r"rgb(\d+)", layer)
        if not match or int(match.group(1)) < 1 or int(match.group(1)) > batch.shape[-1]:
            raise TtdnetError(
                f"pixels backbone: layer {layer!r} must be rgbN with 1 <= N <= image_size ({batch.shape[-1]})"
            )
        out.append(torch.nn.functional.adaptive_avg_pool2d(batch, int(match.group(1))).flatten(1))
    return out


class LayerTaps:
    """Forward hooks on named modules of ``root`` that keep each one's pooled output of the current batch."""

    def __init__(self, root: nn.Module, layers: list[str], pooling: str, grid_size: int):
        modules = dict(root.named_modules())
        missing = [layer for layer in layers if layer != "final" and layer not in modules]
        if missing:
            names = [name for name in modules if name][:40]
            raise TtdnetError(f"layers {missing} are not modules of the backbone; some valid names: {names}")
        self.outputs: dict[str, torch.Tensor] = {}
        self.handles = []
        for layer in layers:
            if layer == "final":
                continue

            def hook(_module, _inputs, output, layer=layer):
                self.outputs[layer] = pool_output(output, pooling, grid_size, layer)

            self.handles.append(modules[layer].register_forward_hook(hook))

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()
