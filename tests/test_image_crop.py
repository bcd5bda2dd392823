"""The shared image helpers: the square crop, the [-1, 1] tensor and the typical original size."""

import numpy as np
import pytest
from PIL import Image

from ttdnet.data.image_crop import resize_center_crop, to_signed_tensor, typical_original_size
from ttdnet.errors import TtdnetError


def write(folder, name, height, width):
    Image.new("RGB", (width, height), (10, 20, 30)).save(folder / name)
    return name


def test_the_typical_size_is_the_most_common_and_ties_go_to_the_smallest(tmp_path):
    names = [write(tmp_path, f"a{i}.png", 500, 400) for i in range(3)] + [write(tmp_path, "b.png", 64, 64)]
    assert typical_original_size(tmp_path, names) == (500, 400)
    tie = [write(tmp_path, "c.png", 80, 90), write(tmp_path, "d.png", 70, 200)]
    assert typical_original_size(tmp_path, tie) == (70, 200)


def test_an_unreadable_image_or_none_is_a_clear_error(tmp_path):
    (tmp_path / "broken.jpg").write_bytes(b"not an image")
    with pytest.raises(TtdnetError, match="broken.jpg"):
        typical_original_size(tmp_path, ["broken.jpg"])
    with pytest.raises(TtdnetError, match="no images"):
        typical_original_size(tmp_path, [])


def test_the_crop_and_the_signed_tensor():
    image = Image.fromarray((np.arange(40 * 60 * 3).reshape(40, 60, 3) % 256).astype(np.uint8))
    crop, (top, left), resized = resize_center_crop(image, 20)
    assert crop.size == (20, 20) and resized == (20, 30) and (top, left) == (0, 5)
    tensor = to_signed_tensor(crop)
    assert tensor.shape == (3, 20, 20)
    np.testing.assert_allclose(tensor.permute(1, 2, 0).numpy(), np.asarray(crop, np.float32) / 127.5 - 1.0)
