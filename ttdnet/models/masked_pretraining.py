"""Masked temporal pretraining: hide contiguous time segments, reconstruct them with a light decoder.

After TTD-net's pretraining wrapper, with its defects fixed: the mask ratio is exact and segments never
overlap; masks are drawn for the whole batch at once from a ``torch.Generator``; masked samples take a learned
per-channel value rather than a silent zero; the decoder predicts a fixed patch per token and crops, so any
``n_times`` works.
"""

from typing import Literal, NamedTuple

import torch
from torch import nn

from ttdnet.errors import ConfigError
from ttdnet.models.inceptsad import InceptSADEncoder
from ttdnet.models.transformer import TransformerBlock, sinusoidal_positions


MaskScope = Literal["shared", "per_channel"]


def contiguous_time_mask(
    n_masks: int,
    n_times: int,
    n_masked: int,
    n_segments: int,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Random masks of exactly ``n_masked`` samples in ``n_segments`` non-overlapping contiguous segments.

    Segment lengths differ by at most one sample. The unmasked samples are split into ``n_segments + 1``
    gaps (possibly empty) drawn uniformly over all compositions, so segments can touch but never overlap,
    and every sample, the last included, can be masked.

    Parameters
    ----------
    n_masks : int
        Number of independent masks (batch size, or batch size x channels).
    n_times : int
    n_masked : int
        Masked samples per mask, ``1 <= n_masked < n_times``.
    n_segments : int
        ``1 <= n_segments <= n_masked``.
    generator : torch.Generator, optional
    device : torch.device or str

    Returns
    -------
    torch.Tensor of bool, shape (n_masks, n_times)
        True where a sample is masked; every row has exactly ``n_masked`` True entries.
    """
    if not 1 <= n_masked < n_times:
        raise ConfigError(f"n_masked must be in [1, n_times={n_times}), got {n_masked}")
    if not 1 <= n_segments <= n_masked:
        raise ConfigError(f"n_segments must be in [1, n_masked={n_masked}], got {n_segments}")
    n_unmasked = n_times - n_masked
    lengths = torch.full((n_segments,), n_masked // n_segments, device=device)
    lengths[: n_masked % n_segments] += 1
    # Stars and bars: place n_segments bars among n_unmasked stars; the stars before bar i set its offset.
    keys = torch.rand(
        n_masks, n_unmasked + n_segments, generator=generator, device=generator.device if generator else device
    )
    bars = keys.to(device).argsort(dim=1)[:, :n_segments].sort(dim=1).values
    starts = bars - torch.arange(n_segments, device=device) + (torch.cumsum(lengths, 0) - lengths)
    ends = starts + lengths
    samples = torch.arange(n_times, device=device)
    return ((samples >= starts[..., None]) & (samples < ends[..., None])).any(dim=1)


class PretrainingOutput(NamedTuple):
    """Output of :class:`MaskedTemporalPretraining`.

    Attributes
    ----------
    loss : torch.Tensor, scalar
        Mean squared error over masked samples only.
    prediction : torch.Tensor, shape (batch, n_chans, n_times)
    mask : torch.Tensor of bool, shape (batch, n_chans, n_times)
        True where the input was masked (and the loss is taken).
    """

    loss: torch.Tensor
    prediction: torch.Tensor
    mask: torch.Tensor


def masked_mse(prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``(prediction - target)**2`` over entries where ``mask`` is True (all shapes (batch, C, T))."""
    weights = mask.to(prediction.dtype)
    return ((prediction - target) ** 2 * weights).sum() / weights.sum().clamp_min(1.0)


class MaskedTemporalPretraining(nn.Module):
    """An :class:`InceptSADEncoder` with a light transformer decoder for masked-segment reconstruction.

    Parameters
    ----------
    encoder : InceptSADEncoder
    mask_ratio : float
        Fraction of time samples masked, realised exactly as ``round(mask_ratio * n_times)``.
    mask_segment_seconds : float
        Target length of one masked segment; the segment count is ``round(n_masked / segment_samples)``.
    mask_scope : {"shared", "per_channel"}
        One time mask for all channels, or an independent mask per channel.
    decoder_dim, decoder_depth, decoder_heads : int
        Width, blocks and heads of the decoder transformer.
    """

    def __init__(
        self,
        encoder: InceptSADEncoder,
        mask_ratio: float = 0.5,
        mask_segment_seconds: float = 0.1,
        mask_scope: MaskScope = "shared",
        decoder_dim: int = 128,
        decoder_depth: int = 2,
        decoder_heads: int = 4,
    ):
        super().__init__()
        if mask_scope not in ("shared", "per_channel"):
            raise ConfigError(f"mask_scope must be 'shared' or 'per_channel', got {mask_scope!r}")
        signal = encoder.signal
        self.encoder = encoder
        self.mask_scope = mask_scope
        self.n_masked = int(round(mask_ratio * signal.n_times))
        if not 1 <= self.n_masked < signal.n_times:
            raise ConfigError(f"mask_ratio={mask_ratio} masks {self.n_masked} of {signal.n_times} samples")
        segment_samples = max(1, int(round(mask_segment_seconds * signal.sfreq)))
        self.n_segments = min(self.n_masked, max(1, int(round(self.n_masked / segment_samples))))
        self.mask_value = nn.Parameter(torch.zeros(signal.n_chans))
        self.patch_length = encoder.patch_length
        embed_dim = encoder.config.embed_dim
        self.decoder_embed = nn.Linear(embed_dim, decoder_dim)
        self.register_buffer(
            "decoder_positions", sinusoidal_positions(encoder.n_tokens, decoder_dim)[None], persistent=False
        )
        self.decoder_blocks = nn.ModuleList(TransformerBlock(decoder_dim, decoder_heads) for _ in range(decoder_depth))
        self.decoder_norm = nn.LayerNorm(decoder_dim)
        self.decoder_head = nn.Linear(decoder_dim, signal.n_chans * self.patch_length)

    @property
    def mask_ratio(self) -> float:
        """The exact fraction of samples masked."""
        return self.n_masked / self.encoder.signal.n_times

    def draw_mask(self, batch: int, generator: torch.Generator | None = None, device="cpu") -> torch.Tensor:
        """Masks for a batch, shape (batch, n_chans, n_times), bool."""
        n_chans, n_times = self.encoder.signal.n_chans, self.encoder.signal.n_times
        if self.mask_scope == "shared":
            mask = contiguous_time_mask(batch, n_times, self.n_masked, self.n_segments, generator, device)
            return mask[:, None, :].expand(batch, n_chans, n_times)
        mask = contiguous_time_mask(batch * n_chans, n_times, self.n_masked, self.n_segments, generator, device)
        return mask.view(batch, n_chans, n_times)

    def reconstruct(self, tokens: torch.Tensor) -> torch.Tensor:
        """Decoder: tokens (batch, n_tokens, embed_dim) -> signal (batch, n_chans, n_times)."""
        batch, n_tokens, _ = tokens.shape
        x = self.decoder_embed(tokens) + self.decoder_positions
        for block in self.decoder_blocks:
            x = block(x)
        patches = self.decoder_head(self.decoder_norm(x))  # (B, n_tokens, C * P)
        n_chans = self.encoder.signal.n_chans
        signal = patches.view(batch, n_tokens, n_chans, self.patch_length).permute(0, 2, 1, 3)
        return signal.reshape(batch, n_chans, n_tokens * self.patch_length)[..., : self.encoder.signal.n_times]

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor | None = None, generator: torch.Generator | None = None
    ) -> PretrainingOutput:
        """Mask, encode, reconstruct and score.

        Parameters
        ----------
        x : torch.Tensor, shape (batch, n_chans, n_times)
        mask : torch.Tensor of bool, shape (batch, n_chans, n_times), optional
            A given mask (else one is drawn with ``generator``).
        generator : torch.Generator, optional
        """
        if mask is None:
            mask = self.draw_mask(x.shape[0], generator, x.device)
        masked_input = torch.where(mask, self.mask_value[None, :, None].to(x.dtype), x)
        prediction = self.reconstruct(self.encoder(masked_input).tokens)
        return PretrainingOutput(loss=masked_mse(prediction, x, mask), prediction=prediction, mask=mask)
