"""Pixel metrics and LPIPS against skimage, numpy and the lpips package, with the pinned settings."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from skimage.color import rgb2gray
from skimage.metrics import structural_similarity

from ttdnet.eval import pixels
from ttdnet.eval.backbones import build_lpips
from ttdnet.eval.images import ResizeSpec, to_float


def pair(seed, size=48):
    rng = np.random.default_rng(seed)
    gt = rng.random((2, 3, size, size)).astype(np.float32)
    rec = np.clip(gt + 0.15 * rng.standard_normal(gt.shape), 0, 1).astype(np.float32)
    return torch.from_numpy(gt), torch.from_numpy(rec)


def test_mindeye_ssim_matches_skimage_with_pinned_settings():
    gt, rec = pair(0, size=60)
    resize = ResizeSpec(50, "bilinear", antialias=False)
    gt_r, rec_r = resize(gt), resize(rec)
    ours = pixels.ssim_pairs(pixels.rgb_to_gray(rec_r), pixels.rgb_to_gray(gt_r), pixels.SSIM_MINDEYE)
    for b in range(2):
        # The reference: torch resize (pinned), skimage rgb2gray on HWC, skimage SSIM with MindEye's arguments.
        ref_gt = F.interpolate(gt[b : b + 1], size=(50, 50), mode="bilinear", align_corners=False, antialias=False)[0]
        ref_rec = F.interpolate(rec[b : b + 1], size=(50, 50), mode="bilinear", align_corners=False, antialias=False)[
            0
        ]
        expected = structural_similarity(
            rgb2gray(ref_rec.permute(1, 2, 0).numpy().astype(np.float64)),
            rgb2gray(ref_gt.permute(1, 2, 0).numpy().astype(np.float64)),
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
            data_range=1.0,
        )
        assert ours[b].item() == pytest.approx(expected, abs=2e-6)


def test_rgb_ssim_matrix_matches_skimage_defaults():
    gt, rec = pair(1)
    matrix = pixels.ssim_matrix(rec, gt, pixels.SSIM_DEFAULT, chunk=1)
    for i in range(2):
        for j in range(2):
            expected = structural_similarity(
                rec[i].permute(1, 2, 0).numpy().astype(np.float64),
                gt[j].permute(1, 2, 0).numpy().astype(np.float64),
                channel_axis=-1,
                data_range=1.0,
            )
            assert matrix[i, j].item() == pytest.approx(expected, abs=2e-6)
    assert pixels.ssim_pairs(gt, gt, pixels.SSIM_DEFAULT).tolist() == pytest.approx([1.0, 1.0], abs=1e-6)


def test_pearson_and_mse_match_numpy():
    gt, rec = pair(2)
    r = pixels.pearson_pairs(rec, gt).numpy()
    for b in range(2):
        assert r[b] == pytest.approx(np.corrcoef(rec[b].numpy().ravel(), gt[b].numpy().ravel())[0, 1], abs=1e-12)
    mse, pcc = pixels.mse_and_pearson_matrices(rec, gt, width=1000)  # 7 slices, the last short
    for i in range(2):
        for j in range(2):
            a = rec[i].numpy().astype(np.float64).ravel()
            b = gt[j].numpy().astype(np.float64).ravel()
            assert mse[i, j].item() == pytest.approx(np.mean((a - b) ** 2), abs=1e-12)
            assert pcc[i, j].item() == pytest.approx(np.corrcoef(a, b)[0, 1], abs=1e-12)


def test_resize_is_explicit_about_antialias():
    image = to_float(np.random.default_rng(3).integers(0, 256, (1, 64, 64, 3), dtype=np.uint8))
    plain = ResizeSpec(16, "bilinear", antialias=False)(image)
    smooth = ResizeSpec(16, "bilinear", antialias=True)(image)
    assert plain.shape == smooth.shape == (1, 3, 16, 16)
    assert not torch.allclose(plain, smooth)
    expected = F.interpolate(image, size=(16, 16), mode="bilinear", align_corners=False, antialias=False)
    assert torch.equal(plain, expected)
    assert ResizeSpec(16).describe()["antialias"] is False


def test_uint8_is_converted_before_arithmetic():
    a = np.zeros((1, 4, 4, 3), dtype=np.uint8)
    b = np.full((1, 4, 4, 3), 255, dtype=np.uint8)
    mse, _ = pixels.mse_and_pearson_matrices(to_float(a), to_float(b))
    assert mse.item() == pytest.approx(1.0)  # uint8 subtraction would wrap to 1 (= 1/255**2 scaled)


def test_lpips_embedding_distance_equals_lpips_forward():
    torch.manual_seed(0)
    backbone, model = build_lpips(None, random_weights=True)
    gt, rec = pair(4, size=64)
    u_rec = torch.from_numpy(backbone(rec)["lpips"])
    u_gt = torch.from_numpy(backbone(gt)["lpips"])
    assert u_rec.shape[1] > 3 * 1000  # several float64 slices, the last one short
    ours = pixels.squared_distance_matrix(u_rec, u_gt, width=1000)
    with torch.no_grad():
        for i in range(2):
            for j in range(2):
                expected = model(rec[i : i + 1], gt[j : j + 1], normalize=True).item()
                assert ours[i, j].item() == pytest.approx(expected, rel=1e-4, abs=1e-6)


def skimage_rgb_ssim(a: torch.Tensor, b: torch.Tensor) -> float:
    """skimage's defaults (7x7 uniform window, sample covariance) on HWC float64, the reference."""
    return structural_similarity(
        a.permute(1, 2, 0).numpy().astype(np.float64),
        b.permute(1, 2, 0).numpy().astype(np.float64),
        channel_axis=-1,
        data_range=1.0,
    )


@pytest.mark.parametrize("compiled", [False, True])
def test_the_batched_rgb_ssim_matrix_equals_skimage_on_every_pair(compiled):
    rng = np.random.default_rng(5)
    gt = torch.from_numpy(rng.random((5, 3, 40, 36)).astype(np.float32))
    rec = torch.from_numpy(np.clip(gt.numpy()[[1, 0, 3]] + 0.2 * rng.standard_normal((3, 3, 40, 36)), 0, 1)).float()
    statistics = pixels.ssim_statistics(gt, pixels.SSIM_DEFAULT)  # reused, as the suite reuses the ground truth's
    matrix = pixels.ssim_matrix(rec, statistics, pixels.SSIM_DEFAULT, chunk=2, compiled=compiled)  # 2 + 2 + 1 padded
    expected = np.array([[skimage_rgb_ssim(rec[i], gt[j]) for j in range(5)] for i in range(3)])
    np.testing.assert_allclose(matrix.double().numpy(), expected, rtol=0, atol=1e-6)
    assert [int(row.argmax()) for row in matrix] == [1, 0, 3]


def test_a_compiler_failure_falls_back_to_the_same_numbers(monkeypatch, caplog):
    def broken(function, **kwargs):
        def fail(*args):
            raise RuntimeError("no C++ compiler found\nsecond line")

        return fail

    kernel = pixels._PairKernel()
    monkeypatch.setattr(pixels, "_PAIR_KERNEL", kernel)
    monkeypatch.setattr(torch, "compile", broken)
    gt, rec = pair(6, size=24)
    reference = pixels.ssim_matrix(rec, gt, pixels.SSIM_DEFAULT, compiled=False)
    with caplog.at_level("WARNING"):
        result = pixels.ssim_matrix(rec, gt, pixels.SSIM_DEFAULT, compiled=True)
    assert torch.equal(result, reference) and kernel.failed
    assert "torch.compile failed: no C++ compiler found" in caplog.text and "second line" not in caplog.text


def test_a_resized_constant_image_has_an_undefined_correlation():
    constant = to_float(np.full((1, 32, 32, 3), 137, dtype=np.uint8))
    resized = ResizeSpec(48, "bilinear", antialias=True)(constant)
    assert 0 < float(resized.std()) < 1e-6  # rounding noise, not structure
    other = to_float(np.random.default_rng(8).integers(0, 256, (1, 32, 32, 3), dtype=np.uint8))
    other = ResizeSpec(48, "bilinear", antialias=True)(other)
    assert torch.isnan(pixels.pearson_pairs(resized, other)).all()
    _, pcc = pixels.mse_and_pearson_matrices(torch.cat([resized, other]), torch.cat([other, resized]))
    assert torch.isnan(pcc[0]).all() and torch.isnan(pcc[:, 1]).all() and not torch.isnan(pcc[1, 0])
    one_level = to_float(np.full((1, 32, 32, 3), 137, dtype=np.uint8))
    one_level[0, 0, 0, 0] += 1 / 255  # one pixel, one level: a real (tiny) structure stays defined
    assert not torch.isnan(pixels.pearson_pairs(one_level, other[:, :, :32, :32])).any()


def test_the_rgb_ssim_matrix_equals_skimage_at_the_evaluation_size():
    """At 512² float32 cancellation in the local variances would cost about 2e-6; the shifted statistics do not."""
    rng = np.random.default_rng(9)
    smooth = F.interpolate(torch.from_numpy(rng.random((3, 3, 8, 8))).float(), size=(512, 512), mode="bicubic")
    noisy = (smooth[:2] + 0.08 * torch.from_numpy(rng.standard_normal((2, 3, 512, 512))).float()).clamp(0, 1)
    flat = torch.full((1, 3, 512, 512), 0.8)
    flat[..., 100:300, 100:300] = smooth[2:, :, 100:300, 100:300]
    flat = (flat + 0.002 * torch.from_numpy(rng.standard_normal(flat.shape)).float()).clamp(0, 1)
    images = torch.cat([noisy, flat])
    matrix = pixels.ssim_matrix(images, images, pixels.SSIM_DEFAULT, compiled=False)
    expected = np.array([[skimage_rgb_ssim(a, b) for b in images] for a in images])
    np.testing.assert_allclose(matrix.double().numpy(), expected, rtol=0, atol=1e-6)
