"""EEG conditioning for SDXL: encoder tokens -> Perceiver resampler -> ``encoder_hidden_states`` + pooled embedding.

The EEG **replaces** SDXL's text conditioning: the resampler's output takes the place of the text encoders'
``prompt_embeds (B, n_queries, cross_attention_dim)`` and a pooled projection takes the place of
``pooled_prompt_embeds (B, pooled_dim)`` (SDXL's ``text_embeds``). Every width is read from the UNet's config
by :func:`conditioning_dims`, so one code path serves a tiny test UNet and SDXL.

A **learned null conditioning** (tokens and pooled, initialised at zero, as SDXL's empty prompt) stands in for
the EEG in a fraction of training samples (conditioning dropout), and is the negative branch of
classifier-free guidance at generation time.

An optional **CLIP-alignment head** maps the encoder's pooled tokens through an MLP into a CLIP image-embedding
space (L2-normalised, with a learnable logit scale) for an InfoNCE term against precomputed CLIP embeddings.
"""

from typing import NamedTuple

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from ttdnet.errors import ConfigError
from ttdnet.models.registry import ENCODERS, embedding_dim, token_count
from ttdnet.models.resampler import PerceiverResampler


def conditioning_dims(unet_config) -> tuple[int, int]:
    """``(cross_attention_dim, pooled_dim)`` an SDXL-style UNet expects, read from its config.

    ``pooled_dim = projection_class_embeddings_input_dim − 6 · addition_time_embed_dim``: the ``text_time``
    addition embedding concatenates the pooled text embedding with six Fourier-embedded size/crop ids
    (1280 for SDXL, 2816 − 6·256).

    Raises
    ------
    ConfigError
        The UNet has no ``text_time`` addition embedding (not SDXL-like).
    """
    if unet_config.get("addition_embed_type") != "text_time":
        raise ConfigError(
            f"the UNet's addition_embed_type is {unet_config.get('addition_embed_type')!r}; EEG conditioning needs "
            "an SDXL-style UNet ('text_time')"
        )
    cross_attention_dim = unet_config["cross_attention_dim"]
    if isinstance(cross_attention_dim, list | tuple):
        if len(set(cross_attention_dim)) != 1:
            raise ConfigError(f"the UNet uses several cross_attention_dims {cross_attention_dim}; one is needed")
        cross_attention_dim = cross_attention_dim[0]
    pooled = unet_config["projection_class_embeddings_input_dim"] - 6 * unet_config["addition_time_embed_dim"]
    return int(cross_attention_dim), int(pooled)


class ConditioningOutput(NamedTuple):
    """Output of :class:`EEGConditioner`.

    Attributes
    ----------
    encoder_hidden_states : torch.Tensor, shape (batch, n_queries, cross_attention_dim)
        SDXL ``prompt_embeds``.
    pooled : torch.Tensor, shape (batch, pooled_dim)
        SDXL ``pooled_prompt_embeds`` (``text_embeds``).
    clip_embedding : torch.Tensor or None, shape (batch, clip_dim)
        L2-normalised CLIP-space embedding, when the head exists.
    """

    encoder_hidden_states: torch.Tensor
    pooled: torch.Tensor
    clip_embedding: torch.Tensor | None


class EEGConditioner(ModelMixin, ConfigMixin):
    """EEG encoder + Perceiver resampler + pooled projection + null conditioning (+ CLIP-alignment head).

    Parameters
    ----------
    encoder_name : str
        Registry key of the EEG encoder (:data:`ttdnet.models.registry.ENCODERS`); it must return tokens.
    encoder_config : dict
        The encoder's own config (``encoder.config``); the encoder is rebuilt from it, so
        ``save_pretrained``/``from_pretrained`` hold the whole conditioner in one folder.
    cross_attention_dim, pooled_dim : int
        From :func:`conditioning_dims` of the UNet.
    n_queries : int
        Conditioning tokens (resampler queries).
    resampler_dim, resampler_depth, resampler_heads, resampler_ff_mult : int
        See :class:`~ttdnet.models.resampler.PerceiverResampler`.
    clip_dim : int, optional
        Width of the CLIP image-embedding space; None builds no CLIP head.
    clip_hidden_dim : int
        Hidden width of the CLIP head's MLP.
    init_temperature : float
        Initial InfoNCE temperature of the CLIP head (``logit_scale = ln(1/τ)``).
    """

    @register_to_config
    def __init__(
        self,
        encoder_name: str,
        encoder_config: dict,
        cross_attention_dim: int,
        pooled_dim: int,
        n_queries: int = 16,
        resampler_dim: int = 768,
        resampler_depth: int = 4,
        resampler_heads: int = 12,
        resampler_ff_mult: int = 4,
        clip_dim: int | None = None,
        clip_hidden_dim: int = 1024,
        init_temperature: float = 0.07,
    ):
        super().__init__()
        if encoder_name not in ENCODERS:
            raise ConfigError(f"unknown EEG encoder {encoder_name!r}; registered: {sorted(ENCODERS)}")
        self.encoder = ENCODERS[encoder_name].cls.from_config(dict(encoder_config))
        width = embedding_dim(self.encoder)
        self.resampler = PerceiverResampler(
            input_dim=width,
            n_input_tokens=token_count(self.encoder),
            output_dim=cross_attention_dim,
            n_queries=n_queries,
            dim=resampler_dim,
            depth=resampler_depth,
            heads=resampler_heads,
            ff_mult=resampler_ff_mult,
        )
        self.pooled_proj = nn.Linear(resampler_dim, pooled_dim)
        self.null_tokens = nn.Parameter(torch.zeros(1, n_queries, cross_attention_dim))
        self.null_pooled = nn.Parameter(torch.zeros(1, pooled_dim))
        if clip_dim is None:
            self.clip_head, self.logit_scale = None, None
        else:
            self.clip_head = nn.Sequential(
                nn.Linear(width, clip_hidden_dim), nn.GELU(), nn.Linear(clip_hidden_dim, clip_dim)
            )
            self.logit_scale = nn.Parameter(torch.tensor(float(torch.log(torch.tensor(1.0 / init_temperature)))))

    @property
    def signal(self):
        """The encoder's signal contract (channels, rate, window)."""
        return self.encoder.signal

    def null_conditioning(self, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The learned null conditioning for ``batch_size`` samples: tokens ``(B, Q, D)`` and pooled ``(B, P)``."""
        return self.null_tokens.expand(batch_size, -1, -1), self.null_pooled.expand(batch_size, -1)

    def forward(self, eeg: torch.Tensor, drop: torch.Tensor | None = None) -> ConditioningOutput:
        """Condition on EEG.

        Parameters
        ----------
        eeg : torch.Tensor, shape (batch, n_chans, n_times)
        drop : torch.Tensor of bool, shape (batch,), optional
            Samples whose conditioning is replaced by the null conditioning (conditioning dropout). The null
            parameters take part in the graph either way, so they always receive a (possibly zero) gradient.

        Returns
        -------
        ConditioningOutput
        """
        encoded = self.encoder(eeg)
        tokens, hidden = self.resampler(encoded.tokens)
        pooled = self.pooled_proj(hidden.mean(dim=1))
        if drop is not None:
            null_tokens, null_pooled = self.null_conditioning(eeg.shape[0])
            tokens = torch.where(drop[:, None, None], null_tokens.to(tokens.dtype), tokens)
            pooled = torch.where(drop[:, None], null_pooled.to(pooled.dtype), pooled)
        clip = F.normalize(self.clip_head(encoded.pooled), dim=-1) if self.clip_head is not None else None
        return ConditioningOutput(encoder_hidden_states=tokens, pooled=pooled, clip_embedding=clip)
