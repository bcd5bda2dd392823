"""Stage A: pretrain the InceptSAD encoder by masked temporal reconstruction under ``accelerate``.

Run it as ``ttdnet pretrain --config configs/stage_a.yaml`` or ``accelerate launch -m ttdnet pretrain ...``.
The order of :func:`train` follows the diffusers training examples: fail early on bad input, build the
``Accelerator``, seed, build data and model, ``prepare``, recompute step counts, init trackers, resume,
loop with gradient accumulation and clipping, validate and checkpoint, write the final artifact.
"""

import argparse
import dataclasses
import logging
from pathlib import Path
from typing import ClassVar, Literal

from ttdnet.command import Command
from ttdnet.stages.training_options import (
    EEG_CACHE_HELP,
    RENAMED_EEG_CACHE,
    TRAINING_OPTION_GROUPS,
    TRAINING_OPTION_RANGES,
)


@dataclasses.dataclass
class PretrainConfig:
    """Options of ``ttdnet pretrain`` (Stage A). Flag names follow diffusers' training scripts."""

    OPTION_RANGES: ClassVar[dict[str, str]] = {
        **TRAINING_OPTION_RANGES,
        "embed_dim": "[1, inf)",
        "depth": "[1, inf)",
        "drop_prob": "[0, 1)",
        "mask_ratio": "(0, 1)",
        "mask_segment_seconds": "(0, inf)",
        "decoder_dim": "[1, inf)",
        "decoder_depth": "[1, inf)",
        "decoder_heads": "[1, inf)",
        "max_train_steps": "[1, inf)",
        "gradient_accumulation_steps": "[1, inf)",
        "adam_beta1": "[0, 1)",
        "adam_beta2": "[0, 1)",
        "validation_steps": "[1, inf)",
    }
    OPTION_GROUPS: ClassVar[dict[str, str]] = {
        **TRAINING_OPTION_GROUPS,
        "edf_windows": "data",
        **dict.fromkeys(
            (
                "embed_dim", "depth", "drop_prob", "mask_ratio", "mask_segment_seconds", "mask_scope", "decoder_dim",
                "decoder_depth", "decoder_heads",
            ),
            "model",
        ),
        **dict.fromkeys(
            ("max_train_steps", "gradient_accumulation_steps", "adam_beta1", "adam_beta2"), "optimisation"
        ),
        "validation_steps": "validation",
    }  # fmt: skip
    RENAMED_OPTIONS: ClassVar[dict[str, str]] = RENAMED_EEG_CACHE

    # Data.
    dataset_root: str | None = dataclasses.field(
        default=None, metadata={"help": "THINGS-EEG2 root: training EEG as single repetitions (see the README layout)"}
    )
    edf_windows: list[str] | None = dataclasses.field(
        default=None, metadata={"help": "window corpora written by `ttdnet preprocess edf` (alone or with THINGS)"}
    )
    subjects: list[str] | None = dataclasses.field(
        default=None, metadata={"help": "THINGS-EEG2 subjects to use (e.g. 1 2 or sub-01); default all"}
    )
    tmin: float | None = dataclasses.field(default=None, metadata={"help": "window start in seconds (inclusive)"})
    tmax: float | None = dataclasses.field(default=None, metadata={"help": "window end in seconds (exclusive)"})
    val_fraction: float = dataclasses.field(
        default=0.1,
        metadata={
            "help": "held out for the validation loss: this fraction of THINGS training concepts / EDF recordings"
        },
    )
    split_seed: int = dataclasses.field(default=0, metadata={"help": "seed of the validation split"})
    eeg_cache_dir: str | None = dataclasses.field(default=None, metadata={"help": EEG_CACHE_HELP})
    # Model.
    encoder_preset: Literal["things17", "things63", "tiny"] = dataclasses.field(
        default="things17", metadata={"help": "InceptSAD configuration (channels, rate, window, sizes)"}
    )
    embed_dim: int | None = dataclasses.field(default=None, metadata={"help": "override the preset's token width"})
    depth: int | None = dataclasses.field(default=None, metadata={"help": "override the preset's transformer depth"})
    drop_prob: float | None = dataclasses.field(default=None, metadata={"help": "override the preset's dropout"})
    mask_ratio: float = dataclasses.field(default=0.5, metadata={"help": "exact fraction of time samples masked"})
    mask_segment_seconds: float = dataclasses.field(
        default=0.1, metadata={"help": "length of one masked segment in seconds"}
    )
    mask_scope: Literal["shared", "per_channel"] = dataclasses.field(
        default="shared", metadata={"help": "one time mask for all channels, or one per channel"}
    )
    decoder_dim: int = dataclasses.field(default=128, metadata={"help": "decoder transformer width"})
    decoder_depth: int = dataclasses.field(default=2, metadata={"help": "decoder transformer blocks"})
    decoder_heads: int = dataclasses.field(default=4, metadata={"help": "decoder attention heads"})
    # Optimisation.
    output_dir: str = dataclasses.field(default="outputs/stage_a", metadata={"help": "run folder"})
    seed: int = dataclasses.field(default=0, metadata={"help": "seeds model init, data order, masks and dropout"})
    train_batch_size: int = dataclasses.field(default=256, metadata={"help": "batch size per device"})
    num_train_epochs: int = dataclasses.field(default=50, metadata={"help": "epochs (max_train_steps wins if set)"})
    max_train_steps: int | None = dataclasses.field(default=None, metadata={"help": "total optimisation steps"})
    gradient_accumulation_steps: int = dataclasses.field(default=1, metadata={"help": "micro-batches per step"})
    learning_rate: float = dataclasses.field(default=4e-4, metadata={"help": "peak learning rate"})
    lr_scheduler: Literal["cosine", "linear", "constant", "constant_with_warmup"] = dataclasses.field(
        default="cosine", metadata={"help": "schedule after the linear warm-up"}
    )
    lr_warmup_steps: int = dataclasses.field(default=200, metadata={"help": "linear warm-up steps"})
    adam_beta1: float = dataclasses.field(default=0.9, metadata={"help": "AdamW beta1"})
    adam_beta2: float = dataclasses.field(default=0.95, metadata={"help": "AdamW beta2"})
    adam_weight_decay: float = dataclasses.field(default=0.05, metadata={"help": "AdamW weight decay"})
    max_grad_norm: float = dataclasses.field(default=1.0, metadata={"help": "gradient clipping norm"})
    mixed_precision: Literal["no", "fp16", "bf16"] | None = dataclasses.field(
        default=None, metadata={"help": "default: the accelerate config's (or `accelerate launch --mixed_precision`)"}
    )
    dataloader_num_workers: int = dataclasses.field(default=0, metadata={"help": "DataLoader worker processes"})
    # Validation, checkpoints, logging.
    model_selection: Literal["validation", "last"] = dataclasses.field(
        default="validation",
        metadata={"help": "ship the encoder with the lowest validation loss (held-out concepts) or the last one"},
    )
    validation_steps: int = dataclasses.field(default=200, metadata={"help": "validation loss every N steps"})
    checkpointing_steps: int = dataclasses.field(default=500, metadata={"help": "save a checkpoint every N steps"})
    checkpoints_total_limit: int | None = dataclasses.field(
        default=None, metadata={"help": "keep at most this many checkpoints"}
    )
    resume_from_checkpoint: str | None = dataclasses.field(
        default=None,
        metadata={
            "help": "'latest' (newest checkpoint; a fresh start when there is none), a checkpoint-N name or a path"
        },
    )
    overwrite: bool = dataclasses.field(
        default=False, metadata={"help": "delete the contents of a previous run in output_dir and start again"}
    )
    report_to: str = dataclasses.field(
        default="tensorboard",
        metadata={"help": "tensorboard, wandb (offline without your own W&B login or WANDB_MODE), all or none"},
    )
    logging_dir: str = dataclasses.field(default="logs", metadata={"help": "tracker folder inside output_dir"})


def build_model(config: PretrainConfig):
    """The encoder (preset + overrides) wrapped for masked pretraining."""
    from ttdnet.models import InceptSADEncoder, MaskedTemporalPretraining, encoder_preset

    kwargs = encoder_preset(config.encoder_preset)
    kwargs.update(
        {key: value for key in ("embed_dim", "depth", "drop_prob") if (value := getattr(config, key)) is not None}
    )
    return MaskedTemporalPretraining(
        InceptSADEncoder(**kwargs),
        mask_ratio=config.mask_ratio,
        mask_segment_seconds=config.mask_segment_seconds,
        mask_scope=config.mask_scope,
        decoder_dim=config.decoder_dim,
        decoder_depth=config.decoder_depth,
        decoder_heads=config.decoder_heads,
    )


def save_encoder(encoder, path: Path, weights: dict | None = None) -> None:
    """``save_pretrained`` (with ``weights`` if given) into a temporary folder, then rename onto ``path``."""
    from ttdnet.io import atomic_directory

    with atomic_directory(path) as temporary:
        if weights is not None:
            current = {key: value.detach().clone() for key, value in encoder.state_dict().items()}
            encoder.load_state_dict(weights)
        encoder.save_pretrained(temporary)
        if weights is not None:
            encoder.load_state_dict(current)


def validation_loss(loop, seed: int) -> float:
    """Masked MSE over the validation windows with fixed masks, the same on any number of processes.

    The masks of a batch are drawn from a generator seeded by ``seed`` and the batch's first window index, and
    an unshuffled loader gives every process whole batches of consecutive windows, so each window gets the same
    mask whatever the world size. Per-window losses are gathered with ``gather_for_metrics``, which drops the
    windows repeated to even out the last batch across processes.
    """
    import torch

    model, accelerator = loop.unwrapped_model, loop.accelerator
    (loader,) = loop.eval_loaders
    model.eval()
    losses = []
    with torch.no_grad():
        for indices, eeg in loader:
            generator = torch.Generator().manual_seed(seed * 1_000_003 + int(indices[0]))
            mask = model.draw_mask(eeg.shape[0], generator).to(eeg.device)
            output = model(eeg, mask=mask)
            weights = mask.to(output.prediction.dtype)
            per_window = ((output.prediction - eeg) ** 2 * weights).sum(dim=(1, 2)) / weights.sum(dim=(1, 2))
            losses.append(accelerator.gather_for_metrics(per_window.float()))
    return float(torch.cat(losses).mean())


def train(config: PretrainConfig) -> dict:
    """Run Stage A; return a summary (also written to ``output_dir/training_summary.json``)."""
    import torch
    from accelerate.logging import get_logger
    from accelerate.utils import set_seed
    from torch.utils.data import DataLoader

    from ttdnet.config import config_to_dict
    from ttdnet.errors import ConfigError, TtdnetError
    from ttdnet.io import atomic_write_json
    from ttdnet.stages.accelerator_setup import create_accelerator
    from ttdnet.stages.pretrain_data import IndexedWindows, build_datasets
    from ttdnet.stages.run_folder import MAY_CHANGE_ON_RESUME, open_run_folder
    from ttdnet.stages.selection import BestOnValidation
    from ttdnet.stages.training_logs import init_trackers
    from ttdnet.stages.training_loop import TrainingLoop

    logging.basicConfig(format="%(asctime)s - %(levelname)s - %(name)s - %(message)s", level=logging.INFO)
    may_change = set(MAY_CHANGE_ON_RESUME)
    if config.lr_scheduler in ("constant", "constant_with_warmup"):
        may_change |= {"num_train_epochs", "max_train_steps"}  # a longer run follows the same LR so far
    run = open_run_folder(config, "pretrain", may_change)
    accelerator = create_accelerator(config, config.gradient_accumulation_steps)
    logger = get_logger(__name__)
    set_seed(config.seed)

    try:
        model = build_model(config)
    except ConfigError as error:
        raise ConfigError(
            f"the model options do not fit together: {error} (see --embed_dim, --depth, --decoder_dim, "
            "--decoder_heads, --mask_ratio and --mask_segment_seconds)"
        ) from error
    with accelerator.main_process_first():
        train_set, val_set = build_datasets(config, model.encoder.signal)
    if len(val_set) == 0 and config.model_selection == "validation":
        raise TtdnetError(
            "the validation split is empty, so no encoder can be selected on it: raise --val_fraction (THINGS "
            "concepts / EDF recordings held out) or use --model_selection last"
        )
    run.commit(accelerator, config)  # every input is checked: record the run
    loader_options = {"batch_size": config.train_batch_size, "num_workers": config.dataloader_num_workers}
    train_loader = DataLoader(
        train_set, shuffle=True, drop_last=len(train_set) >= config.train_batch_size, **loader_options
    )
    val_loader = DataLoader(IndexedWindows(val_set), **loader_options)
    optimizer = torch.optim.AdamW(
        model.parameters(),
        lr=config.learning_rate,
        betas=(config.adam_beta1, config.adam_beta2),
        weight_decay=config.adam_weight_decay,
    )
    best = BestOnValidation(mode="min")
    accelerator.register_for_checkpointing(best)
    loop = TrainingLoop(
        accelerator,
        config,
        config.output_dir,
        model=model,
        optimizer=optimizer,
        train_loader=train_loader,
        best=best,
        name="Stage A steps",
        selected_state=lambda wrapper: wrapper.encoder.state_dict(),
        eval_loaders=(val_loader,) if len(val_set) else (),
    )
    if accelerator.is_main_process:
        init_trackers(accelerator, "ttdnet-stage-a", config_to_dict(config))
    loop.resume(config.resume_from_checkpoint)
    plan = loop.plan
    logger.info("***** Running Stage A pretraining *****")
    logger.info(f"  Training windows = {len(train_set)}, validation windows = {len(val_set)}")
    logger.info(
        f"  Processes = {accelerator.num_processes}, batch per device = {config.train_batch_size}, "
        f"accumulation = {config.gradient_accumulation_steps}, total batch = {plan.total_batch_size}"
    )
    logger.info(
        f"  Epochs = {plan.num_epochs}, steps per epoch = {plan.steps_per_epoch}, optimisation steps = "
        f"{plan.max_train_steps}, mask ratio = {loop.unwrapped_model.mask_ratio:.3f}"
    )

    def compute_loss(eeg, epoch):
        return loop.model(eeg).loss, {}

    def validate(step, epoch):
        loss = validation_loss(loop, config.seed)
        return loss, {"val/loss": loss}

    result = loop.run(
        compute_loss,
        validate=validate if len(val_set) else None,
        validation_steps=config.validation_steps,
        divergence_hint="lower --learning_rate, or train in fp32 (--mixed_precision no) if fp16 overflowed",
    )
    selected = loop.selected_weights()
    summary = {
        "final_step": result.final_step,
        "best_validation_loss": best.value if selected is not None else None,
        "best_step": best.step if selected is not None else None,
        "selection": (
            "lowest masked-MSE validation loss on held-out training data (never the test set)"
            if selected is not None
            else "last step (--model_selection last)"
        ),
        "seed": config.seed,
        "num_processes": accelerator.num_processes,
        "total_batch_size": plan.total_batch_size,
        "mask_ratio": loop.unwrapped_model.mask_ratio,
        "train_windows": len(train_set),
        "validation_windows": len(val_set),
        "seconds_this_run": result.seconds,
        "samples_per_second_this_run": result.samples_per_second,
    }
    if accelerator.is_main_process:
        encoder = loop.unwrapped_model.encoder
        save_encoder(encoder, Path(config.output_dir) / "encoder", selected)
        save_encoder(encoder, Path(config.output_dir) / "encoder-last")
        atomic_write_json(Path(config.output_dir) / "training_summary.json", summary)
    accelerator.end_training()
    return summary


def run(config: PretrainConfig, namespace: argparse.Namespace) -> int:
    from ttdnet.stages.accelerator_setup import print_json_on_main_process

    print_json_on_main_process(train(config))
    return 0


COMMAND = Command(
    name="pretrain",
    summary="Stage A: pretrain the InceptSAD EEG encoder by masked temporal reconstruction (accelerate)",
    config_class=PretrainConfig,
    run=run,
    description=(
        "Pretrain the InceptSAD encoder on THINGS-EEG2 training EEG by reconstructing masked time segments. "
        "Run with `accelerate launch -m ttdnet pretrain --config configs/stage_a.yaml` for several GPUs, or "
        "`ACCELERATE_USE_CPU=1 torchrun --nproc_per_node N -m ttdnet pretrain ...` for N CPU processes. "
        "Writes output_dir/encoder (lowest validation loss), encoder-last, checkpoint-N, metrics.csv."
    ),
)
