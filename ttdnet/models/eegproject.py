"""EEGProject: the flatten -> linear -> residual GELU block -> LayerNorm encoder of SUPA-EEG (``EEGNetEncoder``).

SUPA-EEG's layers: flatten ``C × T`` -> ``Linear(C·T -> hidden_dim)`` -> residual
``x + Dropout(Linear(GELU(x)))`` -> ``LayerNorm(hidden_dim)``. The projection into the shared retrieval space is
not part of the encoder (the retrieval head adds it), so the encoder is reusable on its own.
"""

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from ttdnet.models.signal import SignalSpec


class EEGProjectEncoder(ModelMixin, ConfigMixin):
    """MLP EEG encoder: ``(batch, n_chans, n_times)`` -> embedding ``(batch, hidden_dim)``.

    Parameters
    ----------
    n_chans, n_times, sfreq, chs_info, input_window_seconds :
        The signal contract (see :class:`ttdnet.models.signal.SignalSpec`).
    hidden_dim : int
        Width of the first linear layer, the residual block and the output (SUPA-EEG: 1024).
    drop_prob : float
        Dropout inside the residual block (SUPA-EEG: 0.3).
    """

    @register_to_config
    def __init__(
        self,
        n_chans: int | None = None,
        n_times: int | None = None,
        sfreq: float | None = None,
        chs_info: list[dict] | None = None,
        input_window_seconds: float | None = None,
        hidden_dim: int = 1024,
        drop_prob: float = 0.3,
    ):
        super().__init__()
        self.signal = SignalSpec.infer(n_chans, n_times, sfreq, chs_info, input_window_seconds)
        self.input = nn.Linear(self.signal.n_chans * self.signal.n_times, hidden_dim)
        self.residual = nn.Sequential(nn.GELU(), nn.Linear(hidden_dim, hidden_dim), nn.Dropout(drop_prob))
        self.norm = nn.LayerNorm(hidden_dim)

    @property
    def embedding_dim(self) -> int:
        """Width of the returned embedding."""
        return self.config.hidden_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Encode EEG.

        Parameters
        ----------
        x : torch.Tensor, shape (batch, n_chans, n_times)

        Returns
        -------
        torch.Tensor, shape (batch, hidden_dim)
        """
        self.signal.check_batch(x, type(self).__name__)
        h = self.input(x.flatten(1))
        return self.norm(h + self.residual(h))
