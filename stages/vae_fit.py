"""Fit a small ``AutoencoderKL`` to a set of images, so a randomly initialised base can encode and decode them.

A tiny SDXL-architecture base (:mod:`ttdnet.models.tiny_sdxl`) starts with random weights: its VAE decodes
any latent to noise, so nothing trained on top of it could show an image. :func:`fit_vae` trains the VAE as a
regularised autoencoder, without the adversarial and perceptual terms that a few hundred steps on a CPU cannot
use::

    loss = mean((decode(μ(x)) − x)²) + kl_weight · mean(KL(q(z | x) ‖ N(0, I)))

with ``μ(x)`` the posterior mean. The decoder sees the mean, not a sample: training (the latent cache) and
generation only ever use latent means, and a short fit converges much faster without the sampling noise. Then
the latent **scaling factor** is set to ``1 / std`` of the latent means over the images, the rule Stable
Diffusion used to choose 0.18215, so the diffusion model sees latents of unit variance.
"""

import dataclasses
import math

import torch
from torch import nn

from ttdnet.errors import TtdnetError


@dataclasses.dataclass(frozen=True)
class VaeFit:
    """What :func:`fit_vae` did.

    Attributes
    ----------
    losses : list of float
        Training loss per step.
    reconstruction_psnr : float
        PSNR in dB of the fitted VAE's reconstructions (posterior means, images in [-1, 1] mapped to [0, 1]).
    scaling_factor : float
        ``1 / std`` of the latent means, written to ``vae.config.scaling_factor``.
    """

    losses: list[float]
    reconstruction_psnr: float
    scaling_factor: float


def reconstruction_psnr(vae: nn.Module, images: torch.Tensor, batch_size: int = 64) -> float:
    """PSNR in dB of ``decode(mean of q(z | x))`` against ``images`` ``(N, 3, H, W)`` in [-1, 1]."""
    squared_error, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            batch = images[start : start + batch_size]
            decoded = vae.decode(vae.encode(batch).latent_dist.mean).sample.clamp(-1, 1)
            squared_error += float(((decoded - batch) / 2).pow(2).sum())
            count += batch.numel()
    mse = squared_error / count
    return float("inf") if mse == 0 else 10.0 * math.log10(1.0 / mse)


def latent_std(vae: nn.Module, images: torch.Tensor, batch_size: int = 64) -> float:
    """Standard deviation of all latent-mean values of ``images`` ``(N, 3, H, W)``."""
    with torch.no_grad():
        means = [
            vae.encode(images[start : start + batch_size]).latent_dist.mean
            for start in range(0, len(images), batch_size)
        ]
    return float(torch.cat(means).float().std())


def fit_vae(
    vae: nn.Module,
    images: torch.Tensor,
    steps: int,
    batch_size: int = 32,
    learning_rate: float = 1e-3,
    kl_weight: float = 1e-6,
    seed: int = 0,
    progress: bool = True,
) -> VaeFit:
    """Train ``vae`` in place on ``images`` and set its latent scaling factor.

    Parameters
    ----------
    vae : diffusers.AutoencoderKL
        On the CPU or a device, in float32; trained in place and left in evaluation mode.
    images : torch.Tensor
        ``(N, 3, H, W)`` float in [-1, 1], on the VAE's device.
    steps : int
        Optimiser steps (AdamW, cosine decay to zero); each draws a batch without replacement within an epoch.
    batch_size : int
        Images per step.
    learning_rate : float
        Peak learning rate.
    kl_weight : float
        Weight of the KL term (per latent element) against the per-pixel MSE.
    seed : int
        Seeds the batch order.
    progress : bool
        Show a progress bar.

    Returns
    -------
    VaeFit
    """
    from diffusers.optimization import get_cosine_schedule_with_warmup
    from tqdm.auto import tqdm

    if steps < 1 or batch_size < 1:
        raise TtdnetError(f"the VAE fit needs steps >= 1 and batch_size >= 1, got {steps} and {batch_size}")
    if images.ndim != 4 or images.shape[1] != 3 or len(images) == 0:
        raise TtdnetError(f"the VAE fit needs images of shape (N, 3, H, W) with N >= 1, got {tuple(images.shape)}")
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(vae.parameters(), lr=learning_rate, weight_decay=0.0)
    schedule = get_cosine_schedule_with_warmup(
        optimizer, num_warmup_steps=min(20, steps // 10), num_training_steps=steps
    )
    vae.train()
    order, position, losses = torch.randperm(len(images), generator=generator), 0, []
    for _ in tqdm(range(steps), desc="VAE fit", unit="step", disable=not progress):
        if position + batch_size > len(order):
            order, position = torch.randperm(len(images), generator=generator), 0
        batch = images[order[position : position + batch_size].to(images.device)]
        position += batch_size
        posterior = vae.encode(batch).latent_dist
        decoded = vae.decode(posterior.mean).sample
        kl_per_element = posterior.kl().mean() / posterior.mean[0].numel()
        loss = torch.nn.functional.mse_loss(decoded, batch) + kl_weight * kl_per_element
        if not torch.isfinite(loss):
            raise TtdnetError(
                f"the VAE fit diverged at step {len(losses) + 1} (loss {loss.item()}); lower --vae_learning_rate"
            )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
    vae.eval()
    scaling_factor = 1.0 / latent_std(vae, images)
    vae.register_to_config(scaling_factor=scaling_factor)
    return VaeFit(losses=losses, reconstruction_psnr=reconstruction_psnr(vae, images), scaling_factor=scaling_factor)
