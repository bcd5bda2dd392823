"""Tiny SDXL-architecture bases with random weights, saved as standard diffusers folders.

The components are built from configs the way diffusers' own SDXL tests build them: an
``UNet2DConditionModel`` with SDXL's ``text_time`` addition embedding, a small ``AutoencoderKL`` and SDXL's
``EulerDiscreteScheduler`` configuration. :func:`save_tiny_sdxl` writes them as a
``StableDiffusionXLPipeline`` folder **without** text encoders or tokenizers, so every later step
(``ttdnet train-bridge``, generation) loads it exactly as it loads SDXL from a local path. Two presets differ in
every conditioning width, so tests can check that nothing is hard-coded.
"""

import os
from pathlib import Path

import torch

from ttdnet.errors import ConfigError
from ttdnet.io import atomic_directory


SDXL_SCHEDULER_CONFIG = {
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "num_train_timesteps": 1000,
    "prediction_type": "epsilon",
    "steps_offset": 1,
    "timestep_spacing": "leading",
    "interpolation_type": "linear",
    "use_karras_sigmas": False,
}
"""The noise schedule of ``stabilityai/stable-diffusion-xl-base-1.0/scheduler`` (Euler, scaled-linear betas)."""

_VAE = {
    "block_out_channels": [32, 64],
    "in_channels": 3,
    "out_channels": 3,
    "down_block_types": ["DownEncoderBlock2D"] * 2,
    "up_block_types": ["UpDecoderBlock2D"] * 2,
    "latent_channels": 4,
    "sample_size": 64,
    # Four channels per GroupNorm group, as in SDXL's VAE (128 channels, 32 groups). The default of 32 groups on
    # 32 channels normalises every channel on its own, which strips each image's mean colour.
    "norm_num_groups": 8,
}

TINY_SDXL_PRESETS: dict[str, dict] = {
    "tiny": {
        "unet": {
            "block_out_channels": (32, 64),
            "layers_per_block": 2,
            "sample_size": 32,
            "in_channels": 4,
            "out_channels": 4,
            "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D"),
            "up_block_types": ("CrossAttnUpBlock2D", "UpBlock2D"),
            "attention_head_dim": (2, 4),
            "use_linear_projection": True,
            "addition_embed_type": "text_time",
            "addition_time_embed_dim": 8,
            "transformer_layers_per_block": (1, 2),
            "projection_class_embeddings_input_dim": 80,  # 6 * 8 + pooled 32
            "cross_attention_dim": 64,
        },
        "vae": _VAE,
    },
    "tiny-wide": {
        "unet": {
            "block_out_channels": (32, 64),
            "layers_per_block": 1,
            "sample_size": 32,
            "in_channels": 4,
            "out_channels": 4,
            "down_block_types": ("CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
            "up_block_types": ("CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
            "attention_head_dim": (4, 8),
            "use_linear_projection": True,
            "addition_embed_type": "text_time",
            "addition_time_embed_dim": 16,
            "transformer_layers_per_block": (1, 1),
            "projection_class_embeddings_input_dim": 144,  # 6 * 16 + pooled 48
            "cross_attention_dim": 96,
        },
        "vae": _VAE,
    },
}
"""UNet and VAE configs of the tiny bases. Images of ``2 * unet sample_size`` pixels (64 x 64) give 32 x 32 latents."""


def build_tiny_sdxl(preset: str = "tiny", seed: int = 0) -> dict:
    """Random-weight components of a tiny SDXL-architecture base.

    Returns
    -------
    dict
        ``unet`` (``UNet2DConditionModel``), ``vae`` (``AutoencoderKL``), ``scheduler``
        (``EulerDiscreteScheduler``), each component seeded with ``seed`` before it is built.
    """
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, UNet2DConditionModel

    if preset not in TINY_SDXL_PRESETS:
        raise ConfigError(f"unknown tiny SDXL preset {preset!r}; choose one of {sorted(TINY_SDXL_PRESETS)}")
    configs = TINY_SDXL_PRESETS[preset]
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(**configs["unet"])
    torch.manual_seed(seed)
    vae = AutoencoderKL(**configs["vae"])
    return {"unet": unet, "vae": vae, "scheduler": EulerDiscreteScheduler(**SDXL_SCHEDULER_CONFIG)}


def save_sdxl_folder(path: str | os.PathLike, unet, vae, scheduler, extra_files: dict[str, str] | None = None) -> Path:
    """Write UNet, VAE and scheduler as a ``StableDiffusionXLPipeline`` folder (no text encoders), atomically.

    ``extra_files`` maps file names to text written beside ``model_index.json`` before the folder appears.
    """
    from diffusers import StableDiffusionXLPipeline

    path = Path(path)
    pipeline = StableDiffusionXLPipeline(
        vae=vae,
        text_encoder=None,
        text_encoder_2=None,
        tokenizer=None,
        tokenizer_2=None,
        unet=unet,
        scheduler=scheduler,
    )
    with atomic_directory(path) as temporary:
        pipeline.save_pretrained(temporary)
        for name, text in (extra_files or {}).items():
            (temporary / name).write_text(text, encoding="utf-8")
    return path


def save_tiny_sdxl(path: str | os.PathLike, preset: str = "tiny", seed: int = 0) -> Path:
    """Build a tiny base (:func:`build_tiny_sdxl`) and save it as a diffusers folder at ``path``."""
    return save_sdxl_folder(path, **build_tiny_sdxl(preset, seed))
