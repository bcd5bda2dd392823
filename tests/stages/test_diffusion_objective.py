"""The training noise schedule and targets, against the DDPM formulas written out here."""

import pytest
import torch

from ttdnet.models.tiny_sdxl import save_tiny_sdxl
from ttdnet.stages.diffusion_objective import diffusion_loss, noisy_latents_and_target, training_scheduler


@pytest.fixture(scope="module")
def scheduler(tmp_path_factory):
    return training_scheduler(str(save_tiny_sdxl(tmp_path_factory.mktemp("base") / "tiny")))


def alpha_bar(t: int) -> float:
    """SDXL's scaled-linear betas (0.00085 ... 0.012 over 1000 steps), cumulated: prod_{s<=t} (1 - beta_s)."""
    betas = torch.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=torch.float64) ** 2
    return float(torch.prod(1 - betas[: t + 1]))


def test_training_noise_is_the_ddpm_forward_process(scheduler):
    assert type(scheduler).__name__ == "DDPMScheduler" and scheduler.config.prediction_type == "epsilon"
    noise = torch.randn(3, 4, 8, 8)
    timesteps = torch.tensor([0, 499, 999])
    noisy, target = noisy_latents_and_target(scheduler, torch.zeros_like(noise), noise, timesteps)
    for i, t in enumerate(timesteps.tolist()):
        torch.testing.assert_close(noisy[i], (1 - alpha_bar(t)) ** 0.5 * noise[i], rtol=1e-5, atol=1e-6)
    assert torch.equal(target, noise)
    latents = torch.randn_like(noise)
    noisy, _ = noisy_latents_and_target(scheduler, latents, noise, timesteps)
    expected = alpha_bar(499) ** 0.5 * latents[1] + (1 - alpha_bar(499)) ** 0.5 * noise[1]
    torch.testing.assert_close(noisy[1], expected, rtol=1e-5, atol=1e-6)


def test_v_prediction_target_and_min_snr_weights(scheduler):
    from diffusers import DDPMScheduler

    v_scheduler = DDPMScheduler.from_config(scheduler.config, prediction_type="v_prediction")
    latents, noise = torch.randn(2, 4, 8, 8), torch.randn(2, 4, 8, 8)
    timesteps = torch.tensor([100, 800])
    _, target = noisy_latents_and_target(v_scheduler, latents, noise, timesteps)
    for i, t in enumerate(timesteps.tolist()):
        a = alpha_bar(t)
        torch.testing.assert_close(target[i], a**0.5 * noise[i] - (1 - a) ** 0.5 * latents[i], rtol=1e-5, atol=1e-5)
    prediction = torch.zeros_like(target)
    per_sample = (target**2).mean(dim=(1, 2, 3))
    snr = torch.tensor([alpha_bar(t) / (1 - alpha_bar(t)) for t in timesteps.tolist()])
    gamma = 5.0
    expected_v = (per_sample * torch.minimum(snr, torch.tensor(gamma)) / (snr + 1)).mean()
    assert diffusion_loss(prediction, target, v_scheduler, timesteps, gamma).item() == pytest.approx(
        expected_v.item(), rel=1e-4
    )
    expected_eps = (per_sample * torch.minimum(snr, torch.tensor(gamma)) / snr).mean()
    assert diffusion_loss(prediction, target, scheduler, timesteps, gamma).item() == pytest.approx(
        expected_eps.item(), rel=1e-4
    )
    assert diffusion_loss(prediction, target, scheduler, timesteps, None).item() == pytest.approx(
        per_sample.mean().item(), rel=1e-6
    )
