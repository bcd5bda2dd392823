"""Pre-LN transformer blocks on ``torch.nn.functional.scaled_dot_product_attention`` (standard 1/sqrt(head_dim))."""

import math

import torch
import torch.nn.functional as F
from torch import nn

from ttdnet.errors import ConfigError


class SelfAttention(nn.Module):
    """Multi-head self-attention.

    Parameters
    ----------
    dim : int
        Token width; must be divisible by ``num_heads``.
    num_heads : int
    drop_prob : float
        Dropout on attention probabilities (training only) and on the output.
    """

    def __init__(self, dim: int, num_heads: int, drop_prob: float = 0.0):
        super().__init__()
        if dim % num_heads:
            raise ConfigError(f"a transformer width of {dim} does not divide into {num_heads} attention heads")
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self.drop_prob = drop_prob
        self.out_drop = nn.Dropout(drop_prob)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: (batch, n_tokens, dim) -> (batch, n_tokens, dim)."""
        batch, n_tokens, dim = x.shape
        q, k, v = self.qkv(x).view(batch, n_tokens, 3, self.num_heads, dim // self.num_heads).permute(2, 0, 3, 1, 4)
        attended = F.scaled_dot_product_attention(q, k, v, dropout_p=self.drop_prob if self.training else 0.0)
        return self.out_drop(self.out(attended.transpose(1, 2).reshape(batch, n_tokens, dim)))


class TransformerBlock(nn.Module):
    """``x + Attn(LN(x))`` then ``x + MLP(LN(x))`` with a GELU MLP of width ``mlp_ratio * dim``."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, drop_prob: float = 0.0):
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.norm1 = nn.LayerNorm(dim)
        self.attn = SelfAttention(dim, num_heads, drop_prob)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(
            nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(drop_prob), nn.Linear(hidden, dim), nn.Dropout(drop_prob)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: (batch, n_tokens, dim) -> (batch, n_tokens, dim)."""
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


def sinusoidal_positions(n_positions: int, dim: int) -> torch.Tensor:
    """Fixed sine/cosine position table (base 10000), shape (n_positions, dim)."""
    position = torch.arange(n_positions, dtype=torch.float32)[:, None]
    frequencies = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(n_positions, dim)
    table[:, 0::2] = torch.sin(position * frequencies)
    table[:, 1::2] = torch.cos(position * frequencies[: dim // 2])
    return table
