"""A spatial-then-temporal (bilinear) EEG encoder: few parameters, the structure of an evoked response.

An evoked response is a sum of a few sources, each a fixed scalp pattern times a time course, so the
filters that decode it are sums of spatial × temporal products. The encoder learns ``n_spatial`` spatial
filters (linear combinations of channels) and ``n_temporal`` temporal filters (linear combinations of
samples) and reads every (spatial, temporal) pair:

    h[b, k, m] = Σ_c Σ_t W_s[k, c] · x[b, c, t] · W_t[m, t]        (B, K, M)

then flattens ``K·M`` values, applies dropout and ``Linear(K·M -> embed_dim)``. The whole map is linear in
the EEG, with ``K·C + M·T + K·M·E`` weights instead of the ``C·T·E`` of a flattening linear layer (17 × 100
samples, K = 17, M = 16, E = 512: 0.14 M instead of 0.87 M).
"""

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from ttdnet.models.signal import SignalSpec


class SpatioTemporalEncoder(ModelMixin, ConfigMixin):
    """Bilinear EEG encoder: ``(batch, n_chans, n_times)`` -> embedding ``(batch, embed_dim)``.

    Parameters
    ----------
    n_chans, n_times, sfreq, chs_info, input_window_seconds :
        The signal contract (see :class:`ttdnet.models.signal.SignalSpec`).
    n_spatial : int
        Spatial filters ``K``; None uses one per channel.
    n_temporal : int
        Temporal filters ``M``.
    embed_dim : int
        Output width ``E``.
    drop_prob : float
        Dropout on the ``K·M`` bilinear features.
    """

    @register_to_config
    def __init__(
        self,
        n_chans: int | None = None,
        n_times: int | None = None,
        sfreq: float | None = None,
        chs_info: list[dict] | None = None,
        input_window_seconds: float | None = None,
        n_spatial: int | None = None,
        n_temporal: int = 16,
        embed_dim: int = 512,
        drop_prob: float = 0.1,
    ):
        super().__init__()
        self.signal = SignalSpec.infer(n_chans, n_times, sfreq, chs_info, input_window_seconds)
        n_spatial = self.signal.n_chans if n_spatial is None else n_spatial
        self.spatial = nn.Linear(self.signal.n_chans, n_spatial, bias=False)
        self.temporal = nn.Linear(self.signal.n_times, n_temporal, bias=False)
        self.dropout = nn.Dropout(drop_prob)
        self.output = nn.Linear(n_spatial * n_temporal, embed_dim)

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
        sources = self.spatial(x.transpose(1, 2))  # (B, T, K)
        bilinear = self.temporal(sources.transpose(1, 2))  # (B, K, M)
        return self.output(self.dropout(bilinear.flatten(1)))
