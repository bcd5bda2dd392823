"""Pixel-level scores in torch: Pearson correlation, MSE and SSIM, for aligned pairs and for all pairs.

SSIM follows :func:`skimage.metrics.structural_similarity` exactly: the local statistics are filtered
with the window, the SSIM map is cropped by ``(win_size − 1) // 2`` on each side (so the border mode
never matters: a "valid" convolution gives the same interior), and the crop is averaged over pixels and
channels. Two configurations are used (defined in ``docs/evaluation.md``):

* ``SSIM_MINDEYE``: 11×11 Gaussian window (σ = 1.5, truncate 3.5), population covariance, on grayscale;
* ``SSIM_DEFAULT``: 7×7 uniform window with sample covariance, on RGB (skimage defaults).
"""

import dataclasses

import torch
import torch.nn.functional as F


GRAY_WEIGHTS = (0.2125, 0.7154, 0.0721)  # skimage.color.rgb2gray


@dataclasses.dataclass(frozen=True)
class SsimSettings:
    """The skimage ``structural_similarity`` arguments that change the number.

    Attributes
    ----------
    gaussian_weights : bool
        Gaussian window (σ = ``sigma``, radius ``int(3.5·σ + 0.5)``) instead of a ``win_size`` uniform one.
    sigma : float
    win_size : int
        Uniform window side (ignored for the Gaussian window, whose side is ``2·radius + 1``).
    use_sample_covariance : bool
        Scale variances by ``NP / (NP − 1)``, NP = window pixels.
    data_range : float
    k1, k2 : float
    """

    gaussian_weights: bool
    sigma: float = 1.5
    win_size: int = 7
    use_sample_covariance: bool = True
    data_range: float = 1.0
    k1: float = 0.01
    k2: float = 0.03

    @property
    def window_side(self) -> int:
        return 2 * int(3.5 * self.sigma + 0.5) + 1 if self.gaussian_weights else self.win_size

    def describe(self) -> dict[str, object]:
        return {
            "window": f"gaussian sigma={self.sigma} ({self.window_side}x{self.window_side})"
            if self.gaussian_weights
            else f"uniform {self.win_size}x{self.win_size}",
            "use_sample_covariance": self.use_sample_covariance,
            "data_range": self.data_range,
            "K1": self.k1,
            "K2": self.k2,
            "reference": "skimage.metrics.structural_similarity (map cropped by (win-1)//2, averaged)",
        }


SSIM_MINDEYE = SsimSettings(gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
SSIM_DEFAULT = SsimSettings(gaussian_weights=False, win_size=7, use_sample_covariance=True)


def rgb_to_gray(images: torch.Tensor) -> torch.Tensor:
    """``(B, 3, H, W)`` RGB to ``(B, 1, H, W)`` luminance with skimage's ``rgb2gray`` weights."""
    weights = torch.tensor(GRAY_WEIGHTS, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
    return (images * weights).sum(dim=1, keepdim=True)


def _band(size: int, kernel: torch.Tensor) -> torch.Tensor:
    """``(size − k + 1, size)`` matrix whose product with a signal is its 'valid' correlation with ``kernel``."""
    k = len(kernel)
    band = torch.zeros(size - k + 1, size, dtype=kernel.dtype, device=kernel.device)
    for row in range(size - k + 1):
        band[row, row : row + k] = kernel
    return band


def _window_filter(settings: SsimSettings, channels: int, dtype: torch.dtype, device: torch.device):
    """The window filter over the last two axes, 'valid' region only (``(H, W)`` → ``(H − w + 1, W − w + 1)``).

    The uniform window is an average pool; the Gaussian one is separable and applied as two products
    with banded matrices (exact, and much faster on CPU than a grouped convolution).
    """
    side = settings.window_side
    if not settings.gaussian_weights:
        return lambda x: F.avg_pool2d(x, side, stride=1)
    radius = side // 2
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float64)
    kernel = torch.exp(-0.5 * (offsets / settings.sigma) ** 2)
    kernel = (kernel / kernel.sum()).to(dtype=dtype, device=device)
    bands: dict[int, torch.Tensor] = {}

    def band(size: int) -> torch.Tensor:
        if size not in bands:
            bands[size] = _band(size, kernel)
        return bands[size]

    return lambda x: band(x.shape[-2]) @ x @ band(x.shape[-1]).T


class _Stats:
    """Filtered mean and variance of a batch: ``mu``, ``var`` of shape ``(B, C, H', W')``."""

    def __init__(self, images: torch.Tensor, settings: SsimSettings, filt):
        self.images = images
        self.mu = filt(images)
        cov_norm = _cov_norm(settings)
        self.var = cov_norm * (filt(images * images) - self.mu * self.mu)


def _cov_norm(settings: SsimSettings) -> float:
    n = settings.window_side**2
    return n / (n - 1) if settings.use_sample_covariance else 1.0


def _ssim_from_stats(x: _Stats, y: _Stats, settings: SsimSettings, filt) -> torch.Tensor:
    c1 = (settings.k1 * settings.data_range) ** 2
    c2 = (settings.k2 * settings.data_range) ** 2
    cov = _cov_norm(settings) * (filt(x.images * y.images) - x.mu * y.mu)
    numerator = (2 * x.mu * y.mu + c1) * (2 * cov + c2)
    denominator = (x.mu * x.mu + y.mu * y.mu + c1) * (x.var + y.var + c2)
    return (numerator / denominator).flatten(1).mean(dim=1)


def _check(images: torch.Tensor, settings: SsimSettings) -> None:
    if images.ndim != 4 or min(images.shape[-2:]) < settings.window_side:
        raise ValueError(
            f"SSIM needs (B, C, H, W) images of at least {settings.window_side} px, got {tuple(images.shape)}"
        )


def ssim_pairs(x: torch.Tensor, y: torch.Tensor, settings: SsimSettings) -> torch.Tensor:
    """SSIM of aligned pairs.

    Parameters
    ----------
    x, y : torch.Tensor
        ``(B, C, H, W)``, values in ``[0, data_range]``.
    settings : SsimSettings

    Returns
    -------
    torch.Tensor
        ``(B,)``: mean SSIM over the cropped map and the channels (skimage ``channel_axis`` semantics).
    """
    _check(x, settings)
    filt = _window_filter(settings, x.shape[1], x.dtype, x.device)
    return _ssim_from_stats(_Stats(x, settings, filt), _Stats(y, settings, filt), settings, filt)


def ssim_matrix(rec: torch.Tensor, gt: torch.Tensor, settings: SsimSettings, chunk: int = 16) -> torch.Tensor:
    """SSIM of every reconstruction against every ground truth.

    Parameters
    ----------
    rec : torch.Tensor
        ``(B, C, H, W)``.
    gt : torch.Tensor
        ``(N, C, H, W)``.
    settings : SsimSettings
    chunk : int
        Ground truths processed together (memory: ``chunk`` SSIM maps).

    Returns
    -------
    torch.Tensor
        ``(B, N)``; entry ``[b, n] = SSIM(rec[b], gt[n])``, identical to :func:`ssim_pairs` on that pair.
    """
    _check(rec, settings)
    filt = _window_filter(settings, rec.shape[1], rec.dtype, rec.device)
    out = torch.empty(len(rec), len(gt), dtype=rec.dtype, device=rec.device)
    rec_stats = [_Stats(rec[b : b + 1], settings, filt) for b in range(len(rec))]
    for start in range(0, len(gt), chunk):
        gt_stats = _Stats(gt[start : start + chunk], settings, filt)
        for b, stats in enumerate(rec_stats):
            out[b, start : start + chunk] = _ssim_from_stats(stats, gt_stats, settings, filt)
    return out


def pearson_pairs(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Pearson correlation of aligned, flattened pairs in float64.

    Parameters
    ----------
    x, y : torch.Tensor
        ``(B, ...)`` each.

    Returns
    -------
    torch.Tensor
        float64 ``(B,)``.
    """
    x = x.flatten(1).double()
    y = y.flatten(1).double()
    x = x - x.mean(dim=1, keepdim=True)
    y = y - y.mean(dim=1, keepdim=True)
    return (x * y).sum(dim=1) / (x.norm(dim=1) * y.norm(dim=1))


def mse_and_pearson_matrices(
    rec: torch.Tensor, gt: torch.Tensor, chunk: int = 16
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean squared error and Pearson r of every reconstruction against every ground truth, in float64.

    Parameters
    ----------
    rec : torch.Tensor
        ``(B, ...)``.
    gt : torch.Tensor
        ``(N, ...)`` with the same trailing shape.
    chunk : int
        Ground truths converted to float64 at a time.

    Returns
    -------
    mse : torch.Tensor
        float64 ``(B, N)``: ``mean((rec_b − gt_n)²)``.
    pearson : torch.Tensor
        float64 ``(B, N)``.
    """
    r = rec.flatten(1).double()
    dim = r.shape[1]
    r_sq = (r * r).sum(dim=1, keepdim=True)
    r_centred = r - r.mean(dim=1, keepdim=True)
    r_unit = r_centred / r_centred.norm(dim=1, keepdim=True)
    mse = torch.empty(len(r), len(gt), dtype=torch.float64, device=rec.device)
    pearson = torch.empty_like(mse)
    for start in range(0, len(gt), chunk):
        g = gt[start : start + chunk].flatten(1).double()
        if g.shape[1] != dim:
            raise ValueError(
                f"rec and gt must have the same shape per image, got {tuple(rec.shape[1:])} and {tuple(gt.shape[1:])}"
            )
        g_sq = (g * g).sum(dim=1)
        mse[:, start : start + chunk] = ((r_sq + g_sq[None, :] - 2.0 * r @ g.T) / dim).clamp_(min=0.0)
        g_centred = g - g.mean(dim=1, keepdim=True)
        pearson[:, start : start + chunk] = r_unit @ (g_centred / g_centred.norm(dim=1, keepdim=True)).T
    return mse, pearson


def squared_distance_matrix(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``‖a_i − b_j‖²`` for all rows in float64: ``(B, D)`` × ``(N, D)`` → ``(B, N)``."""
    a = a.double()
    b = b.double()
    out = (a * a).sum(dim=1, keepdim=True) + (b * b).sum(dim=1)[None, :] - 2.0 * a @ b.T
    return out.clamp_(min=0.0)
