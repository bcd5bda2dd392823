"""``ttdnet train-bridge`` (Stage B): condition SDXL on EEG through a Perceiver-resampler bridge.

Run it as ``accelerate launch -m ttdnet train-bridge --config configs/stage_b.yaml`` (or ``ttdnet train-bridge
...`` on one device). The EEG encoder (a Stage A ``encoder/`` folder, or a fresh preset) feeds a Perceiver
resampler whose tokens replace SDXL's text conditioning; a pooled projection replaces the pooled text
embedding; a learned null conditioning is trained by conditioning dropout for classifier-free guidance; an
optional CLIP-alignment head adds an InfoNCE term against precomputed CLIP image embeddings. The UNet gets a
LoRA (or is fine-tuned in full, or kept frozen). See docs/stage_b.md.
"""

import argparse
import dataclasses
from typing import ClassVar, Literal

from ttdnet.command import Command
from ttdnet.stages.training_options import EEG_CACHE_HELP, TRAINING_OPTION_GROUPS, TRAINING_OPTION_RANGES


@dataclasses.dataclass
class BridgeConfig:
    """Options of ``ttdnet train-bridge``. Flag names follow diffusers' SDXL LoRA training script."""

    OPTION_RANGES: ClassVar[dict[str, str]] = {
        **TRAINING_OPTION_RANGES,
        "resolution": "[8, inf)",
        "encoder_trainable_blocks": "[1, inf)",
        "encoder_learning_rate": "(0, inf)",
        "n_queries": "[1, inf)",
        "resampler_dim": "[1, inf)",
        "resampler_depth": "[1, inf)",
        "resampler_heads": "[1, inf)",
        "clip_loss_weight": "[0, inf)",
        "clip_queue_size": "[0, inf)",
        "clip_hidden_dim": "[1, inf)",
        "rank": "[1, inf)",
        "lora_alpha": "(0, inf)",
        "snr_gamma": "(0, inf)",
        "noise_offset": "[0, inf)",
        "conditioning_dropout_prob": "[0, 1)",
        "max_train_steps": "[1, inf)",
        "gradient_accumulation_steps": "[1, inf)",
        "adam_beta1": "[0, 1)",
        "adam_beta2": "[0, 1)",
        "adam_epsilon": "(0, inf)",
        "validation_steps": "[1, inf)",
        "num_validation_trials": "[1, inf)",
        "validation_timesteps": "[0, inf)",
        "num_validation_images": "[0, inf)",
        "validation_inference_steps": "[1, inf)",
        "validation_guidance_scale": "[0, inf)",
    }
    OPTION_GROUPS: ClassVar[dict[str, str]] = {
        **TRAINING_OPTION_GROUPS,
        **dict.fromkeys(
            (
                "train_average_repetitions", "resolution", "random_flip", "latent_cache_dir", "clip_features",
                "clip_layer",
            ),
            "data",
        ),
        **dict.fromkeys(
            (
                "pretrained_model_name_or_path", "pretrained_vae_model_name_or_path", "revision", "variant",
                "cache_dir", "encoder_pretrained", "encoder_training", "encoder_trainable_blocks", "n_queries",
                "resampler_dim", "resampler_depth", "resampler_heads", "clip_hidden_dim", "unet_training", "rank",
                "lora_alpha", "lora_target_modules",
            ),
            "model",
        ),
        **dict.fromkeys(
            (
                "encoder_learning_rate", "clip_loss_weight", "clip_queue_size", "snr_gamma", "noise_offset",
                "conditioning_dropout_prob", "max_train_steps", "gradient_accumulation_steps",
                "gradient_checkpointing", "adam_beta1", "adam_beta2", "adam_epsilon", "use_8bit_adam", "allow_tf32",
            ),
            "optimisation",
        ),
        **dict.fromkeys(
            (
                "selection_metric", "validation_steps", "num_validation_trials", "validation_timesteps",
                "num_validation_images", "validation_inference_steps", "validation_guidance_scale",
            ),
            "validation",
        ),
    }  # fmt: skip

    # Data.
    dataset_root: str | None = dataclasses.field(
        default=None, metadata={"help": "THINGS-EEG2 root: training EEG and the training images (see the README)"}
    )
    subjects: list[str] | None = dataclasses.field(
        default=None, metadata={"help": "subjects to train on (e.g. 1 2 or sub-01); default all in the root"}
    )
    tmin: float | None = dataclasses.field(default=None, metadata={"help": "EEG window start in seconds"})
    tmax: float | None = dataclasses.field(default=None, metadata={"help": "EEG window end in seconds (exclusive)"})
    train_average_repetitions: bool = dataclasses.field(
        default=True, metadata={"help": "train on the mean of each image's repetitions (else one sample per trial)"}
    )
    val_fraction: float = dataclasses.field(
        default=0.1, metadata={"help": "training concepts held out for validation (never the test set)"}
    )
    split_seed: int = dataclasses.field(default=0, metadata={"help": "seed of the validation split"})
    eeg_cache_dir: str | None = dataclasses.field(default=None, metadata={"help": EEG_CACHE_HELP})
    resolution: int = dataclasses.field(default=512, metadata={"help": "square training image size in pixels"})
    random_flip: bool = dataclasses.field(
        default=False, metadata={"help": "use each image or its left-right flip at random (both are cached)"}
    )
    latent_cache_dir: str | None = dataclasses.field(
        default=None, metadata={"help": "folder of VAE latent caches (default ~/.cache/ttdnet/latents)"}
    )
    clip_features: str | None = dataclasses.field(
        default=None,
        metadata={"help": "a `ttdnet features` file of CLIP image embeddings for the alignment head; none: no head"},
    )
    clip_layer: str = dataclasses.field(default="final", metadata={"help": "layer of --clip_features to align to"})
    # Base model.
    pretrained_model_name_or_path: str = dataclasses.field(
        default="stabilityai/stable-diffusion-xl-base-1.0",
        metadata={"help": "SDXL base: hub id or local diffusers folder (unet/, vae/, scheduler/)"},
    )
    pretrained_vae_model_name_or_path: str | None = dataclasses.field(
        default=None,
        metadata={"help": "another VAE (e.g. madebyollin/sdxl-vae-fp16-fix), used in the mixed precision"},
    )
    revision: str | None = dataclasses.field(default=None, metadata={"help": "hub revision of the base model"})
    variant: str | None = dataclasses.field(default=None, metadata={"help": "weight variant, e.g. fp16"})
    cache_dir: str | None = dataclasses.field(
        default=None, metadata={"help": "model-download cache (Hugging Face hub); default: the hub's"}
    )
    # EEG conditioner.
    encoder_pretrained: str | None = dataclasses.field(
        default=None, metadata={"help": "Stage A encoder folder (output_dir/encoder of `ttdnet pretrain`)"}
    )
    encoder_preset: Literal["things17", "things63", "tiny"] = dataclasses.field(
        default="things17", metadata={"help": "a fresh InceptSAD encoder when --encoder_pretrained is not given"}
    )
    encoder_training: Literal["frozen", "last_blocks", "full"] = dataclasses.field(
        default="frozen", metadata={"help": "keep the encoder frozen, train its last transformer blocks, or all of it"}
    )
    encoder_trainable_blocks: int = dataclasses.field(
        default=1, metadata={"help": "transformer blocks trained with --encoder_training last_blocks"}
    )
    encoder_learning_rate: float = dataclasses.field(
        default=1e-5, metadata={"help": "learning rate of the encoder's trained parameters"}
    )
    n_queries: int = dataclasses.field(default=16, metadata={"help": "conditioning tokens (resampler queries)"})
    resampler_dim: int = dataclasses.field(default=768, metadata={"help": "resampler width"})
    resampler_depth: int = dataclasses.field(default=4, metadata={"help": "resampler layers"})
    resampler_heads: int = dataclasses.field(default=12, metadata={"help": "resampler attention heads"})
    clip_loss_weight: float = dataclasses.field(default=0.5, metadata={"help": "weight of the CLIP InfoNCE term"})
    clip_queue_size: int = dataclasses.field(
        default=0, metadata={"help": "extra CLIP negatives: targets of this many recent samples (FIFO queue)"}
    )
    clip_hidden_dim: int = dataclasses.field(default=1024, metadata={"help": "hidden width of the CLIP head"})
    # UNet.
    unet_training: Literal["lora", "full", "frozen"] = dataclasses.field(
        default="lora", metadata={"help": "LoRA on the attention projections, the whole UNet, or none"}
    )
    rank: int = dataclasses.field(default=16, metadata={"help": "LoRA rank"})
    lora_alpha: float | None = dataclasses.field(default=None, metadata={"help": "LoRA alpha (default: the rank)"})
    lora_target_modules: list[str] = dataclasses.field(
        default_factory=lambda: ["to_k", "to_q", "to_v", "to_out.0"],
        metadata={"help": "UNet modules that get a LoRA"},
    )
    snr_gamma: float | None = dataclasses.field(
        default=None, metadata={"help": "Min-SNR-gamma loss weighting (5.0 is the paper's value); none: off"}
    )
    noise_offset: float = dataclasses.field(
        default=0.0,
        metadata={
            "help": "add noise_offset x N(0, 1) per sample and latent channel to the training noise (offset "
            "noise), so the model learns to change an image's mean colour; 0 turns it off"
        },
    )
    conditioning_dropout_prob: float = dataclasses.field(
        default=0.1, metadata={"help": "probability of training a sample on the null conditioning (for CFG)"}
    )
    # Optimisation.
    output_dir: str = dataclasses.field(default="outputs/stage_b", metadata={"help": "run folder"})
    seed: int = dataclasses.field(default=0, metadata={"help": "seeds initialisation, data order, noise, dropout"})
    train_batch_size: int = dataclasses.field(default=4, metadata={"help": "batch size per device"})
    num_train_epochs: int = dataclasses.field(default=10, metadata={"help": "epochs (max_train_steps wins if set)"})
    max_train_steps: int | None = dataclasses.field(default=None, metadata={"help": "total optimisation steps"})
    gradient_accumulation_steps: int = dataclasses.field(default=1, metadata={"help": "micro-batches per step"})
    gradient_checkpointing: bool = dataclasses.field(
        default=False, metadata={"help": "recompute UNet activations in the backward pass (saves memory)"}
    )
    learning_rate: float = dataclasses.field(default=1e-4, metadata={"help": "learning rate of LoRA and bridge"})
    lr_scheduler: Literal["constant", "constant_with_warmup", "cosine", "linear"] = dataclasses.field(
        default="constant_with_warmup", metadata={"help": "learning-rate schedule"}
    )
    lr_warmup_steps: int = dataclasses.field(default=100, metadata={"help": "linear warm-up steps"})
    adam_beta1: float = dataclasses.field(default=0.9, metadata={"help": "AdamW beta1"})
    adam_beta2: float = dataclasses.field(default=0.999, metadata={"help": "AdamW beta2"})
    adam_weight_decay: float = dataclasses.field(default=1e-2, metadata={"help": "AdamW weight decay"})
    adam_epsilon: float = dataclasses.field(default=1e-8, metadata={"help": "AdamW epsilon"})
    use_8bit_adam: bool = dataclasses.field(
        default=False, metadata={"help": "bitsandbytes 8-bit AdamW (pip install bitsandbytes; CUDA only)"}
    )
    max_grad_norm: float = dataclasses.field(default=1.0, metadata={"help": "gradient clipping norm"})
    mixed_precision: Literal["no", "fp16", "bf16"] | None = dataclasses.field(
        default=None, metadata={"help": "default: the accelerate config's; the frozen base runs in this dtype"}
    )
    allow_tf32: bool = dataclasses.field(default=False, metadata={"help": "TF32 matmuls on Ampere+ GPUs"})
    dataloader_num_workers: int = dataclasses.field(default=0, metadata={"help": "DataLoader worker processes"})
    # Validation, selection, checkpoints, logging.
    model_selection: Literal["validation", "last"] = dataclasses.field(
        default="validation", metadata={"help": "ship the best on --selection_metric, or the last weights"}
    )
    selection_metric: Literal["diffusion_loss", "clip_top1"] = dataclasses.field(
        default="diffusion_loss",
        metadata={"help": "validation diffusion loss at fixed timesteps and noise, or CLIP-space top-1 (head only)"},
    )
    validation_steps: int = dataclasses.field(default=500, metadata={"help": "validate every N steps"})
    num_validation_trials: int = dataclasses.field(
        default=64, metadata={"help": "validation trials scored by the diffusion loss"}
    )
    validation_timesteps: list[int] = dataclasses.field(
        default_factory=lambda: [100, 300, 500, 700, 900], metadata={"help": "fixed timesteps of the validation loss"}
    )
    num_validation_images: int = dataclasses.field(
        default=4, metadata={"help": "validation trials rendered beside their ground truth at each validation"}
    )
    validation_inference_steps: int = dataclasses.field(default=25, metadata={"help": "denoising steps of those"})
    validation_guidance_scale: float = dataclasses.field(default=5.0, metadata={"help": "their CFG scale"})
    checkpointing_steps: int = dataclasses.field(default=500, metadata={"help": "save a checkpoint every N steps"})
    checkpoints_total_limit: int | None = dataclasses.field(
        default=3, metadata={"help": "keep at most this many checkpoints"}
    )
    resume_from_checkpoint: str | None = dataclasses.field(
        default=None, metadata={"help": "'latest', a checkpoint-N name or a path"}
    )
    overwrite: bool = dataclasses.field(
        default=False, metadata={"help": "delete the contents of a previous run in output_dir and start again"}
    )
    report_to: str = dataclasses.field(
        default="tensorboard",
        metadata={"help": "tensorboard, wandb (offline without your own W&B login or WANDB_MODE), all or none"},
    )
    logging_dir: str = dataclasses.field(default="logs", metadata={"help": "tracker folder inside output_dir"})


def run(config: BridgeConfig, namespace: argparse.Namespace) -> int:
    from ttdnet.stages.accelerator_setup import print_json_on_main_process
    from ttdnet.stages.bridge_training import train

    print_json_on_main_process(train(config))
    return 0


COMMAND = Command(
    name="train-bridge",
    summary="Stage B: train the EEG-to-SDXL bridge (Perceiver resampler, CLIP head, LoRA) under accelerate",
    config_class=BridgeConfig,
    run=run,
    description=(
        "Condition SDXL on EEG: encoder tokens -> Perceiver resampler -> encoder_hidden_states and a pooled "
        "embedding, a learned null conditioning for classifier-free guidance, an optional CLIP-alignment head, "
        "LoRA on the UNet. Run with `accelerate launch -m ttdnet train-bridge --config configs/stage_b.yaml`. "
        "Writes output_dir/pytorch_lora_weights.safetensors, conditioner/, README.md (model card), checkpoint-N."
    ),
)
