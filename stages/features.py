"""``ttdnet features``: frozen image features of the THINGS-EEG2 training and test images, cached per backbone.

The heavy work lives in :mod:`ttdnet.stages.retrieval_features` (imported inside :func:`run`, so this module
stays cheap to import). See ``docs/retrieval.md`` for the backbones and the feature-file format.
"""

import argparse
import dataclasses
import json
import logging
from typing import ClassVar, Literal

from ttdnet.command import Command
from ttdnet.config import SEED_RANGE


@dataclasses.dataclass
class FeaturesConfig:
    """Options of ``ttdnet features``."""

    OPTION_RANGES: ClassVar[dict[str, str]] = {
        "seed": SEED_RANGE,
        "grid_size": "[1, inf)",
        "image_size": "[1, inf)",
        "batch_size": "[1, inf)",
        "dataloader_num_workers": "[0, inf)",
        "chunk_size": "[1, inf)",
    }
    RENAMED_OPTIONS: ClassVar[dict[str, str]] = {
        "num_workers": "--num_workers is now --dataloader_num_workers, the name the training commands use",
    }

    image_dir: str | None = dataclasses.field(
        default=None, metadata={"help": "THINGS-EEG2 root or its image_set folder (image_metadata.npy + images)"}
    )
    backbone: str = dataclasses.field(
        default="pixels",
        metadata={
            "help": "pixels (weight-free RGB thumbnails), torchvision:<arch>, open_clip:<model> (e.g. "
            "open_clip:ViT-H-14, open_clip:local-dir:FOLDER), transformers:<hub id or local folder> (CLIP, DINOv2, "
            "InternViT) or dreamsim:<variant> (ensemble, dino_vitb16, dinov2_vitb14, clip_vitb32, "
            "open_clip_vitb32, synclr_vitb16); each uses its library's own preprocessing"
        },
    )
    checkpoint: str | None = dataclasses.field(
        default=None,
        metadata={
            "help": "torchvision: local weight file or weights name (IMAGENET1K_V1, DEFAULT); open_clip: pretrained "
            "tag or local checkpoint file; dreamsim: the checkpoint folder (see docs/retrieval.md)"
        },
    )
    random_init: bool = dataclasses.field(
        default=False, metadata={"help": "allow random weights when no checkpoint is given (seeded by --seed)"}
    )
    trust_remote_code: bool = dataclasses.field(
        default=False, metadata={"help": "transformers: run the model repository's own code (InternViT needs it)"}
    )
    seed: int = dataclasses.field(default=0, metadata={"help": "seed of random weights"})
    layers: list[str] | None = dataclasses.field(
        default=None,
        metadata={
            "help": "module names to hook (e.g. layer3 transformer.resblocks.20), 'final' for the final embedding, "
            "rgbN for pixels; default per backbone"
        },
    )
    pooling: Literal["mean", "grid"] = dataclasses.field(
        default="mean", metadata={"help": "token/spatial mean, or average-pool to grid_size x grid_size and flatten"}
    )
    grid_size: int = dataclasses.field(default=2, metadata={"help": "cells per side for --pooling grid"})
    normalize: bool = dataclasses.field(default=False, metadata={"help": "L2-normalise every stored vector"})
    image_size: int | None = dataclasses.field(
        default=None, metadata={"help": "pixels only: side of the centre crop the thumbnails come from (default 16)"}
    )
    model_dtype: Literal["float32", "bfloat16", "float16"] = dataclasses.field(
        default="float32", metadata={"help": "dtype the backbone runs in (features are stored as float16)"}
    )
    device: str | None = dataclasses.field(default=None, metadata={"help": "cpu, cuda, cuda:1; default cuda if any"})
    batch_size: int = dataclasses.field(default=64, metadata={"help": "images per forward pass"})
    dataloader_num_workers: int = dataclasses.field(
        default=0, metadata={"help": "DataLoader worker processes (image decoding)"}
    )
    chunk_size: int = dataclasses.field(
        default=1024, metadata={"help": "images per resumable chunk (an interrupted run restarts at the last chunk)"}
    )
    output_dir: str = dataclasses.field(
        default="features", metadata={"help": "folder of the feature files (each with its <name>.config.yaml)"}
    )
    output_file: str | None = dataclasses.field(
        default=None, metadata={"help": "explicit feature file; default output_dir/<backbone>.safetensors"}
    )
    overwrite: bool = dataclasses.field(default=False, metadata={"help": "rebuild even when the settings match"})
    cache_dir: str | None = dataclasses.field(
        default=None, metadata={"help": "model-download cache (open_clip / Hugging Face hub); default: the library's"}
    )


def run(config: FeaturesConfig, namespace: argparse.Namespace) -> int:
    from ttdnet.stages.retrieval_features import run_features

    logging.basicConfig(format="%(asctime)s - %(levelname)s - %(name)s - %(message)s", level=logging.INFO)
    print(json.dumps(run_features(config), indent=2))
    return 0


COMMAND = Command(
    name="features",
    summary="Extract frozen image features (one cached safetensors file per backbone) for retrieval",
    config_class=FeaturesConfig,
    run=run,
    description=(
        "Run a frozen image backbone over training_images/ and test_images/ and store (n_images, n_layers, dim) "
        "float16 features per split with the image paths and settings, and the resolved options beside it as "
        "<name>.config.yaml. Reused when the settings match, rebuilt otherwise; resumable. Example: ttdnet "
        "features --image_dir data/synthetic-things-eeg2 --backbone torchvision:resnet18 --random_init --pooling grid"
    ),
)
