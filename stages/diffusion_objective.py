"""The denoising objective of Stage B, on the training noise schedule of the base model.

Training noise comes from a ``DDPMScheduler`` built from the base model's own scheduler config (as the
diffusers training examples do), never from an inference scheduler: ``add_noise(x, ε, t) =
sqrt(ᾱ_t)·x + sqrt(1 − ᾱ_t)·ε`` for the timestep ``t`` the UNet is given. The target follows the config's
``prediction_type``: the noise (``epsilon``) or the velocity ``sqrt(ᾱ_t)·ε − sqrt(1 − ᾱ_t)·x``
(``v_prediction``). Optional Min-SNR-γ weighting (Hang et al., 2023) re-weights timesteps by
``min(SNR_t, γ) / SNR_t`` (epsilon) or ``min(SNR_t, γ) / (SNR_t + 1)`` (v-prediction).
"""

import torch
import torch.nn.functional as F

from ttdnet.errors import ConfigError


def training_scheduler(pretrained_model_name_or_path: str, revision: str | None = None, cache_dir: str | None = None):
    """The ``DDPMScheduler`` of a base model's ``scheduler/`` config (hub id or local folder)."""
    from diffusers import DDPMScheduler

    return DDPMScheduler.from_pretrained(
        pretrained_model_name_or_path, subfolder="scheduler", revision=revision, cache_dir=cache_dir
    )


def noisy_latents_and_target(scheduler, latents: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor):
    """``(noisy_latents, target)`` for latents ``(B, C, h, w)``, noise of the same shape and int64 timesteps (B,)."""
    noisy = scheduler.add_noise(latents, noise, timesteps)
    prediction_type = scheduler.config.prediction_type
    if prediction_type == "epsilon":
        return noisy, noise
    if prediction_type == "v_prediction":
        return noisy, scheduler.get_velocity(latents, noise, timesteps)
    raise ConfigError(f"the base model's scheduler predicts {prediction_type!r}; supported: epsilon, v_prediction")


def diffusion_loss(
    prediction: torch.Tensor, target: torch.Tensor, scheduler, timesteps: torch.Tensor, snr_gamma: float | None
) -> torch.Tensor:
    """Mean squared error of the UNet's prediction, optionally Min-SNR-γ weighted per sample (float32)."""
    if snr_gamma is None:
        return F.mse_loss(prediction.float(), target.float())
    from diffusers.training_utils import compute_snr

    snr = compute_snr(scheduler, timesteps)
    clipped = torch.minimum(snr, torch.full_like(snr, snr_gamma))
    weights = clipped / (snr + 1 if scheduler.config.prediction_type == "v_prediction" else snr)
    per_sample = F.mse_loss(prediction.float(), target.float(), reduction="none").mean(dim=(1, 2, 3))
    return (per_sample * weights).mean()
