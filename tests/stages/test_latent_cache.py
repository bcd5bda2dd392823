"""The VAE latent cache: contents against a direct VAE call, SDXL time ids, keying, reuse and resume."""

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from ttdnet.models.tiny_sdxl import build_tiny_sdxl
from ttdnet.stages.latent_cache import LatentCache, build_latent_cache


@pytest.fixture
def images(tmp_path):
    """Three images of different shapes: 40x24 (landscape), 24x40 (portrait), 32x32."""
    rng = np.random.default_rng(0)
    paths = []
    for name, (w, h) in {"wide.png": (40, 24), "tall.png": (24, 40), "square.png": (32, 32)}.items():
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(tmp_path / name)
        paths.append(name)
    return tmp_path, paths


@pytest.fixture(scope="module")
def vae():
    return build_tiny_sdxl("tiny")["vae"].eval()


def test_latents_and_time_ids_match_a_direct_computation(images, vae, tmp_path):
    folder, paths = images
    path = build_latent_cache(tmp_path / "cache", vae, folder, paths, resolution=16, random_flip=True, batch_size=2)
    cache = LatentCache(path)
    # wide.png 40x24 -> resized 27x16 (bicubic), crop left (27-16)//2 = 5; flipped: 27 - 5 - 16 = 6.
    expected_ids = torch.tensor(
        [[24, 40, 0, 5, 16, 16], [40, 24, 5, 0, 16, 16], [32, 32, 0, 0, 16, 16]], dtype=torch.float32
    )
    assert torch.equal(cache.time_ids(torch.tensor([0, 1, 2])), expected_ids)
    flipped = cache.time_ids(torch.tensor([0, 1]), torch.tensor([True, True]))
    assert flipped[0].tolist() == [24, 40, 0, 6, 16, 16] and flipped[1].tolist() == [40, 24, 5, 0, 16, 16]
    image = Image.open(folder / "wide.png").convert("RGB").resize((27, 16), Image.BICUBIC).crop((5, 0, 21, 16))
    pixels = torch.from_numpy(np.asarray(image, dtype=np.float32) / 127.5 - 1).permute(2, 0, 1)[None]
    with torch.no_grad():
        direct = vae.encode(pixels).latent_dist.mean
        mirrored = vae.encode(pixels.flip(-1)).latent_dist.mean
    half = {"rtol": 2e-3, "atol": 1e-4}  # stored as float16
    torch.testing.assert_close(cache.latents(torch.tensor([0])), direct, **half)
    torch.testing.assert_close(cache.latents(torch.tensor([0]), torch.tensor([True])), mirrored, **half)
    assert not torch.allclose(direct, mirrored, atol=1e-3)


def test_a_matching_cache_is_reused_and_another_vae_or_size_gets_its_own(images, vae, tmp_path):
    folder, paths = images
    first = build_latent_cache(tmp_path / "cache", vae, folder, paths, 16, random_flip=False)
    stamp = first.stat().st_mtime_ns
    assert build_latent_cache(tmp_path / "cache", vae, folder, paths, 16, random_flip=False) == first
    assert first.stat().st_mtime_ns == stamp
    assert build_latent_cache(tmp_path / "cache", vae, folder, paths, 32, random_flip=False) != first
    other = build_tiny_sdxl("tiny", seed=1)["vae"].eval()
    assert build_latent_cache(tmp_path / "cache", other, folder, paths, 16, random_flip=False) != first
    assert build_latent_cache(tmp_path / "cache", vae, folder, paths[:2], 16, random_flip=False) != first
    with pytest.raises(Exception, match="no flipped latents"):
        LatentCache(first).latents(torch.tensor([0]), torch.tensor([True]))


def test_an_interrupted_encoding_resumes_from_saved_chunks(images, vae, tmp_path):
    folder, paths = images
    complete = build_latent_cache(tmp_path / "a", vae, folder, paths, 16, random_flip=False, chunk_size=2)
    partial = tmp_path / "b" / f".{complete.name}.partial"
    build_latent_cache(tmp_path / "b", vae, folder, paths, 16, random_flip=False, chunk_size=2)
    (tmp_path / "b" / complete.name).unlink()
    # As if killed after the first chunk: its saved (here: marked) latents must be taken as they are.
    from ttdnet.stages.chunked_cache import open_partial_dir
    from ttdnet.stages.latent_cache import latent_settings

    open_partial_dir(partial, latent_settings(vae, 16, False, paths))
    chunk = load_file(str(tmp_path / "a" / complete.name))
    marked = {key: value[:2].clone() for key, value in chunk.items()}
    marked["latents"] = torch.full_like(marked["latents"], 0.5)
    save_file(marked, str(partial / "latents-0000000.safetensors"))
    resumed = LatentCache(build_latent_cache(tmp_path / "b", vae, folder, paths, 16, random_flip=False, chunk_size=2))
    assert torch.all(resumed.latents(torch.tensor([0, 1])) == 0.5)
    torch.testing.assert_close(resumed.latents(torch.tensor([2])), LatentCache(complete).latents(torch.tensor([2])))
    assert not partial.exists()
