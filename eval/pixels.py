"""Pixel-level scores in torch: Pearson correlation, MSE and SSIM, for aligned pairs and for all pairs.

SSIM follows :func:`skimage.metrics.structural_similarity` exactly: the local statistics are filtered
with the window, the SSIM map is cropped by ``(win_size − 1) // 2`` on each side (so the border mode
never matters: a "valid" convolution gives the same interior), and the crop is averaged over pixels and
channels. Two configurations are used (defined in ``docs/evaluation.md``):

* ``SSIM_MINDEYE``: 11×11 Gaussian window (σ = 1.5, truncate 3.5), population covariance, on grayscale;
* ``SSIM_DEFAULT``: 7×7 uniform window with sample covariance, on RGB (skimage defaults).
"""

import dataclasses
import logging
import math

import torch


GRAY_WEIGHTS = (0.2125, 0.7154, 0.0721)  # skimage.color.rgb2gray

logger = logging.getLogger(__name__)


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


def window_taps(settings: SsimSettings) -> tuple[float, ...]:
    """The 1-D weights of the separable SSIM window (they sum to 1; the 2-D window is their outer product)."""
    side = settings.window_side
    if not settings.gaussian_weights:
        return (1.0 / side,) * side
    radius = side // 2
    weights = [math.exp(-0.5 * (offset / settings.sigma) ** 2) for offset in range(-radius, radius + 1)]
    return tuple(weight / sum(weights) for weight in weights)


def window_filter(x: torch.Tensor, taps: tuple[float, ...]) -> torch.Tensor:
    """The window's 'valid' correlation over the last two axes: ``(..., H, W)`` → ``(..., H − k + 1, W − k + 1)``.

    Written as weighted sums of shifted views (first down the rows, then along them), which a compiler fuses
    into one loop with the arithmetic around it.
    """
    k = len(taps)
    height, width = x.shape[-2] - k + 1, x.shape[-1] - k + 1
    uniform = len(set(taps)) == 1
    rows = x[..., 0:height, :] if uniform else taps[0] * x[..., 0:height, :]
    for offset in range(1, k):
        shifted = x[..., offset : offset + height, :]
        rows = rows + (shifted if uniform else taps[offset] * shifted)
    out = rows[..., :, 0:width] if uniform else taps[0] * rows[..., :, 0:width]
    for offset in range(1, k):
        shifted = rows[..., :, offset : offset + width]
        out = out + (shifted if uniform else taps[offset] * shifted)
    return out * (taps[0] * taps[0]) if uniform else out


@dataclasses.dataclass(frozen=True)
class SsimStatistics:
    """What SSIM needs of each image on its own, computed once per image whatever it is compared with.

    Every local statistic is taken of the image minus half its data range (:func:`_shift`). SSIM is
    unchanged by that shift (its local means are restored by adding it back), but the variances and
    covariances lose most of their float32 cancellation: at 512² the scores then agree with scikit-image's
    float64 to better than 1e-6 instead of 2e-6. A constant shift, not each image's own mean, keeps the
    compiled pair loop free of per-image scalars, which would split it in two (30% slower).

    Attributes
    ----------
    centred : torch.Tensor
        ``(B, C, H, W)``: the images minus the shift.
    centred_mean : torch.Tensor
        ``(B, C, H − k + 1, W − k + 1)``: the window-filtered ``centred``.
    variance : torch.Tensor
        Same shape: the window-filtered variance (times ``NP / (NP − 1)`` for the sample covariance).
    """

    centred: torch.Tensor
    centred_mean: torch.Tensor
    variance: torch.Tensor

    def __len__(self) -> int:
        return len(self.centred)

    def tensors(self) -> tuple[torch.Tensor, ...]:
        """The fields in order, as :func:`_ssim_of_pairs` takes them (no copies)."""
        return self.centred, self.centred_mean, self.variance

    def rows(self, index: slice | torch.Tensor) -> "SsimStatistics":
        return SsimStatistics(*(field[index] for field in self.tensors()))


def ssim_statistics(images: torch.Tensor, settings: SsimSettings) -> SsimStatistics:
    """The per-image local means and variances of ``images`` (``(B, C, H, W)``, values in ``[0, data_range]``)."""
    _check(images, settings)
    taps = window_taps(settings)
    centred = images - _shift(settings)
    centred_mean = window_filter(centred, taps)
    variance = _cov_norm(settings) * (window_filter(centred * centred, taps) - centred_mean * centred_mean)
    return SsimStatistics(centred, centred_mean, variance)


def _shift(settings: SsimSettings) -> float:
    """What :func:`ssim_statistics` subtracts from every pixel: half the data range."""
    return settings.data_range / 2


def _cov_norm(settings: SsimSettings) -> float:
    n = settings.window_side**2
    return n / (n - 1) if settings.use_sample_covariance else 1.0


def _ssim_of_pairs(x, x_local, var_x, y, y_local, var_y, taps, c1, c2, cov_norm, shift):
    """Mean SSIM of one image's statistics against each of another set's, broadcast: ``(B,)``.

    The arguments are the fields of two :class:`SsimStatistics` (``(1 or B, ...)`` each) and the
    :func:`_constants`. Only the cross term ``window(x·y)`` depends on the pair.
    """
    mean_x, mean_y = x_local + shift, y_local + shift
    covariance = cov_norm * (window_filter(x * y, taps) - x_local * y_local)
    numerator = (2 * mean_x * mean_y + c1) * (2 * covariance + c2)
    denominator = (mean_x * mean_x + mean_y * mean_y + c1) * (var_x + var_y + c2)
    # Reduced over the map's own axes: flattening the cropped (non-contiguous) map first would index it by
    # division and remainder, which the compiler cannot vectorise (1.5x slower compiled).
    return (numerator / denominator).mean(dim=(1, 2, 3))


class _PairKernel:
    """:func:`_ssim_of_pairs`, compiled with :func:`torch.compile` into one fused loop for large jobs.

    Unfused, the per-pair arithmetic makes a dozen passes over memory; fused it makes one, several times
    faster on a CPU (``benchmarks/eval.py`` prints both). Compiling costs tens of seconds once per process
    (less with torch's on-disk cache), so small jobs run the same function uncompiled. Where compilation is
    impossible (no C++ compiler) the job runs uncompiled, with one warning; the numbers are the same.
    """

    def __init__(self):
        self.compiled = None
        self.failed = False

    def __call__(self, use_compiled: bool, *args):
        if not use_compiled or self.failed:
            return _ssim_of_pairs(*args)
        if self.compiled is None:
            self.compiled = torch.compile(_ssim_of_pairs, dynamic=False)
        try:
            return self.compiled(*args)
        except Exception as error:  # a missing or broken compiler: the uncompiled function gives the same numbers
            self.failed = True
            logger.warning("SSIM runs uncompiled (slower): torch.compile failed: %s", str(error).splitlines()[0])
            return _ssim_of_pairs(*args)


_PAIR_KERNEL = _PairKernel()

COMPILE_MIN_PIXEL_PAIRS = 4_000_000_000
"""Pairs × pixels from which :func:`ssim_matrix` compiles its kernel (about 5,000 pairs at 3 × 512²).

On 2 CPU cores a first compilation takes about 15 s and saves about 2.5 ms a pair at 3 × 512², so it pays
from a few thousand pairs (``benchmarks/eval.py`` prints both paths).
"""


def _check(images: torch.Tensor, settings: SsimSettings) -> None:
    if images.ndim != 4 or min(images.shape[-2:]) < settings.window_side:
        raise ValueError(
            f"SSIM needs (B, C, H, W) images of at least {settings.window_side} px, got {tuple(images.shape)}"
        )


def _constants(settings: SsimSettings) -> tuple:
    return (
        window_taps(settings),
        (settings.k1 * settings.data_range) ** 2,
        (settings.k2 * settings.data_range) ** 2,
        _cov_norm(settings),
        _shift(settings),
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
    a, b = ssim_statistics(x, settings), ssim_statistics(y, settings)
    return _ssim_of_pairs(*a.tensors(), *b.tensors(), *_constants(settings))


def ssim_matrix(
    rec: torch.Tensor | SsimStatistics,
    gt: torch.Tensor | SsimStatistics,
    settings: SsimSettings,
    chunk: int | None = None,
    compiled: bool | None = None,
) -> torch.Tensor:
    """SSIM of every reconstruction against every ground truth.

    Parameters
    ----------
    rec : torch.Tensor or SsimStatistics
        ``(B, C, H, W)`` images, or their :func:`ssim_statistics`.
    gt : torch.Tensor or SsimStatistics
        ``(N, C, H, W)``; pass the statistics to reuse them across calls (they are the per-image work).
    settings : SsimSettings
    chunk : int, optional
        Ground truths compared with one reconstruction per kernel call. Default 1 on a CPU, where one pair's
        intermediate maps stay in cache (several times faster than 8 at 512²), 8 on other devices.
    compiled : bool, optional
        Run the fused kernel (see :class:`_PairKernel`); None decides by size (:data:`COMPILE_MIN_PIXEL_PAIRS`).

    Returns
    -------
    torch.Tensor
        ``(B, N)``; entry ``[b, n] = SSIM(rec[b], gt[n])``, equal to :func:`ssim_pairs` on that pair.
    """
    rec = rec if isinstance(rec, SsimStatistics) else ssim_statistics(rec, settings)
    gt = gt if isinstance(gt, SsimStatistics) else ssim_statistics(gt, settings)
    if compiled is None:
        compiled = len(rec) * len(gt) * rec.centred[0].numel() >= COMPILE_MIN_PIXEL_PAIRS
    constants = _constants(settings)
    out = torch.empty(len(rec), len(gt), dtype=rec.centred.dtype, device=rec.centred.device)
    if chunk is None:
        chunk = 1 if rec.centred.device.type == "cpu" else 8
    chunk = min(chunk, len(gt))
    for start in range(0, len(gt), chunk):
        stop = min(start + chunk, len(gt))
        if stop - start == chunk:
            y = gt.rows(slice(start, stop))
        else:  # the last chunk is padded to the full size so that the compiled kernel sees one shape
            y = gt.rows(torch.arange(start, start + chunk, device=gt.centred.device).clamp_(max=len(gt) - 1))
        for b in range(len(rec)):
            x = rec.rows(slice(b, b + 1))
            scores = _PAIR_KERNEL(compiled, *x.tensors(), *y.tensors(), *constants)
            out[b, start:stop] = scores[: stop - start]
    return out


CONSTANT_RMS = 1e-6
"""An image (or flattened vector) whose values deviate from their mean by less than this RMS is constant.

Resizing a constant image in float32 leaves a spread of about 1e-7 (rounding); one pixel of a 512 × 512
8-bit image that differs by one level gives about 8e-6. Below the threshold Pearson r is undefined (NaN)
rather than a correlation of rounding noise.
"""


def _constant(centred_norms: torch.Tensor, dim: int) -> torch.Tensor:
    """Which rows are constant (:data:`CONSTANT_RMS`), from the norms of the mean-centred ``dim``-value rows."""
    return centred_norms <= CONSTANT_RMS * dim**0.5


def _unit_centred(rows: torch.Tensor) -> torch.Tensor:
    """Float64 rows centred and scaled to unit norm; NaN rows for constant ones (:data:`CONSTANT_RMS`)."""
    unit = rows - rows.mean(dim=1, keepdim=True)
    norms = unit.norm(dim=1, keepdim=True)
    unit /= norms
    unit[_constant(norms[:, 0], rows.shape[1])] = float("nan")
    return unit


def pearson_pairs(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Pearson correlation of aligned, flattened pairs in float64.

    Parameters
    ----------
    x, y : torch.Tensor
        ``(B, ...)`` each.

    Returns
    -------
    torch.Tensor
        float64 ``(B,)``; NaN where either image is constant (:data:`CONSTANT_RMS`).
    """
    return (_unit_centred(x.flatten(1).double()) * _unit_centred(y.flatten(1).double())).sum(dim=1)


SLICE_WIDTH = 16_384
"""Columns converted to float64 at a time by the matrix functions below.

Converting a (N, D) float32 matrix to float64 whole, once per batch of reconstructions, costs more than the
products; a slice of N × 16,384 values is converted, used and dropped (about 4x faster at D = 2.65M).
"""


def _float64_gram(
    a: torch.Tensor, b: torch.Tensor, shift_a: torch.Tensor | None, shift_b: torch.Tensor | None, width: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(a − shift_a)·(b − shift_b)ᵀ`` and both sides' squared row norms, in float64, a slice of columns at a time.

    Parameters
    ----------
    a, b : torch.Tensor
        ``(B, D)`` and ``(N, D)``.
    shift_a, shift_b : torch.Tensor or None
        float64 ``(B,)`` and ``(N,)``: subtracted from each row (its mean, for Pearson r), or nothing.
    width : int
        Columns per slice.

    Returns
    -------
    gram : torch.Tensor
        float64 ``(B, N)``.
    a_sq, b_sq : torch.Tensor
        float64 ``(B,)`` and ``(N,)``: ``‖a_i − shift_a_i‖²`` and ``‖b_j − shift_b_j‖²``.
    """
    gram = torch.zeros(len(a), len(b), dtype=torch.float64, device=a.device)
    a_sq = torch.zeros(len(a), dtype=torch.float64, device=a.device)
    b_sq = torch.zeros(len(b), dtype=torch.float64, device=a.device)
    for start in range(0, a.shape[1], width):
        x = a[:, start : start + width].double()
        y = b[:, start : start + width].double()
        if shift_a is not None:  # out of place: .double() of a float64 input is the input itself
            x = x - shift_a[:, None]
            y = y - shift_b[:, None]
        gram += x @ y.T
        a_sq += (x * x).sum(dim=1)
        b_sq += (y * y).sum(dim=1)
    return gram, a_sq, b_sq


def _row_means(rows: torch.Tensor, width: int) -> torch.Tensor:
    """float64 ``(B,)`` means of ``(B, D)`` rows, summed a slice of columns at a time."""
    total = torch.zeros(len(rows), dtype=torch.float64, device=rows.device)
    for start in range(0, rows.shape[1], width):
        total += rows[:, start : start + width].double().sum(dim=1)
    return total / rows.shape[1]


def mse_and_pearson_matrices(
    rec: torch.Tensor, gt: torch.Tensor, width: int = SLICE_WIDTH
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean squared error and Pearson r of every reconstruction against every ground truth, in float64.

    Both come from one product of mean-centred rows: with ``r_c = r − r̄`` and ``g_c = g − ḡ``,
    ``Pearson = r_c·g_c / (‖r_c‖‖g_c‖)`` and ``MSE = (‖r_c‖² + ‖g_c‖² − 2 r_c·g_c) / D + (r̄ − ḡ)²``.

    Parameters
    ----------
    rec : torch.Tensor
        ``(B, ...)``.
    gt : torch.Tensor
        ``(N, ...)`` with the same trailing shape.
    width : int
        Values per image converted to float64 at a time (:data:`SLICE_WIDTH`).

    Returns
    -------
    mse : torch.Tensor
        float64 ``(B, N)``: ``mean((rec_b − gt_n)²)``.
    pearson : torch.Tensor
        float64 ``(B, N)``; NaN where either image is constant (:data:`CONSTANT_RMS`).
    """
    if rec.shape[1:] != gt.shape[1:]:
        raise ValueError(
            f"rec and gt must have the same shape per image, got {tuple(rec.shape[1:])} and {tuple(gt.shape[1:])}"
        )
    r, g = rec.flatten(1), gt.flatten(1)
    dim = r.shape[1]
    r_mean, g_mean = _row_means(r, width), _row_means(g, width)
    gram, r_sq, g_sq = _float64_gram(r, g, r_mean, g_mean, width)
    mse = ((r_sq[:, None] + g_sq[None, :] - 2.0 * gram) / dim + (r_mean[:, None] - g_mean[None, :]) ** 2).clamp_(
        min=0.0
    )
    r_norm, g_norm = r_sq.sqrt(), g_sq.sqrt()
    pearson = gram / (r_norm[:, None] * g_norm[None, :])
    pearson[_constant(r_norm, dim)] = float("nan")
    pearson[:, _constant(g_norm, dim)] = float("nan")
    return mse, pearson


def squared_distance_matrix(a: torch.Tensor, b: torch.Tensor, width: int = SLICE_WIDTH) -> torch.Tensor:
    """``‖a_i − b_j‖²`` for all rows in float64: ``(B, D)`` × ``(N, D)`` → ``(B, N)``.

    ``width`` values per row are converted to float64 at a time (:data:`SLICE_WIDTH`).
    """
    gram, a_sq, b_sq = _float64_gram(a, b, None, None, width)
    return (a_sq[:, None] + b_sq[None, :] - 2.0 * gram).clamp_(min=0.0)
