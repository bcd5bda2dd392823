"""``ttdnet tiny-base``: a tiny SDXL-architecture base whose VAE is fitted to a dataset's training images.

A base built from a config has random weights; its VAE cannot show an image. This command builds a tiny
base (:mod:`ttdnet.models.tiny_sdxl`), fits its VAE to the training images of a THINGS-EEG2 image set
(:func:`ttdnet.stages.vae_fit.fit_vae`), and saves UNet (still random), VAE and scheduler as a standard
diffusers ``StableDiffusionXLPipeline`` folder. ``ttdnet train-bridge --unet_training full`` then trains the
UNet on it, and every later step loads it exactly as it loads SDXL from a local path. The demo uses it; so
can anyone who wants an end-to-end run without downloading SDXL.
"""

import argparse
import dataclasses
import json
from pathlib import Path
from typing import ClassVar, Literal

from ttdnet.command import Command
from ttdnet.config import SEED_RANGE
from ttdnet.errors import ConfigError


SUMMARY_NAME = "tiny_base.json"


@dataclasses.dataclass
class TinyBaseConfig:
    """Options of ``ttdnet tiny-base``."""

    OPTION_RANGES: ClassVar[dict[str, str]] = {
        "resolution": "[8, inf)",
        "vae_steps": "[1, inf)",
        "vae_batch_size": "[1, inf)",
        "vae_learning_rate": "(0, inf)",
        "kl_weight": "[0, inf)",
        "seed": SEED_RANGE,
    }

    image_dir: str | None = dataclasses.field(
        default=None,
        metadata={"help": "THINGS-EEG2 root or its image_set folder; the VAE is fitted to its training images"},
    )
    preset: Literal["tiny", "tiny-wide"] = dataclasses.field(
        default="tiny", metadata={"help": "tiny SDXL-architecture preset (UNet and VAE configs)"}
    )
    resolution: int = dataclasses.field(
        default=32, metadata={"help": "square image size in pixels the VAE is fitted at (a multiple of 4)"}
    )
    vae_steps: int = dataclasses.field(default=300, metadata={"help": "VAE optimiser steps"})
    vae_batch_size: int = dataclasses.field(default=32, metadata={"help": "images per VAE step"})
    vae_learning_rate: float = dataclasses.field(default=2e-3, metadata={"help": "peak VAE learning rate (cosine)"})
    kl_weight: float = dataclasses.field(default=1e-6, metadata={"help": "weight of the KL term per latent element"})
    seed: int = dataclasses.field(default=0, metadata={"help": "seeds the random weights, batch order and sampling"})
    device: str | None = dataclasses.field(
        default=None, metadata={"help": "cpu, cuda, ...; default cuda when available"}
    )
    output_dir: str = dataclasses.field(default="outputs/tiny_base", metadata={"help": "diffusers folder to write"})
    overwrite: bool = dataclasses.field(
        default=False, metadata={"help": "replace a tiny base already in output_dir (never any other folder)"}
    )


def load_training_images(image_dir: Path, resolution: int):
    """Every training image of an image set, resized and centre-cropped: float32 ``(N, 3, R, R)`` in [-1, 1]."""
    import torch
    from tqdm.auto import tqdm

    from ttdnet.data import read_image_metadata
    from ttdnet.data.image_crop import open_rgb, resize_center_crop, to_signed_tensor

    paths = read_image_metadata(image_dir).relative_paths("training")
    crops = [
        to_signed_tensor(resize_center_crop(open_rgb(image_dir / path), resolution)[0])
        for path in tqdm(paths, desc="training images", unit="img")
    ]
    return torch.stack(crops)


def check_output_dir(config: TinyBaseConfig) -> Path:
    """``output_dir`` as a path; an existing folder is an error unless it is a tiny base and ``--overwrite`` is set."""
    path = Path(config.output_dir)
    if not path.exists() or (path.is_dir() and not any(path.iterdir())):
        return path
    if not (path / SUMMARY_NAME).is_file():
        raise ConfigError(f"--output_dir {path} exists and is not a `ttdnet tiny-base` folder; choose another folder")
    if not config.overwrite:
        raise ConfigError(f"--output_dir {path} already holds a tiny base; pass --overwrite to replace it")
    return path


def run(config: TinyBaseConfig, namespace: argparse.Namespace) -> int:

    from ttdnet.config import config_to_dict
    from ttdnet.data.things_eeg2 import locate_image_set
    from ttdnet.devices import resolve_device
    from ttdnet.models.tiny_sdxl import build_tiny_sdxl, save_sdxl_folder
    from ttdnet.stages.vae_fit import fit_vae

    if config.image_dir is None:
        raise ConfigError("pass --image_dir (a THINGS-EEG2 root or its image_set folder)")
    if config.resolution % 4:
        raise ConfigError(f"--resolution must be a multiple of 4 (VAE and UNet downsampling), got {config.resolution}")
    output = check_output_dir(config)
    device = resolve_device(config.device)
    image_dir = locate_image_set(config.image_dir)
    images = load_training_images(image_dir, config.resolution).to(device)
    components = build_tiny_sdxl(config.preset, config.seed)
    vae = components["vae"].to(device)
    fit = fit_vae(
        vae, images, config.vae_steps, config.vae_batch_size, config.vae_learning_rate, config.kl_weight, config.seed
    )
    summary = {
        "command": "tiny-base",
        "options": config_to_dict(config),
        "n_training_images": len(images),
        "vae_loss_first": fit.losses[0],
        "vae_loss_last": fit.losses[-1],
        "vae_reconstruction_psnr_db": round(fit.reconstruction_psnr, 3),
        "vae_scaling_factor": fit.scaling_factor,
        "unet": "random weights (train with `ttdnet train-bridge --unet_training full`)",
    }
    components["vae"] = vae.to("cpu")
    save_sdxl_folder(output, **components, extra_files={SUMMARY_NAME: json.dumps(summary, indent=2) + "\n"})
    print(json.dumps({key: value for key, value in summary.items() if key != "options"}, indent=2))
    print(f"wrote the tiny base to {output}")
    return 0


COMMAND = Command(
    name="tiny-base",
    summary="build a tiny SDXL-architecture base and fit its VAE to a dataset's training images (no download)",
    config_class=TinyBaseConfig,
    run=run,
    description=(
        "Builds a tiny SDXL-architecture base from a preset, fits its VAE to the training images of a THINGS-EEG2 "
        "image set (MSE + KL, latent scaling factor = 1/std), and saves it as a diffusers folder that "
        "`ttdnet train-bridge --unet_training full` and `ttdnet generate` load like SDXL from a local path."
    ),
)
