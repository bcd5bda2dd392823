"""EEG augmentation for retrieval training: temporal Gaussian smoothing of a random subset of samples.

As in SUPA-EEG: each sample is smoothed with probability ``smooth_prob`` (``docs/retrieval.md``,
"Augmentation").
"""

import torch
import torch.nn.functional as F

from ttdnet.errors import ConfigError


def gaussian_kernel(size: int, sigma: float) -> torch.Tensor:
    """Normalised 1-D Gaussian kernel of odd ``size``, shape (size,)."""
    if size < 1 or size % 2 == 0:
        raise ConfigError(f"the smoothing kernel size (smooth_kernel) must be odd and positive, got {size}")
    offsets = torch.arange(size, dtype=torch.float32) - size // 2
    kernel = torch.exp(-(offsets**2) / (2 * sigma * sigma))
    return kernel / kernel.sum()


def gaussian_smooth(
    eeg: torch.Tensor, probability: float, size: int = 5, sigma: float = 1.0, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Temporal Gaussian smoothing of a random subset of samples (SUPA-EEG augmentation).

    Each sample is smoothed with probability ``probability``: a per-channel ``conv1d`` with the normalised
    kernel and zero padding ``size // 2`` (same length).

    Parameters
    ----------
    eeg : torch.Tensor, shape (B, C, T)

    Returns
    -------
    torch.Tensor, shape (B, C, T)
    """
    if probability <= 0:
        return eeg
    b, c, t = eeg.shape
    kernel = gaussian_kernel(size, sigma).to(eeg.device, eeg.dtype).view(1, 1, size)
    smoothed = F.conv1d(eeg.reshape(b * c, 1, t), kernel, padding=size // 2).reshape(b, c, t)
    chosen = torch.rand(b, 1, 1, device=eeg.device, generator=generator) < probability
    return torch.where(chosen, smoothed, eeg)
