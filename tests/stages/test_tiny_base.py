"""The VAE fit and `ttdnet tiny-base`: a random base becomes one that encodes and decodes the dataset's images."""

import json

import numpy as np
import pytest
import torch
from things_files import write_image_set

from ttdnet.cli import main
from ttdnet.errors import TtdnetError
from ttdnet.stages.vae_fit import fit_vae, latent_std, reconstruction_psnr


def small_vae(seed=0):
    from diffusers import AutoencoderKL

    torch.manual_seed(seed)
    return AutoencoderKL(
        block_out_channels=[8, 16], down_block_types=["DownEncoderBlock2D"] * 2,
        up_block_types=["UpDecoderBlock2D"] * 2, latent_channels=4, norm_num_groups=4, sample_size=16,
    )  # fmt: skip


def colour_layouts(n=24, size=16, seed=0):
    """Images made of a random 4 x 4 colour layout, in [-1, 1]."""
    rng = np.random.default_rng(seed)
    layout = rng.uniform(-1, 1, size=(n, 3, 4, 4)).astype(np.float32)
    return torch.from_numpy(np.kron(layout, np.ones((1, 1, size // 4, size // 4), np.float32)))


def test_the_fit_learns_to_reconstruct_and_sets_the_latent_scale():
    images = colour_layouts()
    vae = small_vae()
    before = reconstruction_psnr(vae, images)
    fit = fit_vae(vae, images, steps=150, batch_size=8, learning_rate=3e-3, progress=False)
    # Independent PSNR: decode the posterior means and compare in [0, 1].
    with torch.no_grad():
        decoded = vae.decode(vae.encode(images).latent_dist.mean).sample.clamp(-1, 1)
    psnr = 10 * np.log10(1.0 / float(((decoded - images) / 2).pow(2).mean()))
    assert fit.reconstruction_psnr == pytest.approx(psnr, abs=1e-3)
    assert psnr > before + 6.0  # the untrained VAE is far off; the fitted one is 4x closer in RMS or better
    assert np.mean(fit.losses[-10:]) < 0.25 * np.mean(fit.losses[:10])
    with torch.no_grad():
        std = float(vae.encode(images).latent_dist.mean.std())
    assert fit.scaling_factor == pytest.approx(1.0 / std, rel=1e-5)
    assert vae.config.scaling_factor == pytest.approx(fit.scaling_factor)
    assert latent_std(vae, images) == pytest.approx(std, rel=1e-5)


def test_the_fit_is_reproducible_from_its_seed():
    first = fit_vae(small_vae(), colour_layouts(8), steps=5, batch_size=4, seed=3, progress=False)
    second = fit_vae(small_vae(), colour_layouts(8), steps=5, batch_size=4, seed=3, progress=False)
    assert first.losses == second.losses


@pytest.mark.parametrize(
    "images, steps, message",
    [(torch.zeros(0, 3, 16, 16), 5, "N >= 1"), (torch.zeros(4, 1, 16, 16), 5, "(N, 3, H, W)"),
     (torch.zeros(4, 3, 16, 16), 0, "steps >= 1")],
)  # fmt: skip
def test_bad_fit_input_is_a_clear_error(images, steps, message):
    with pytest.raises(TtdnetError, match=message.replace("(", r"\(").replace(")", r"\)")):
        fit_vae(small_vae(), images, steps=steps, progress=False)


@pytest.fixture(scope="module")
def image_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny_base")
    write_image_set(root / "image_set", images_per_concept=2, image_size=16, blocks=4)
    return root


def test_tiny_base_writes_a_diffusers_folder_that_loads_like_sdxl(image_root, tmp_path, capsys):
    from diffusers import StableDiffusionXLPipeline

    out = tmp_path / "base"
    args = [
        "tiny-base",
        "--image_dir",
        str(image_root),
        "--resolution",
        "16",
        "--vae_steps",
        "3",
        "--output_dir",
        str(out),
    ]
    assert main(args) == 0
    summary = json.loads((out / "tiny_base.json").read_text())
    assert summary["n_training_images"] == 10 and summary["options"]["vae_steps"] == 3
    pipeline = StableDiffusionXLPipeline.from_pretrained(out, text_encoder=None, text_encoder_2=None)
    assert pipeline.vae.config.scaling_factor == pytest.approx(summary["vae_scaling_factor"])
    assert pipeline.vae.config.norm_num_groups == 8
    # Without --overwrite an existing base is kept; with it, replaced.
    assert main(args) == 1 and "--overwrite" in capsys.readouterr().err
    assert main([*args, "--overwrite", "--seed", "1"]) == 0
    assert json.loads((out / "tiny_base.json").read_text())["options"]["seed"] == 1
    assert not list(tmp_path.glob(".base*"))


def test_tiny_base_never_replaces_another_folder(image_root, tmp_path, capsys):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    args = ["tiny-base", "--image_dir", str(image_root), "--output_dir", str(tmp_path / "mine"), "--overwrite"]
    assert main(args) == 1
    assert "not a `ttdnet tiny-base` folder" in capsys.readouterr().err
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep"


def test_tiny_base_rejects_a_resolution_the_models_cannot_halve(image_root, tmp_path, capsys):
    args = ["tiny-base", "--image_dir", str(image_root), "--resolution", "18", "--output_dir", str(tmp_path / "b")]
    assert main(args) == 1
    assert "multiple of 4" in capsys.readouterr().err
