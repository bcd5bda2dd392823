"""A Perceiver resampler: a fixed number of learned queries read a variable token sequence.

The IP-Adapter-Plus / Flamingo pattern: in every layer the latent queries attend to the input tokens **and to
themselves** (keys and values are the concatenation of both), then go through a feed-forward block, each with
a pre-LayerNorm and a residual. The latents start as ``randn / sqrt(dim)`` (the IP-Adapter-Plus scaled
initialisation), and the input tokens get a learned positional embedding before the first layer, so the
queries can tell early from late EEG even when the encoder's own positions are frozen.
"""

import torch
import torch.nn.functional as F
from torch import nn

from ttdnet.errors import ConfigError


class ResamplerLayer(nn.Module):
    """One layer: latents attend to ``[tokens, latents]`` (multi-head SDPA), then a feed-forward block.

    Parameters
    ----------
    dim : int
        Width of tokens and latents.
    heads : int
        Attention heads; ``dim`` must divide into them.
    ff_mult : int
        Hidden width of the feed-forward block, in multiples of ``dim``.
    """

    def __init__(self, dim: int, heads: int, ff_mult: int = 4):
        super().__init__()
        if dim % heads:
            raise ConfigError(f"a resampler width of {dim} does not divide into {heads} attention heads")
        self.heads = heads
        self.norm_tokens = nn.LayerNorm(dim)
        self.norm_latents = nn.LayerNorm(dim)
        self.to_q = nn.Linear(dim, dim, bias=False)
        self.to_kv = nn.Linear(dim, 2 * dim, bias=False)
        self.to_out = nn.Linear(dim, dim, bias=False)
        self.feed_forward = nn.Sequential(
            nn.LayerNorm(dim),
            nn.Linear(dim, ff_mult * dim, bias=False),
            nn.GELU(),
            nn.Linear(ff_mult * dim, dim, bias=False),
        )

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, dim = x.shape
        return x.view(batch, length, self.heads, dim // self.heads).transpose(1, 2)

    def forward(self, tokens: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
        """``tokens`` (B, N, dim), ``latents`` (B, Q, dim) -> updated latents (B, Q, dim)."""
        normed = self.norm_latents(latents)
        context = torch.cat([self.norm_tokens(tokens), normed], dim=1)  # (B, N + Q, dim)
        keys, values = self.to_kv(context).chunk(2, dim=-1)
        attended = F.scaled_dot_product_attention(
            self._split(self.to_q(normed)), self._split(keys), self._split(values)
        )  # (B, heads, Q, dim / heads)
        latents = latents + self.to_out(attended.transpose(1, 2).flatten(2))
        return latents + self.feed_forward(latents)


class PerceiverResampler(nn.Module):
    """Map ``(B, n_input_tokens, input_dim)`` tokens to ``(B, n_queries, output_dim)`` latents.

    ``proj_in (input_dim -> dim)`` + positional embedding, ``depth`` :class:`ResamplerLayer` s over learned
    queries, then ``proj_out (dim -> output_dim)`` and a final LayerNorm.

    Parameters
    ----------
    input_dim : int
        Width of the input tokens (the EEG encoder's ``embed_dim``).
    n_input_tokens : int
        Length of the input sequence (the encoder's token count); sets the positional embedding.
    output_dim : int
        Width of the output latents (the UNet's ``cross_attention_dim``).
    n_queries : int
        Number of output latents (conditioning tokens).
    dim : int
        Internal width.
    depth, heads, ff_mult : int
        Layers, attention heads, feed-forward multiplier.
    """

    def __init__(
        self,
        input_dim: int,
        n_input_tokens: int,
        output_dim: int,
        n_queries: int = 16,
        dim: int = 768,
        depth: int = 4,
        heads: int = 12,
        ff_mult: int = 4,
    ):
        super().__init__()
        self.latents = nn.Parameter(torch.randn(1, n_queries, dim) / dim**0.5)
        self.proj_in = nn.Linear(input_dim, dim)
        self.positions = nn.Parameter(torch.zeros(1, n_input_tokens, dim))
        self.layers = nn.ModuleList(ResamplerLayer(dim, heads, ff_mult) for _ in range(depth))
        self.proj_out = nn.Linear(dim, output_dim)
        self.norm_out = nn.LayerNorm(output_dim)

    def forward(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Resample EEG tokens.

        Parameters
        ----------
        tokens : torch.Tensor, shape (batch, n_input_tokens, input_dim)

        Returns
        -------
        output : torch.Tensor, shape (batch, n_queries, output_dim)
            Normalised output latents.
        hidden : torch.Tensor, shape (batch, n_queries, dim)
            The latents before the output projection (the pooled conditioning is taken from them).
        """
        if tokens.shape[1] != self.positions.shape[1]:
            raise ConfigError(
                f"the resampler was built for {self.positions.shape[1]} input tokens, got {tokens.shape[1]}"
            )
        x = self.proj_in(tokens) + self.positions
        latents = self.latents.expand(tokens.shape[0], -1, -1)
        for layer in self.layers:
            latents = layer(x, latents)
        return self.norm_out(self.proj_out(latents)), latents
