"""16-bit images are converted by bit depth: a 16-bit copy of an 8-bit image scores exactly like it."""

import json
import struct
import zlib

import numpy as np
import pytest
from eval_fixtures import noisy, smooth_image, write_image
from PIL import Image

from ttdnet.cli import main
from ttdnet.eval.images import read_image


def write_png16(path, array: np.ndarray) -> None:
    """A 16-bit PNG written byte by byte (grayscale ``(H, W)`` or RGB ``(H, W, 3)`` uint16), without PIL."""
    height, width = array.shape[:2]
    color_type = 2 if array.ndim == 3 else 0
    rows = b"".join(b"\x00" + row.astype(">u2").tobytes() for row in array)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 16, color_type, 0, 0, 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")
    )


def test_16_bit_grayscale_is_scaled_from_65535(tmp_path):
    values = np.array([[0, 1, 128, 257], [32767, 32896, 65280, 65535]], dtype=np.uint16)
    Image.fromarray(values).save(tmp_path / "gray16.png")  # numpy + PIL: a 16-bit grayscale PNG
    assert Image.open(tmp_path / "gray16.png").mode == "I;16"
    expected = (values.astype(np.int64) * 255 + 32767) // 65535  # round(v * 255 / 65535), integer arithmetic
    assert expected.tolist() == [[0, 0, 0, 1], [127, 128, 254, 255]]
    image = read_image(tmp_path / "gray16.png")
    assert image.dtype == np.uint8 and image.shape == (2, 4, 3)
    for channel in range(3):
        np.testing.assert_array_equal(image[:, :, channel], expected)


def test_16_bit_copies_read_as_the_8_bit_image(tmp_path):
    rng = np.random.default_rng(0)
    rgb8 = smooth_image(rng, 24)
    gray8 = rgb8[:, :, 0]
    Image.fromarray(gray8.astype(np.uint16) * 257).save(tmp_path / "gray16.png")
    write_png16(tmp_path / "rgb16.png", rgb8.astype(np.uint16) * 257)
    np.testing.assert_array_equal(read_image(tmp_path / "gray16.png"), np.repeat(gray8[:, :, None], 3, axis=2))
    np.testing.assert_array_equal(read_image(tmp_path / "rgb16.png"), rgb8)
    # The old reading clipped 16-bit values to 255: an almost white image.
    assert read_image(tmp_path / "gray16.png").mean() == pytest.approx(gray8.mean())
    assert gray8.mean() < 200


def test_a_16_bit_reconstruction_scores_as_its_8_bit_original(tmp_path, capsys):
    rng = np.random.default_rng(1)
    (tmp_path / "rec16").mkdir()
    truths, grays = [], []
    for i in range(4):
        truths.append(smooth_image(rng, 32))
        grays.append(noisy(rng, truths[-1], 0.1)[:, :, 1])
        write_image(tmp_path / "gt" / f"{i}.png", truths[-1])
        write_image(tmp_path / "rec8" / f"{i}.png", grays[-1])  # 8-bit grayscale PNG
        Image.fromarray(grays[-1].astype(np.uint16) * 257).save(tmp_path / "rec16" / f"{i}.png")
    documents = {}
    for name in ("rec8", "rec16"):
        argv = ["evaluate", "--ground_truth", str(tmp_path / "gt"), "--reconstructions", str(tmp_path / name),
                "--output_dir", str(tmp_path / f"out_{name}"), "--metrics", "pixcorr", "ssim", "mse",
                "--eval_size", "32", "--device", "cpu", "--no_progress"]  # fmt: skip
        assert main(argv) == 0
        documents[name] = json.loads((tmp_path / f"out_{name}" / "metrics.json").read_text())
    capsys.readouterr()
    for key in ("pixcorr", "ssim", "mse", "pairid_mse"):
        assert documents["rec16"]["metrics"][key]["value"] == documents["rec8"]["metrics"][key]["value"], key
    # MSE at the stored size (eval_size 32: no resize), from the 8-bit arrays; and what a white image would get.
    truth = np.stack(truths).astype(np.float64) / 255
    gray = np.repeat(np.stack(grays)[..., None], 3, axis=3).astype(np.float64) / 255
    expected = ((gray - truth) ** 2).mean()
    assert documents["rec16"]["metrics"]["mse"]["value"] == pytest.approx(expected, rel=1e-5)
    assert abs(expected - ((1.0 - truth) ** 2).mean()) > 0.05
