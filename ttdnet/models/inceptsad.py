"""InceptSAD: multi-scale temporal convolution, depthwise spatial convolution, squeeze-excitation, tokens, transformer.

After TTD-net's ``InceptSADEncoder``, with its defects fixed: kernel lengths are given in seconds and
converted with ``sfreq`` (so the same configuration fits any sampling rate), attention uses the standard
``1/sqrt(head_dim)`` scaling, tokens get learned positions, inputs must be ``(batch, n_chans, n_times)``, and
the signal contract (channel names, rate, window) is stored with the weights so a mismatch is caught on load.
"""

import math
import os
from pathlib import Path
from typing import NamedTuple

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from ttdnet.errors import ConfigError, TtdnetError
from ttdnet.models.signal import SignalSpec, SignalSpecError
from ttdnet.models.transformer import TransformerBlock


class EncoderOutput(NamedTuple):
    """Output of :class:`InceptSADEncoder`.

    Attributes
    ----------
    tokens : torch.Tensor, shape (batch, n_tokens, embed_dim)
        Layer-normalised token sequence (the input of the Stage B bridge).
    pooled : torch.Tensor, shape (batch, embed_dim)
        Mean of ``tokens`` over the token axis.
    """

    tokens: torch.Tensor
    pooled: torch.Tensor


def kernel_length(seconds: float, sfreq: float) -> int:
    """Odd kernel length in samples closest from below to ``seconds * sfreq`` (at least 1)."""
    return max(1, 2 * int(seconds * sfreq / 2) + 1)


class SqueezeExcitation(nn.Module):
    """Channel re-weighting: global average -> bottleneck MLP -> sigmoid gates. Shape preserving."""

    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        hidden = max(channels // reduction, 1)
        self.gate = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(channels, hidden, bias=False),
            nn.ReLU(),
            nn.Linear(hidden, channels, bias=False),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: (batch, channels, height, width) -> same shape."""
        return x * self.gate(x)[:, :, None, None]


class InceptSADEncoder(ModelMixin, ConfigMixin):
    """EEG encoder: ``(batch, n_chans, n_times)`` -> tokens ``(batch, n_tokens, embed_dim)`` and a pooled vector.

    Blocks, with shapes for input ``(B, C, T)``:

    1. Multi-scale temporal convolution: one branch per entry of ``kernel_seconds`` (converted to odd sample
       counts with :func:`kernel_length`), each ``Conv2d(1 -> n_filters_time, (1, k))`` + BN + ELU;
       concatenated: ``(B, F, C, T)`` with ``F = n_filters_time * len(kernel_seconds)``.
    2. Depthwise spatial convolution ``Conv2d(F -> F*depth_multiplier, (C, 1), groups=F)`` + BN + ELU +
       AvgPool ``(1, pool_sizes[0])`` + dropout: ``(B, F*D, 1, T // p0)``.
    3. Squeeze-excitation over the ``F*D`` maps.
    4. Token projection ``Conv2d(F*D -> embed_dim, 1)`` + BN + ELU + AvgPool ``(1, pool_sizes[1])`` + dropout:
       ``n_tokens = (T // p0) // p1`` tokens of width ``embed_dim``, plus learned positions.
    5. ``depth`` pre-LN transformer blocks and a final LayerNorm.

    Parameters
    ----------
    n_chans, n_times, sfreq, chs_info, input_window_seconds :
        The signal contract (see :class:`ttdnet.models.signal.SignalSpec`); enough of them to infer all three of
        ``n_chans``, ``n_times`` and ``sfreq``. ``chs_info`` (``[{"ch_name": "Oz"}, ...]``) records channel names
        so that data and Stage B can be checked against the weights.
    kernel_seconds : list of float
        Temporal kernel spans. TTD-net's 7/15/31 samples at about 512 Hz are 0.0137/0.0293/0.0605 s.
    n_filters_time : int
        Filters per temporal branch (TTD-net ``F1=8``).
    depth_multiplier : int
        Spatial filters per temporal map (TTD-net ``D=2``).
    se_reduction : int
        Squeeze-excitation bottleneck reduction.
    pool_sizes : list of int
        Temporal average-pooling factors after the spatial convolution and after the projection; they set
        the number of tokens.
    embed_dim, depth, num_heads, mlp_ratio : transformer width, blocks, heads and MLP expansion.
    drop_prob : float
        Dropout in the convolution stack and the transformer.
    """

    @register_to_config
    def __init__(
        self,
        n_chans: int | None = None,
        n_times: int | None = None,
        sfreq: float | None = None,
        chs_info: list[dict] | None = None,
        input_window_seconds: float | None = None,
        kernel_seconds: tuple[float, ...] = (0.0137, 0.0293, 0.0605),
        n_filters_time: int = 8,
        depth_multiplier: int = 2,
        se_reduction: int = 16,
        pool_sizes: tuple[int, int] = (4, 4),
        embed_dim: int = 256,
        depth: int = 4,
        num_heads: int = 8,
        mlp_ratio: float = 4.0,
        drop_prob: float = 0.1,
    ):
        super().__init__()
        self.signal = SignalSpec.infer(n_chans, n_times, sfreq, chs_info, input_window_seconds)
        n_chans, n_times, sfreq = self.signal.n_chans, self.signal.n_times, self.signal.sfreq
        if len(pool_sizes) != 2:
            raise ConfigError(f"pool_sizes must have 2 entries, got {pool_sizes}")
        n_tokens = (n_times // pool_sizes[0]) // pool_sizes[1]
        if n_tokens < 1:
            raise SignalSpecError(
                f"n_times={n_times} is too short for pool_sizes={list(pool_sizes)}: it gives no token. Use at least "
                f"{pool_sizes[0] * pool_sizes[1]} samples or smaller pool sizes."
            )
        self.n_tokens = n_tokens
        self.kernel_lengths = [kernel_length(seconds, sfreq) for seconds in kernel_seconds]
        too_long = [k for k in self.kernel_lengths if k > n_times]
        if too_long:
            raise SignalSpecError(f"temporal kernels of {too_long} samples exceed n_times={n_times}")
        maps = n_filters_time * len(kernel_seconds)
        spatial = maps * depth_multiplier
        self.temporal = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(1, n_filters_time, (1, k), padding=(0, k // 2), bias=False),
                nn.BatchNorm2d(n_filters_time),
                nn.ELU(),
            )
            for k in self.kernel_lengths
        )
        self.spatial = nn.Sequential(
            nn.Conv2d(maps, spatial, (n_chans, 1), groups=maps, bias=False),
            nn.BatchNorm2d(spatial),
            nn.ELU(),
            nn.AvgPool2d((1, pool_sizes[0])),
            nn.Dropout(drop_prob),
        )
        self.excitation = SqueezeExcitation(spatial, se_reduction)
        self.projection = nn.Sequential(
            nn.Conv2d(spatial, embed_dim, 1, bias=False),
            nn.BatchNorm2d(embed_dim),
            nn.ELU(),
            nn.AvgPool2d((1, pool_sizes[1])),
            nn.Dropout(drop_prob),
        )
        self.positions = nn.Parameter(torch.zeros(1, n_tokens, embed_dim))
        self.blocks = nn.ModuleList(TransformerBlock(embed_dim, num_heads, mlp_ratio, drop_prob) for _ in range(depth))
        self.norm = nn.LayerNorm(embed_dim)
        self._init_weights()

    def _init_weights(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        nn.init.trunc_normal_(self.positions, std=0.02)

    @classmethod
    def from_encoder_folder(
        cls, folder: str | os.PathLike, signal: dict, data_source: str, **defaults
    ) -> "InceptSADEncoder":
        """A Stage A encoder from its ``save_pretrained`` folder, checked against the data's signal.

        Parameters
        ----------
        folder : path-like
            ``save_pretrained`` output (``config.json`` gives the architecture, so ``defaults`` are unused).
        signal : dict
            Signal-contract keyword arguments of the data (``chs_info``/``n_chans``, ``n_times``, ``sfreq``).
        data_source : str
            What the data is, for the message of a mismatch.
        **defaults
            The registry entry's architecture keyword arguments (ignored).

        Raises
        ------
        TtdnetError
            ``folder`` has no ``config.json``.
        SignalSpecError
            The saved channels, rate or window differ from the data's.
        """
        if not (Path(folder) / "config.json").is_file():
            raise TtdnetError(f"{folder}: no config.json (a save_pretrained dir)")
        encoder = cls.from_pretrained(folder)
        data = SignalSpec.infer(**signal)
        encoder.signal.check_matches(data.ch_names, data.n_times, data.sfreq, data_source)
        return encoder

    @property
    def embedding_dim(self) -> int:
        """Width of :meth:`embed`'s output (and of every token)."""
        return self.config.embed_dim

    @property
    def ch_names(self) -> tuple[str, ...] | None:
        """Channel names the encoder was configured for, in input order (None if not recorded)."""
        return self.signal.ch_names

    def forward(self, x: torch.Tensor) -> EncoderOutput:
        """Encode EEG.

        Parameters
        ----------
        x : torch.Tensor, shape (batch, n_chans, n_times)

        Returns
        -------
        EncoderOutput
            ``tokens`` (batch, n_tokens, embed_dim) and ``pooled`` (batch, embed_dim).
        """
        self.signal.check_batch(x, type(self).__name__)
        x = x.unsqueeze(1)  # (B, 1, C, T)
        x = torch.cat([branch(x) for branch in self.temporal], dim=1)  # (B, F, C, T)
        x = self.excitation(self.spatial(x))  # (B, F*D, 1, T // p0)
        x = self.projection(x)  # (B, E, 1, n_tokens)
        tokens = x.flatten(2).transpose(1, 2) + self.positions  # (B, n_tokens, E)
        for block in self.blocks:
            tokens = block(tokens)
        tokens = self.norm(tokens)
        return EncoderOutput(tokens=tokens, pooled=tokens.mean(dim=1))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """One embedding per window: the ``pooled`` token mean of :meth:`forward`.

        Parameters
        ----------
        x : torch.Tensor, shape (batch, n_chans, n_times)

        Returns
        -------
        torch.Tensor, shape (batch, embed_dim)
        """
        return self(x).pooled

    @property
    def patch_length(self) -> int:
        """Samples per token, rounded up: ``ceil(n_times / n_tokens)`` (used by decoders to map tokens back)."""
        return math.ceil(self.signal.n_times / self.n_tokens)
