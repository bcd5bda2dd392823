"""NICE's temporal-spatial convolution encoder ("TSConv" patch embedding + projection), rate independent.

NICE's layers: ``Conv2d(1 -> 40, (1, 25))`` -> ``AvgPool2d((1, 51), stride (1, 5))``
-> BN -> ELU -> ``Conv2d(40 -> 40, (C, 1))`` -> BN -> ELU -> Dropout(0.5) -> ``Conv2d(40 -> 40, 1)`` ->
flatten -> ``Linear(-> embed_dim)`` -> residual ``[GELU -> Linear -> Dropout]`` -> LayerNorm. NICE's kernel
and pooling sizes are samples at 250 Hz; here they are given in seconds (0.1 s, 0.204 s, stride 0.02 s) and
converted with ``sfreq``, so the same configuration runs on the official 100 Hz release (kernel 10, pool 20,
stride 2: 40 × 36 = 1440 features for 100 samples, as NICE has at 250 Hz).
"""

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from ttdnet.models.signal import SignalSpec, SignalSpecError


def samples(seconds: float, sfreq: float) -> int:
    """``round(seconds * sfreq)``, at least 1."""
    return max(1, int(round(seconds * sfreq)))


class NICEEncoder(ModelMixin, ConfigMixin):
    """Temporal-spatial convolution EEG encoder: ``(batch, n_chans, n_times)`` -> ``(batch, embed_dim)``.

    Shapes for input ``(B, C, T)`` with ``k, p, s`` the temporal kernel, pool and stride in samples:
    temporal conv ``(B, F, C, T − k + 1)`` -> pool ``(B, F, C, L)``, ``L = (T − k + 1 − p) // s + 1`` ->
    spatial conv ``(B, F, 1, L)`` -> 1×1 conv -> flatten ``F·L`` -> projection ``(B, embed_dim)``.

    Parameters
    ----------
    n_chans, n_times, sfreq, chs_info, input_window_seconds :
        The signal contract (see :class:`ttdnet.models.signal.SignalSpec`).
    n_filters : int
        Feature maps of every convolution (NICE: 40).
    kernel_seconds, pool_seconds, pool_stride_seconds : float
        Temporal kernel, average-pool window and stride in seconds (NICE at 250 Hz: 25, 51, 5 samples).
    embed_dim : int
        Output width (NICE: 768).
    conv_drop_prob, proj_drop_prob : float
        Dropout after the spatial convolution (0.5) and in the projection's residual block (0.5).
    """

    @register_to_config
    def __init__(
        self,
        n_chans: int | None = None,
        n_times: int | None = None,
        sfreq: float | None = None,
        chs_info: list[dict] | None = None,
        input_window_seconds: float | None = None,
        n_filters: int = 40,
        kernel_seconds: float = 0.1,
        pool_seconds: float = 0.204,
        pool_stride_seconds: float = 0.02,
        embed_dim: int = 768,
        conv_drop_prob: float = 0.5,
        proj_drop_prob: float = 0.5,
    ):
        super().__init__()
        self.signal = SignalSpec.infer(n_chans, n_times, sfreq, chs_info, input_window_seconds)
        n_chans, n_times, sfreq = self.signal.n_chans, self.signal.n_times, self.signal.sfreq
        kernel, pool, stride = (samples(s, sfreq) for s in (kernel_seconds, pool_seconds, pool_stride_seconds))
        after_conv = n_times - kernel + 1
        if after_conv < pool:
            raise SignalSpecError(
                f"n_times={n_times} is too short for NICEEncoder: a temporal kernel of {kernel} and a pool of {pool} "
                f"samples need at least {kernel + pool - 1}. Use a longer window or smaller kernel/pool seconds."
            )
        self.n_positions = (after_conv - pool) // stride + 1
        self.tsconv = nn.Sequential(
            nn.Conv2d(1, n_filters, (1, kernel)),
            nn.AvgPool2d((1, pool), (1, stride)),
            nn.BatchNorm2d(n_filters),
            nn.ELU(),
            nn.Conv2d(n_filters, n_filters, (n_chans, 1)),
            nn.BatchNorm2d(n_filters),
            nn.ELU(),
            nn.Dropout(conv_drop_prob),
            nn.Conv2d(n_filters, n_filters, 1),
        )
        self.projection = nn.Linear(n_filters * self.n_positions, embed_dim)
        self.residual = nn.Sequential(nn.GELU(), nn.Linear(embed_dim, embed_dim), nn.Dropout(proj_drop_prob))
        self.norm = nn.LayerNorm(embed_dim)
        self._init_weights()

    def _init_weights(self) -> None:
        # NICE: conv/linear N(0, 0.02), BN weight N(1, 0.02) and bias 0.
        for module in self.modules():
            if isinstance(module, nn.Conv2d | nn.Linear):
                nn.init.normal_(module.weight, 0.0, 0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.normal_(module.weight, 1.0, 0.02)
                nn.init.zeros_(module.bias)

    @property
    def embedding_dim(self) -> int:
        """Width of the returned embedding."""
        return self.config.embed_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Encode EEG.

        Parameters
        ----------
        x : torch.Tensor, shape (batch, n_chans, n_times)

        Returns
        -------
        torch.Tensor, shape (batch, embed_dim)
        """
        self.signal.check_batch(x, type(self).__name__)
        h = self.projection(self.tsconv(x.unsqueeze(1)).flatten(1))  # (B, F * n_positions) -> (B, E)
        return self.norm(h + self.residual(h))
