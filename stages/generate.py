"""``ttdnet generate``: images from EEG files with a trained Stage B bridge, in batches, seeded, resumable.

Run it as ``ttdnet generate --bridge outputs/stage_b/model --eeg /data/things-eeg2 --subject 8``. Generation
goes through the stock ``StableDiffusionXLPipeline``: the conditioner's tokens and pooled embedding are the
``prompt_embeds``/``pooled_prompt_embeds``, its learned null conditioning the negatives, so
``--guidance_scale`` is real classifier-free guidance. Writes ``images/<trial>_s<k>.png``, ``manifest.jsonl``
(what ``ttdnet evaluate --manifest`` reads), ``config.yaml`` and ``grid.png``. See docs/generate.md.
"""

import argparse
import dataclasses
import json
from typing import ClassVar, Literal

from ttdnet.command import Command
from ttdnet.config import SEED_RANGE


@dataclasses.dataclass
class GenerateConfig:
    """Options of ``ttdnet generate``."""

    OPTION_RANGES: ClassVar[dict[str, str]] = {
        "num_inference_steps": "[1, inf)",
        "guidance_scale": "[0, inf)",
        "num_samples": "[1, inf)",
        "batch_size": "[1, inf)",
        "height": "[8, inf)",
        "width": "[8, inf)",
        "grid_trials": "[0, inf)",
        "seed": SEED_RANGE,
    }

    # Inputs.
    bridge: str | None = dataclasses.field(
        default=None, metadata={"help": "trained bridge: output_dir/model of `ttdnet train-bridge`, or a checkpoint-N"}
    )
    eeg: str | None = dataclasses.field(
        default=None,
        metadata={
            "help": "THINGS-EEG2 root or preprocessed file, a .npy/.npz array with a sidecar .json, or a folder"
        },
    )
    subject: str | None = dataclasses.field(
        default=None, metadata={"help": "subject of a THINGS-EEG2 root (e.g. 8 or sub-08); needed when it has several"}
    )
    average_repetitions: bool = dataclasses.field(
        default=True,
        metadata={"help": "THINGS-EEG2: one trial per image, its repetitions averaged (else per repetition)"},
    )
    # Base model (default: what the bridge was trained with, from its bridge.json).
    pretrained_model_name_or_path: str | None = dataclasses.field(
        default=None, metadata={"help": "SDXL base: hub id or local folder; default the bridge's"}
    )
    pretrained_vae_model_name_or_path: str | None = dataclasses.field(
        default=None, metadata={"help": "another VAE (e.g. the fp16-fix VAE); default the bridge's"}
    )
    revision: str | None = dataclasses.field(default=None, metadata={"help": "hub revision of the base"})
    variant: str | None = dataclasses.field(default=None, metadata={"help": "weight variant, e.g. fp16"})
    cache_dir: str | None = dataclasses.field(
        default=None, metadata={"help": "model-download cache (Hugging Face hub); default: the hub's"}
    )
    # Sampling.
    scheduler: Literal["dpmpp_2m_karras", "euler", "ddim"] = dataclasses.field(
        default="dpmpp_2m_karras", metadata={"help": "sampler: DPM++ 2M with Karras sigmas, Euler, or DDIM"}
    )
    num_inference_steps: int = dataclasses.field(default=25, metadata={"help": "denoising steps"})
    guidance_scale: float = dataclasses.field(
        default=5.0, metadata={"help": "classifier-free guidance against the learned null conditioning (1 = off)"}
    )
    num_samples: int = dataclasses.field(default=1, metadata={"help": "images per trial"})
    batch_size: int = dataclasses.field(default=8, metadata={"help": "images per pipeline call, across trials"})
    height: int | None = dataclasses.field(default=None, metadata={"help": "image height; default the bridge's size"})
    width: int | None = dataclasses.field(default=None, metadata={"help": "image width; default the bridge's size"})
    seed: int = dataclasses.field(
        default=0, metadata={"help": "image (trial, sample) gets the seed SeedSequence([seed, crc32(trial), sample])"}
    )
    device: str | None = dataclasses.field(
        default=None, metadata={"help": "cuda, cuda:1, cpu ...; default cuda if any"}
    )
    mixed_precision: Literal["auto", "no", "fp16", "bf16"] = dataclasses.field(
        default="auto", metadata={"help": "UNet precision; auto: bf16 (or fp16) on GPUs, fp32 on the CPU"}
    )
    # Outputs.
    output_dir: str = dataclasses.field(default="outputs/generate", metadata={"help": "images, manifest, grid"})
    grid_trials: int = dataclasses.field(default=8, metadata={"help": "trials shown in grid.png (0: no grid)"})
    overwrite: bool = dataclasses.field(
        default=False, metadata={"help": "delete earlier images in output_dir first (else: skip those written)"}
    )


def run(config: GenerateConfig, namespace: argparse.Namespace) -> int:
    from ttdnet.stages.generation import generate

    print(json.dumps(generate(config), indent=2))
    return 0


COMMAND = Command(
    name="generate",
    summary="generate images from EEG files with a trained Stage B bridge (batched, seeded, resumable)",
    config_class=GenerateConfig,
    run=run,
    description=(
        "Batch image generation through the stock StableDiffusionXLPipeline, conditioned on EEG by a trained "
        "bridge, with the learned null conditioning as the classifier-free-guidance negative. One seed per image "
        "(recorded), images/<trial>_s<k>.png, manifest.jsonl for `ttdnet evaluate --manifest`, grid.png; "
        "a rerun skips images already written."
    ),
)
