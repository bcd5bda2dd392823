"""The driver behind ``ttdnet train-bridge`` (options in ``train_bridge.py``), on the shared training loop.

Order, as in diffusers' SDXL LoRA example: check the run folder, build the accelerator, seed, load the base
and build the conditioner, cache the VAE latents once, set what is trained (LoRA / full / frozen; encoder
frozen / last blocks / full) with fp32 trained parameters, register checkpoint hooks that save only the
trained state, then train with validation-driven selection and write the artifacts and a model card.
"""

import json
import logging
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from ttdnet.data import ThingsEEG2Dataset, ThingsEEG2Layout, read_image_metadata
from ttdnet.data.image_crop import typical_original_size
from ttdnet.errors import TtdnetError
from ttdnet.stages import bridge_models as models
from ttdnet.stages import bridge_validation as validation
from ttdnet.stages.contrastive import ImageNegatives, gather_batch, info_nce
from ttdnet.stages.diffusion_objective import diffusion_loss, noisy_latents_and_target


logger = logging.getLogger(__name__)

WEIGHT_DTYPES = {"no": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
VALIDATION_COLUMNS = ("diffusion_loss", "clip_top1")


def clip_targets(config, image_paths: list[str]) -> torch.Tensor | None:
    """L2-normalised CLIP image embeddings of the training images, ``(n_images, clip_dim)``, or None."""
    from ttdnet.stages.feature_file import read_feature_file

    if config.clip_features is None:
        return None
    features = read_feature_file(config.clip_features)
    features.check_paths("training", image_paths)
    if config.clip_layer not in features.layer_names:
        raise TtdnetError(
            f"--clip_layer {config.clip_layer}: {config.clip_features} holds the layers {features.layer_names}"
        )
    index = features.layer_names.index(config.clip_layer)
    targets = features.features["training"][:, index, : features.layer_dims[index]].float()
    return torch.nn.functional.normalize(targets, dim=-1)


def eeg_splits(config, signal) -> tuple[ThingsEEG2Dataset, ThingsEEG2Dataset]:
    """Training EEG (repetitions as configured) and the validation split (averaged), checked against the encoder."""
    common = {
        "subjects": config.subjects,
        "channels": list(signal.ch_names) if signal.ch_names else None,
        "tmin": config.tmin,
        "tmax": config.tmax,
        "val_fraction": config.val_fraction,
        "split_seed": config.split_seed,
        "cache_dir": config.eeg_cache_dir,
    }
    train = ThingsEEG2Dataset(
        config.dataset_root, split="train", average_repetitions=config.train_average_repetitions, **common
    )
    signal.check_matches(train.ch_names, train.n_times, train.sfreq, f"THINGS-EEG2 data in {config.dataset_root}")
    return train, ThingsEEG2Dataset(config.dataset_root, split="val", average_repetitions=True, **common)


def check_resolution(config, unet, vae) -> None:
    """The resolution must survive the VAE's and the UNet's downsampling exactly."""
    factor = 2 ** (len(vae.config.block_out_channels) - 1) * 2 ** (len(unet.config.block_out_channels) - 1)
    if config.resolution % factor:
        raise TtdnetError(f"--resolution {config.resolution} must be a multiple of {factor} for this base model")


def model_card(config, summary: dict, counts: dict[str, int], selected: str) -> str:
    """``README.md`` of a shipped bridge: base model, data, protocol, validation scores, how to load it."""
    lora = (
        f" (LoRA rank {config.rank}, alpha {config.lora_alpha or config.rank})"
        if config.unet_training == "lora"
        else ""
    )
    lines = [
        "---",
        f"base_model: {config.pretrained_model_name_or_path}",
        "library_name: diffusers",
        "tags: [stable-diffusion-xl, lora, eeg, ttdnet]",
        "---",
        "",
        "# EEG-conditioned SDXL bridge (ttdnet Stage B)",
        "",
        f"- **Base model:** `{config.pretrained_model_name_or_path}`"
        + (f", VAE `{config.pretrained_vae_model_name_or_path}`" if config.pretrained_vae_model_name_or_path else ""),
        f"- **Weights here:** {selected}; UNet training `{config.unet_training}`" + lora,
        f"- **Data:** THINGS-EEG2 `{config.dataset_root}`, subjects {config.subjects or 'all'}, "
        f"{'repetition means' if config.train_average_repetitions else 'single repetitions'}, "
        f"{summary['train_trials']} training trials, images at {config.resolution}x{config.resolution}",
        f"- **Validation:** {summary['validation_trials']} trials of held-out training concepts (val_fraction "
        f"{config.val_fraction}, split_seed {config.split_seed}); never the test set",
        f"- **Selection:** {summary['selection']}",
        f"- **Best validation:** {summary['best_validation']}",
        f"- **Seed:** {config.seed}; conditioning dropout {config.conditioning_dropout_prob}",
        "- **Trained parameters:** " + ", ".join(f"{name} {count:,}" for name, count in counts.items()),
        "",
        "```python",
        "from diffusers import StableDiffusionXLPipeline",
        "from ttdnet.models import EEGConditioner",
        "",
        f'pipe = StableDiffusionXLPipeline.from_pretrained("{config.pretrained_model_name_or_path}", '
        "text_encoder=None, text_encoder_2=None, tokenizer=None, tokenizer_2=None)",
        'pipe.load_lora_weights("THIS_FOLDER")' if config.unet_training == "lora" else "# (this folder's unet/)",
        'conditioner = EEGConditioner.from_pretrained("THIS_FOLDER/conditioner")',
        "```",
    ]
    return "\n".join(lines) + "\n"


def train(config) -> dict:
    """Run Stage B; return a summary (also in ``output_dir/training_summary.json``)."""
    from accelerate.utils import set_seed
    from diffusers import EulerDiscreteScheduler

    from ttdnet.config import config_to_dict
    from ttdnet.data.cache import default_cache_dir
    from ttdnet.io import atomic_write_json
    from ttdnet.stages.accelerator_setup import create_accelerator, on_main_process
    from ttdnet.stages.latent_cache import LatentCache, build_latent_cache
    from ttdnet.stages.run_folder import MAY_CHANGE_ON_RESUME, open_run_folder
    from ttdnet.stages.selection import BestOnValidation
    from ttdnet.stages.training_logs import init_trackers
    from ttdnet.stages.training_loop import TrainingLoop

    logging.basicConfig(format="%(asctime)s - %(levelname)s - %(name)s - %(message)s", level=logging.INFO)
    if config.dataset_root is None:
        raise TtdnetError("no data: give --dataset_root (a THINGS-EEG2 root)")
    if config.selection_metric == "clip_top1" and config.clip_features is None:
        raise TtdnetError("--selection_metric clip_top1 needs the CLIP head: give --clip_features")
    if config.use_8bit_adam:
        try:
            import bitsandbytes  # noqa: F401
        except ImportError:
            raise TtdnetError("--use_8bit_adam needs bitsandbytes: pip install bitsandbytes (CUDA only)") from None
    may_change = set(MAY_CHANGE_ON_RESUME)
    if config.lr_scheduler in ("constant", "constant_with_warmup"):
        may_change |= {"num_train_epochs", "max_train_steps"}
    run = open_run_folder(config, "train-bridge", may_change)
    accelerator = create_accelerator(config, config.gradient_accumulation_steps, find_unused_parameters=True)
    if config.allow_tf32:
        torch.backends.cuda.matmul.allow_tf32 = True
    weight_dtype = WEIGHT_DTYPES[accelerator.mixed_precision]
    set_seed(config.seed)  # before the conditioner and the LoRA are built

    base = models.load_base(config, weight_dtype)
    unet, vae, noise_scheduler = base["unet"], base["vae"], base["scheduler"]
    check_resolution(config, unet, vae)
    image_dir = ThingsEEG2Layout.discover(config.dataset_root).image_dir
    image_paths = read_image_metadata(image_dir).relative_paths("training")
    targets = clip_targets(config, image_paths)
    conditioner = models.build_conditioner(config, unet.config, None if targets is None else targets.shape[1])
    with accelerator.main_process_first():
        train_set, val_set = eeg_splits(config, conditioner.signal)
        vae.to(accelerator.device)
        cache_file = build_latent_cache(
            config.latent_cache_dir or default_cache_dir() / "latents", vae, image_dir, image_paths,
            config.resolution, config.random_flip,
        )  # fmt: skip
    cache = LatentCache(cache_file)
    original_size = typical_original_size(image_dir, image_paths)
    trials = validation.validation_trials(val_set, config.num_validation_trials, config.num_validation_images)
    if config.selection_metric == "clip_top1" and not trials.galleries:
        raise TtdnetError("--selection_metric clip_top1 needs at least 2 held-out concepts: raise --val_fraction")
    run.commit(accelerator, config)

    model = models.BridgeModel(conditioner, unet)
    groups = models.configure_training(config, model, weight_dtype)
    counts = models.trained_parameter_counts(model)
    keys = models.trained_keys(model)
    models.register_checkpoint_hooks(accelerator, keys)
    optimizer_class = torch.optim.AdamW
    if config.use_8bit_adam:
        import bitsandbytes

        optimizer_class = bitsandbytes.optim.AdamW8bit
    param_groups = [{"params": groups["bridge"] + groups["unet"], "lr": config.learning_rate}]
    if groups["encoder"]:
        param_groups.append({"params": groups["encoder"], "lr": config.encoder_learning_rate})
    optimizer = optimizer_class(param_groups, betas=(config.adam_beta1, config.adam_beta2),
                                weight_decay=config.adam_weight_decay, eps=config.adam_epsilon)  # fmt: skip
    train_loader = DataLoader(train_set, batch_size=config.train_batch_size, shuffle=True,
                              drop_last=len(train_set) >= config.train_batch_size,
                              num_workers=config.dataloader_num_workers)  # fmt: skip
    best = BestOnValidation("max" if config.selection_metric == "clip_top1" else "min")
    negatives = ImageNegatives(config.clip_queue_size)
    accelerator.register_for_checkpointing(best)
    accelerator.register_for_checkpointing(negatives)
    loop = TrainingLoop(
        accelerator, config, config.output_dir, model=model, optimizer=optimizer, train_loader=train_loader,
        best=best, name="Stage B steps", metric_columns=["diffusion", "clip", *VALIDATION_COLUMNS],
        selected_state=lambda unwrapped: models.trained_state(unwrapped, keys),
    )  # fmt: skip
    if accelerator.is_main_process:
        tracked = config_to_dict(config) | {f"trained_{name}": count for name, count in counts.items()}
        init_trackers(accelerator, "ttdnet-stage-b", tracked)
        logger.info("***** Running Stage B *****")
        logger.info(f"  Trained parameters: {counts}")
        logger.info(f"  Training trials = {len(train_set)}, validation trials = {len(val_set)}, total batch = "
                    f"{loop.plan.total_batch_size}, steps = {loop.plan.max_train_steps}")  # fmt: skip
    loop.resume(config.resume_from_checkpoint)
    device, scaling = accelerator.device, vae.config.scaling_factor
    num_train_timesteps = noise_scheduler.config.num_train_timesteps

    def compute_loss(batch, epoch):
        size = batch.eeg.shape[0]
        flipped = torch.rand(size) < 0.5 if config.random_flip else None
        latents = cache.latents(batch.image_index, flipped).to(device) * scaling
        noise = torch.randn(latents.shape)
        if config.noise_offset:
            noise += config.noise_offset * torch.randn(size, latents.shape[1], 1, 1)
        noise = noise.to(device)
        timesteps = torch.randint(0, num_train_timesteps, (size,)).to(device)
        drop = (torch.rand(size) < config.conditioning_dropout_prob).to(device)
        noisy, target = noisy_latents_and_target(noise_scheduler, latents, noise, timesteps)
        time_ids = cache.time_ids(batch.image_index, flipped).to(device)
        prediction, clip_embedding, scale = loop.model(batch.eeg.to(device), noisy, timesteps, time_ids, drop)
        denoising = diffusion_loss(prediction, target, noise_scheduler, timesteps, config.snr_gamma)
        terms = {"diffusion": denoising.detach()}
        if targets is None:
            return denoising, terms
        ids = gather_batch(batch.image_index.to(device))
        images = targets[ids.cpu()].to(device)
        extra_images, extra_ids = negatives.extra(device)
        contrastive = info_nce(
            gather_batch(clip_embedding.float()), images, scale.float(), ids, extra_images, extra_ids
        )
        negatives.add(images, ids, end_of_window=accelerator.sync_gradients)
        terms["clip"] = contrastive.detach()
        return denoising + config.clip_loss_weight * contrastive, terms

    inference_scheduler = EulerDiscreteScheduler.from_config(noise_scheduler.config)
    grid_folder = Path(config.output_dir) / "validation"

    def score_validation(step):
        logger.info(f"Stage B: validation at step {step} on process {accelerator.process_index}")
        unwrapped = loop.unwrapped_model
        with accelerator.autocast():
            loss = validation.diffusion_validation_loss(
                unwrapped, trials, cache, noise_scheduler, scaling, config.validation_timesteps, config.seed,
                config.train_batch_size, device,
            )  # fmt: skip
            metrics = {"val/diffusion_loss": loss}
            if targets is not None and trials.galleries:
                metrics["val/clip_top1"] = validation.clip_validation_top1(
                    unwrapped, trials, targets, config.train_batch_size, device
                )
            if config.num_validation_images:
                inference_scheduler_copy = EulerDiscreteScheduler.from_config(inference_scheduler.config)
                grid, _ = validation.render_validation_grid(unwrapped, vae, inference_scheduler_copy, trials,
                                                            config, device, original_size)  # fmt: skip
                validation.save_grid(grid, grid_folder, step)
                validation.log_grid(accelerator, grid, step)
        return metrics[f"val/{config.selection_metric}"], metrics

    result = loop.run(
        compute_loss,
        validate=lambda step, epoch: on_main_process(accelerator, lambda: score_validation(step)),
        validation_steps=config.validation_steps,
        validate_before_training=True,
        divergence_hint=(
            "lower --learning_rate; with --mixed_precision fp16 use bf16 or an fp16-safe VAE "
            "(--pretrained_vae_model_name_or_path madebyollin/sdxl-vae-fp16-fix)"
        ),
    )
    selected = loop.selected_weights()
    summary = {
        "final_step": result.final_step,
        "selection": (
            f"best validation {config.selection_metric} (held-out training concepts), step {best.step}"
            if selected is not None
            else "last step (--model_selection last)"
        ),
        "best_validation": {config.selection_metric: best.value, "step": best.step} if selected is not None else None,
        "trained_parameters": counts,
        "train_trials": len(train_set),
        "validation_trials": len(val_set),
        "latent_cache": str(cache_file),
        "num_processes": accelerator.num_processes,
        "total_batch_size": loop.plan.total_batch_size,
        "seconds_this_run": result.seconds,
        "seed": config.seed,
    }
    if accelerator.is_main_process:
        unwrapped = loop.unwrapped_model
        bridge = json.dumps({
            "base_model": config.pretrained_model_name_or_path, "vae": config.pretrained_vae_model_name_or_path,
            "revision": config.revision, "variant": config.variant, "unet_training": config.unet_training,
            "resolution": config.resolution, "original_size": list(original_size),
            "prediction_type": noise_scheduler.config.prediction_type,
            "eeg": {"ch_names": list(train_set.ch_names), "sfreq": train_set.sfreq, "n_times": train_set.n_times,
                    "tmin": float(train_set.times[0])},
        }, indent=2)  # fmt: skip
        output = Path(config.output_dir)
        last = models.trained_state(unwrapped, keys)
        card = model_card(config, summary, counts, "the last step")
        models.save_bridge(unwrapped, config, output / "model-last", {"README.md": card, "bridge.json": bridge})
        if selected is not None:
            models.load_trained_state(unwrapped, selected, keys, "the selected weights")
        card = model_card(config, summary, counts, summary["selection"])
        models.save_bridge(unwrapped, config, output / "model", {"README.md": card, "bridge.json": bridge})
        models.load_trained_state(unwrapped, last, keys, "the last weights")
        atomic_write_json(output / "training_summary.json", summary)
    accelerator.end_training()
    return summary
