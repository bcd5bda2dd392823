"""Stage A: pretrain the InceptSAD encoder by masked temporal reconstruction under ``accelerate``.

Run it as ``ttdnet pretrain --config configs/stage_a.yaml`` or ``accelerate launch -m ttdnet pretrain ...``.
The order of :func:`train` follows the diffusers training examples: fail early on bad input, build the
``Accelerator``, seed, build data and model, ``prepare``, recompute step counts, init trackers, resume,
loop with gradient accumulation and clipping, validate and checkpoint, write the final artifact.
"""

import argparse
import dataclasses
import json
import logging
import math
import os
import time
from pathlib import Path
from typing import Literal

from ttdnet.cli import Command


@dataclasses.dataclass
class PretrainConfig:
    """Options of ``ttdnet pretrain`` (Stage A). Flag names follow diffusers' training scripts."""

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
    cache_dir: str | None = dataclasses.field(default=None, metadata={"help": "float32 cache root of the data layer"})
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
    adam_beta1: float = 0.9
    adam_beta2: float = 0.95
    adam_weight_decay: float = 0.05
    max_grad_norm: float = dataclasses.field(default=1.0, metadata={"help": "gradient clipping norm"})
    mixed_precision: Literal["no", "fp16", "bf16"] | None = dataclasses.field(
        default=None, metadata={"help": "default: the accelerate config's (or `accelerate launch --mixed_precision`)"}
    )
    dataloader_num_workers: int = dataclasses.field(default=0, metadata={"help": "DataLoader worker processes"})
    # Validation, checkpoints, logging.
    validation_steps: int = dataclasses.field(default=200, metadata={"help": "validation loss every N steps"})
    checkpointing_steps: int = dataclasses.field(default=500, metadata={"help": "save a checkpoint every N steps"})
    checkpoints_total_limit: int | None = dataclasses.field(
        default=None, metadata={"help": "keep at most this many checkpoints"}
    )
    resume_from_checkpoint: str | None = dataclasses.field(
        default=None, metadata={"help": "'latest' or a checkpoint-N folder to resume from"}
    )
    report_to: str = dataclasses.field(
        default="tensorboard", metadata={"help": "tensorboard, wandb (offline without an API key), all or none"}
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
    """``save_pretrained`` into a temporary folder, then rename onto ``path`` (atomic for readers)."""
    import shutil

    temporary = path.with_name(f".{path.name}.tmp")
    if temporary.exists():
        shutil.rmtree(temporary)
    if weights is not None:
        current = {key: value.detach().clone() for key, value in encoder.state_dict().items()}
        encoder.load_state_dict(weights)
    encoder.save_pretrained(temporary)
    if weights is not None:
        encoder.load_state_dict(current)
    if path.exists():
        shutil.rmtree(path)
    os.replace(temporary, path)


def evaluate(model, dataloader, accelerator, seed: int) -> float:
    """Masked MSE over the validation set with fixed, seeded masks (comparable across steps)."""
    import torch

    model.eval()
    generator = torch.Generator(device=accelerator.device).manual_seed(seed)
    total = torch.zeros(2, device=accelerator.device)
    unwrapped = accelerator.unwrap_model(model)
    with torch.no_grad():
        for eeg in dataloader:
            mask = unwrapped.draw_mask(eeg.shape[0], generator, eeg.device)
            output = model(eeg, mask=mask)
            total += torch.stack(
                [output.loss.detach().float() * eeg.shape[0], torch.tensor(eeg.shape[0], device=eeg.device)]
            )
    total = accelerator.reduce(total, reduction="sum")
    model.train()
    return float(total[0] / total[1].clamp_min(1))


def train(config: PretrainConfig) -> dict:
    """Run Stage A; return a summary (also written to ``output_dir/training_summary.json``)."""
    import torch
    from accelerate import Accelerator
    from accelerate.logging import get_logger
    from accelerate.utils import DataLoaderConfiguration, ProjectConfiguration, set_seed
    from diffusers.optimization import get_scheduler
    from torch.utils.data import DataLoader
    from tqdm.auto import tqdm

    from ttdnet.config import config_to_dict, save_config
    from ttdnet.io import atomic_write_json
    from ttdnet.stages.pretrain_data import build_datasets
    from ttdnet.stages.training_utils import (
        BestOnValidation,
        MetricsCSV,
        init_trackers,
        resolve_checkpoint,
        save_checkpoint,
        seed_micro_step,
        tracker_setup,
    )

    logging.basicConfig(format="%(asctime)s - %(levelname)s - %(name)s - %(message)s", level=logging.INFO)
    output_dir = Path(config.output_dir)
    log_with = tracker_setup(config.report_to)
    accelerator = Accelerator(
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        mixed_precision=config.mixed_precision,
        log_with=log_with,
        project_config=ProjectConfiguration(
            project_dir=str(output_dir), logging_dir=str(output_dir / config.logging_dir)
        ),
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True, data_seed=config.seed),
    )
    logger = get_logger(__name__)
    logger.info(accelerator.state, main_process_only=False)
    set_seed(config.seed)

    model = build_model(config)
    with accelerator.main_process_first():
        train_set, val_set = build_datasets(config, model.encoder.signal)
    if accelerator.is_main_process:
        output_dir.mkdir(parents=True, exist_ok=True)
        save_config(config, output_dir / "config.yaml", command="pretrain")

    train_loader = DataLoader(
        train_set,
        batch_size=config.train_batch_size,
        shuffle=True,
        drop_last=len(train_set) >= config.train_batch_size,
        num_workers=config.dataloader_num_workers,
    )
    val_loader = DataLoader(val_set, batch_size=config.train_batch_size, num_workers=config.dataloader_num_workers)
    optimizer = torch.optim.AdamW(
        model.parameters(),
        lr=config.learning_rate,
        betas=(config.adam_beta1, config.adam_beta2),
        weight_decay=config.adam_weight_decay,
    )
    steps_per_epoch = math.ceil(len(train_loader) / config.gradient_accumulation_steps)
    max_train_steps = config.max_train_steps or config.num_train_epochs * steps_per_epoch
    scheduler = get_scheduler(
        config.lr_scheduler,
        optimizer,
        num_warmup_steps=config.lr_warmup_steps * accelerator.num_processes,
        num_training_steps=max_train_steps * accelerator.num_processes,
    )
    model, optimizer, train_loader, val_loader, scheduler = accelerator.prepare(
        model, optimizer, train_loader, val_loader, scheduler
    )
    best = BestOnValidation(mode="min")
    accelerator.register_for_checkpointing(best)
    # The loader length can change under distribution: recompute the schedule of steps.
    steps_per_epoch = math.ceil(len(train_loader) / config.gradient_accumulation_steps)
    num_epochs = math.ceil(max_train_steps / steps_per_epoch)
    if accelerator.is_main_process:
        init_trackers(accelerator, "ttdnet-stage-a", config_to_dict(config))

    global_step = 0
    resume = resolve_checkpoint(output_dir, config.resume_from_checkpoint)
    if resume is not None:
        global_step, checkpoint = resume
        accelerator.print(f"Resuming from {checkpoint} (step {global_step})")
        accelerator.load_state(str(checkpoint))
    elif config.resume_from_checkpoint == "latest":
        accelerator.print(f"No checkpoint in {output_dir}; starting a new run")
    first_epoch = global_step // steps_per_epoch
    skip_batches = (global_step % steps_per_epoch) * config.gradient_accumulation_steps
    metrics = (
        MetricsCSV(output_dir / "metrics.csv", ["epoch", "split", "loss", "lr"], resume_step=global_step)
        if accelerator.is_main_process
        else None
    )

    total_batch = config.train_batch_size * accelerator.num_processes * config.gradient_accumulation_steps
    logger.info("***** Running Stage A pretraining *****")
    logger.info(f"  Training windows = {len(train_set)}, validation windows = {len(val_set)}")
    logger.info(f"  Epochs = {num_epochs}, batch per device = {config.train_batch_size}, total batch = {total_batch}")
    logger.info(
        f"  Optimisation steps = {max_train_steps}, mask ratio = {accelerator.unwrap_model(model).mask_ratio:.3f}"
    )
    progress = tqdm(
        range(max_train_steps),
        initial=global_step,
        desc="Stage A steps",
        disable=not accelerator.is_local_main_process,
    )
    started = time.perf_counter()
    samples_seen = 0
    model.train()
    for epoch in range(first_epoch, num_epochs):
        if global_step >= max_train_steps:
            break
        train_loader.set_epoch(epoch)
        loader = train_loader
        if epoch == first_epoch and skip_batches:
            loader = accelerator.skip_first_batches(train_loader, skip_batches)
        micro_step, window_loss = 0, torch.zeros((), device=accelerator.device)
        for eeg in loader:
            seed_micro_step(config.seed, global_step, micro_step, accelerator.process_index)
            with accelerator.accumulate(model):
                output = model(eeg)
                window_loss += (
                    accelerator.gather(output.loss.detach().float()).mean() / config.gradient_accumulation_steps
                )
                accelerator.backward(output.loss)
                if accelerator.sync_gradients:
                    accelerator.clip_grad_norm_(model.parameters(), config.max_grad_norm)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad()
            micro_step += 1
            samples_seen += eeg.shape[0] * accelerator.num_processes
            if not accelerator.sync_gradients:
                continue
            global_step += 1
            micro_step = 0
            loss = float(window_loss)
            window_loss.zero_()
            if not math.isfinite(loss):
                raise FloatingPointError(
                    f"training loss is {loss} at step {global_step}; "
                    "lower --learning_rate or use --mixed_precision bf16"
                )
            lr = scheduler.get_last_lr()[0]
            progress.update(1)
            progress.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.2e}")
            accelerator.log({"train/loss": loss, "train/lr": lr}, step=global_step)
            if metrics:
                metrics.log(global_step, {"epoch": epoch, "split": "train", "loss": loss, "lr": lr})
            if global_step % config.validation_steps == 0 or global_step == max_train_steps:
                val_loss = evaluate(model, val_loader, accelerator, config.seed)
                accelerator.log({"val/loss": val_loss}, step=global_step)
                if metrics:
                    metrics.log(global_step, {"epoch": epoch, "split": "val", "loss": val_loss, "lr": lr})
                if best.update(val_loss, global_step, accelerator.unwrap_model(model).encoder):
                    logger.info(f"step {global_step}: validation loss {val_loss:.5f} (best so far)")
            if global_step % config.checkpointing_steps == 0 and accelerator.is_main_process:
                save_checkpoint(accelerator, output_dir, global_step, config.checkpoints_total_limit)
            if global_step >= max_train_steps:
                break
    progress.close()
    accelerator.wait_for_everyone()
    seconds = time.perf_counter() - started
    summary = {
        "final_step": global_step,
        "best_validation_loss": best.value,
        "best_step": best.at,
        "selection": "lowest masked-MSE validation loss on held-out training concepts (never the test set)",
        "seed": config.seed,
        "mask_ratio": accelerator.unwrap_model(model).mask_ratio,
        "train_windows": len(train_set),
        "validation_windows": len(val_set),
        "seconds_this_run": round(seconds, 2),
        "samples_per_second_this_run": round(samples_seen / seconds, 2) if seconds > 0 else None,
    }
    if accelerator.is_main_process:
        encoder = accelerator.unwrap_model(model).encoder
        save_encoder(encoder, output_dir / "encoder", best.weights or None)
        save_encoder(encoder, output_dir / "encoder-last")
        atomic_write_json(output_dir / "training_summary.json", summary)
    accelerator.end_training()
    return summary


def run(config: PretrainConfig, namespace: argparse.Namespace) -> int:
    summary = train(config)
    print(json.dumps(summary, indent=2))
    return 0


COMMAND = Command(
    name="pretrain",
    summary="Stage A: pretrain the InceptSAD EEG encoder by masked temporal reconstruction (accelerate)",
    config_class=PretrainConfig,
    run=run,
    description=(
        "Pretrain the InceptSAD encoder on THINGS-EEG2 training EEG by reconstructing masked time segments. "
        "Run with `accelerate launch -m ttdnet pretrain --config configs/stage_a.yaml` for several GPUs. "
        "Writes output_dir/encoder (lowest validation loss), encoder-last, checkpoint-N, metrics.csv."
    ),
)
