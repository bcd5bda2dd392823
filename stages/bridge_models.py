"""Stage B's models: the SDXL base as loaded, the EEG conditioner, what is trained, and what is saved.

* The base (UNet, VAE, scheduler config) comes from a hub id or a local diffusers folder; no text encoder or
  tokenizer is ever loaded. The frozen base runs in the mixed-precision dtype; trained parameters stay in fp32
  (``cast_training_params``); the VAE stays fp32 unless another VAE is given (the fp16-fix VAE).
* ``--unet_training lora`` attaches a PEFT LoRA with ``unet.add_adapter`` and keeps diffusers' stock SDPA
  attention processors; ``full`` trains every UNet weight; ``frozen`` trains only the bridge.
* Checkpoints and the selected weights hold the **trained state**: the EEG conditioner (trained or frozen: it is
  small, and a frozen fresh encoder could not be rebuilt otherwise) and the UNet's trained parameters with the
  buffers of their modules. Never a copy of the frozen SDXL base.
"""

import logging
import os
import types
from pathlib import Path

import torch
from torch import nn

from ttdnet.errors import ConfigError, TtdnetError
from ttdnet.io import atomic_directory
from ttdnet.stages.training_loop import freeze


logger = logging.getLogger(__name__)

TRAINED_STATE_FILE = "trained_state.safetensors"


class BridgeModel(nn.Module):
    """The EEG conditioner and the UNet as one module, so that DDP, accumulation and checkpoints see one model.

    Parameters
    ----------
    conditioner : ttdnet.models.EEGConditioner
    unet : diffusers.UNet2DConditionModel
    """

    def __init__(self, conditioner, unet):
        super().__init__()
        self.conditioner, self.unet = conditioner, unet

    def forward(self, eeg, noisy_latents, timesteps, time_ids, drop=None):
        """Predict the UNet target for noisy latents conditioned on EEG.

        Parameters
        ----------
        eeg : torch.Tensor, shape (B, n_chans, n_times)
        noisy_latents : torch.Tensor, shape (B, C, h, w)
        timesteps : torch.Tensor of int64, shape (B,)
        time_ids : torch.Tensor, shape (B, 6)
        drop : torch.Tensor of bool, shape (B,), optional
            Conditioning dropout: these samples get the null conditioning.

        Returns
        -------
        prediction : torch.Tensor, shape (B, C, h, w)
        clip_embedding : torch.Tensor or None, shape (B, clip_dim)
        logit_scale : torch.Tensor or None, shape ()
            The CLIP head's; returned from the forward pass so DDP sees it used inside the wrapped model.
        """
        condition = self.conditioner(eeg, drop)
        dtype = self.unet.dtype
        prediction = self.unet(
            noisy_latents.to(dtype),
            timesteps,
            encoder_hidden_states=condition.encoder_hidden_states.to(dtype),
            added_cond_kwargs={"text_embeds": condition.pooled.to(dtype), "time_ids": time_ids.to(dtype)},
        ).sample
        scale = self.conditioner.logit_scale
        # A non-leaf copy: DDP (find_unused_parameters) would take a parameter returned as such for unused.
        return prediction, condition.clip_embedding, None if scale is None else scale.clone()


def load_base(config, weight_dtype: torch.dtype) -> dict:
    """The UNet, VAE and scheduler config of the base model, with clear errors for missing weights offline."""
    from diffusers import AutoencoderKL, UNet2DConditionModel

    from ttdnet.stages.diffusion_objective import training_scheduler

    source = config.pretrained_model_name_or_path
    try:
        scheduler = training_scheduler(source, config.revision, config.cache_dir)
        unet = UNet2DConditionModel.from_pretrained(
            source, subfolder="unet", revision=config.revision, variant=config.variant, cache_dir=config.cache_dir
        )
        vae_source = config.pretrained_vae_model_name_or_path
        vae = AutoencoderKL.from_pretrained(
            vae_source or source,
            subfolder=None if vae_source else "vae",
            revision=None if vae_source else config.revision,
            variant=None if vae_source else config.variant,
            cache_dir=config.cache_dir,
        )
    except (OSError, ValueError) as error:
        raise TtdnetError(
            f"cannot load the SDXL base from {source!r} ({str(error).splitlines()[0]}); give a local diffusers "
            "folder (unet/, vae/, scheduler/) or, online, a hub id; offline (HF_HUB_OFFLINE=1) only the hub cache "
            "(--cache_dir) is read"
        ) from error
    freeze(vae)
    vae.to(weight_dtype if vae_source else torch.float32)
    return {"unet": unet, "vae": vae, "scheduler": scheduler}


def build_conditioner(config, unet_config, clip_dim: int | None):
    """The EEG conditioner: a Stage A encoder (or a fresh preset), sizes from the UNet's config.

    ``clip_dim`` is the width of the CLIP targets (None: no CLIP-alignment head).
    """
    from ttdnet.models import EEGConditioner, InceptSADEncoder, conditioning_dims, encoder_preset

    cross_attention_dim, pooled_dim = conditioning_dims(unet_config)
    if config.encoder_pretrained is not None:
        if not (Path(config.encoder_pretrained) / "config.json").is_file():
            raise TtdnetError(f"--encoder_pretrained {config.encoder_pretrained}: no config.json (a Stage A encoder/)")
        encoder = InceptSADEncoder.from_pretrained(config.encoder_pretrained)
    else:
        encoder = InceptSADEncoder(**encoder_preset(config.encoder_preset))
    conditioner = EEGConditioner(
        encoder_name="inceptsad",
        encoder_config=dict(encoder.config),
        cross_attention_dim=cross_attention_dim,
        pooled_dim=pooled_dim,
        n_queries=config.n_queries,
        resampler_dim=config.resampler_dim,
        resampler_depth=config.resampler_depth,
        resampler_heads=config.resampler_heads,
        clip_dim=clip_dim,
        clip_hidden_dim=config.clip_hidden_dim,
    )
    conditioner.encoder.load_state_dict(encoder.state_dict())
    return conditioner


def configure_training(config, model: BridgeModel, weight_dtype: torch.dtype) -> dict[str, list[nn.Parameter]]:
    """Freeze or unfreeze each part as the config says; return the trained parameters by optimizer group.

    Returns
    -------
    dict
        ``{"bridge": [...], "encoder": [...], "unet": [...]}`` (possibly empty lists).
    """
    from diffusers.training_utils import cast_training_params
    from peft import LoraConfig

    encoder, unet = model.conditioner.encoder, model.unet
    if config.encoder_training == "frozen":
        freeze(encoder)
    elif config.encoder_training == "last_blocks":
        blocks = getattr(encoder, "blocks", None)
        if blocks is None or config.encoder_trainable_blocks > len(blocks):
            raise ConfigError(
                f"--encoder_trainable_blocks {config.encoder_trainable_blocks}: the encoder has "
                f"{0 if blocks is None else len(blocks)} transformer blocks"
            )
        encoder.requires_grad_(False)
        for block in list(blocks)[-config.encoder_trainable_blocks :]:
            block.requires_grad_(True)
        encoder.norm.requires_grad_(True)
    if config.unet_training == "full":
        unet.requires_grad_(True)
    else:
        unet.requires_grad_(False)
        unet.to(weight_dtype)
        if config.unet_training == "lora":
            lora = LoraConfig(
                r=config.rank,
                lora_alpha=config.lora_alpha or config.rank,
                init_lora_weights="gaussian",
                target_modules=list(config.lora_target_modules),
            )
            try:
                unet.add_adapter(lora)
            except ValueError as error:
                raise ConfigError(f"--lora_target_modules {config.lora_target_modules}: {error}") from error
            cast_training_params(unet, dtype=torch.float32)
        else:
            freeze(unet)
    if config.gradient_checkpointing:
        unet.enable_gradient_checkpointing()
    encoder_ids = {id(p) for p in encoder.parameters()}
    return {
        "bridge": [p for p in model.conditioner.parameters() if p.requires_grad and id(p) not in encoder_ids],
        "encoder": [p for p in encoder.parameters() if p.requires_grad],
        "unet": [p for p in unet.parameters() if p.requires_grad],
    }


def trained_parameter_counts(model: BridgeModel) -> dict[str, int]:
    """Trained parameters per module: encoder, resampler, pooled projection, null conditioning, CLIP head, UNet."""
    conditioner = model.conditioner
    parts = {
        "encoder": conditioner.encoder,
        "resampler": conditioner.resampler,
        "pooled_proj": conditioner.pooled_proj,
        "clip_head": conditioner.clip_head,
        "unet": model.unet,
    }
    counts = {name: sum(p.numel() for p in part.parameters() if p.requires_grad) if part is not None else 0
              for name, part in parts.items()}  # fmt: skip
    counts["null_conditioning"] = conditioner.null_tokens.numel() + conditioner.null_pooled.numel()
    counts["logit_scale"] = 1 if conditioner.logit_scale is not None else 0
    counts["total"] = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return counts


def trained_keys(model: BridgeModel) -> list[str]:
    """State-dict keys of the saved state: the whole EEG conditioner (small; a frozen fresh encoder could not be
    rebuilt otherwise), and of the UNet the parameters that require grad and the buffers of their modules."""
    keys = [f"conditioner.{key}" for key in model.conditioner.state_dict()]
    for module_name, module in model.unet.named_modules(prefix="unet"):
        own = list(module.named_parameters(recurse=False))
        if not any(p.requires_grad for _, p in own):
            continue
        keys += [f"{module_name}.{name}" for name, p in own if p.requires_grad]
        keys += [f"{module_name}.{name}" for name, _ in module.named_buffers(recurse=False)]
    return keys


def trained_state(model: nn.Module, keys: list[str]) -> dict[str, torch.Tensor]:
    """CPU copies of ``keys`` of ``model``'s state dict."""
    state = model.state_dict()
    return {key: state[key].detach().cpu().clone().contiguous() for key in keys}


def load_trained_state(model: nn.Module, state: dict[str, torch.Tensor], keys: list[str], source: str) -> None:
    """Load a trained state; a key missing from it, or one that is not trained here, is an error."""
    missing, unexpected = sorted(set(keys) - set(state)), sorted(set(state) - set(keys))
    if missing or unexpected:
        raise TtdnetError(
            f"{source} does not match this model's trained parameters (missing {missing[:3]}, unexpected "
            f"{unexpected[:3]}); it was written with other --unet_training/--encoder_training/--rank options"
        )
    model.load_state_dict(state, strict=False)


def register_checkpoint_hooks(accelerator, keys: list[str]) -> None:
    """Make ``accelerator.save_state`` write only the trained state (``trained_state.safetensors``)."""
    from safetensors.torch import load_file, save_file

    def save_hook(models, weights, output_dir):
        for model in models:
            state = trained_state(accelerator.unwrap_model(model), keys)
            if accelerator.is_main_process:
                save_file(state, os.path.join(output_dir, TRAINED_STATE_FILE))
        weights.clear()  # accelerate must not write the full model (the frozen base) as well

    def load_hook(models, input_dir):
        path = os.path.join(input_dir, TRAINED_STATE_FILE)
        while models:
            model = accelerator.unwrap_model(models.pop())
            load_trained_state(model, load_file(path), keys, path)

    accelerator.register_save_state_pre_hook(save_hook)
    accelerator.register_load_state_pre_hook(load_hook)


def save_bridge(model: BridgeModel, config, path: Path, extra_files: dict[str, str]) -> Path:
    """Write the shipped artifacts into ``path`` (atomically: a temporary folder renamed into place).

    ``pytorch_lora_weights.safetensors`` (diffusers format, read by ``StableDiffusionXLPipeline.load_lora_weights``)
    for a LoRA, ``unet/`` for a fully trained UNet, ``conditioner/`` (``save_pretrained``), and ``extra_files``
    (name -> text: the model card, ``bridge.json``).
    """
    from diffusers import StableDiffusionXLPipeline
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft.utils import get_peft_model_state_dict

    with atomic_directory(path) as temporary:
        if config.unet_training == "lora":
            layers = convert_state_dict_to_diffusers(get_peft_model_state_dict(model.unet))
            StableDiffusionXLPipeline.save_lora_weights(temporary, unet_lora_layers=layers, safe_serialization=True)
        elif config.unet_training == "full":
            model.unet.save_pretrained(temporary / "unet")
        model.conditioner.save_pretrained(temporary / "conditioner")
        for name, text in extra_files.items():
            (temporary / name).write_text(text, encoding="utf-8")
    return path


def load_trained_bridge(folder: str | os.PathLike, base: dict) -> tuple:
    """A trained bridge ready to generate: ``(pipeline, conditioner, record)``.

    Parameters
    ----------
    folder : path-like
        A shipped bridge (``output_dir/model`` or ``model-last``: ``conditioner/``, a LoRA or ``unet/``,
        ``bridge.json``), or a ``checkpoint-N`` of a ``train-bridge`` run (rebuilt from the run's ``config.yaml``).
    base : dict
        ``pretrained_model_name_or_path``, ``pretrained_vae_model_name_or_path``, ``revision``, ``variant``,
        ``cache_dir``; None values take what the bridge was trained with.

    Returns
    -------
    pipeline : diffusers.StableDiffusionXLPipeline
        Without text encoders or tokenizers, the LoRA (or trained UNet) in place, in fp32 on the CPU.
    conditioner : ttdnet.models.EEGConditioner
    record : dict
        ``bridge.json``: base model, resolution, prediction type, and the EEG window (``eeg``).
    """
    from diffusers import StableDiffusionXLPipeline, UNet2DConditionModel
    from safetensors.torch import load_file

    from ttdnet.models import EEGConditioner
    from ttdnet.stages.checkpoints import CHECKPOINT_PATTERN
    from ttdnet.stages.run_folder import CONFIG_NAME, read_saved_config

    folder = Path(folder)
    if CHECKPOINT_PATTERN.match(folder.name):
        from ttdnet.stages.train_bridge import BridgeConfig

        saved = read_saved_config(folder.parent / CONFIG_NAME, "train-bridge")
        fields = set(BridgeConfig.__dataclass_fields__)
        config = BridgeConfig(**{key: value for key, value in saved.items() if key in fields})
        from ttdnet.data import ThingsEEG2Layout, read_image_metadata
        from ttdnet.data.image_crop import typical_original_size

        image_dir = ThingsEEG2Layout.discover(config.dataset_root).image_dir
        original_size = typical_original_size(image_dir, read_image_metadata(image_dir).relative_paths("training"))
        record = {"base_model": config.pretrained_model_name_or_path, "vae": config.pretrained_vae_model_name_or_path,
                  "revision": config.revision, "variant": config.variant, "resolution": config.resolution,
                  "original_size": list(original_size), "eeg": {"tmin": config.tmin}}  # fmt: skip
    elif (folder / "bridge.json").is_file() and (folder / "conditioner").is_dir():
        import json

        record = json.loads((folder / "bridge.json").read_text(encoding="utf-8"))
    else:
        raise TtdnetError(
            f"--bridge {folder}: not a trained bridge (output_dir/model of `ttdnet train-bridge`, with bridge.json "
            "and conditioner/) nor one of its checkpoint-N folders"
        )
    source = {key: base.get(key) for key in ("revision", "variant", "cache_dir")}
    base_model = base.get("pretrained_model_name_or_path") or record["base_model"]
    vae_model = base.get("pretrained_vae_model_name_or_path") or record.get("vae")
    settings = {"pretrained_model_name_or_path": base_model, "pretrained_vae_model_name_or_path": vae_model,
                "revision": source["revision"] or record.get("revision"),
                "variant": source["variant"] or record.get("variant"), "cache_dir": source["cache_dir"]}  # fmt: skip
    components = load_base(types.SimpleNamespace(**settings), torch.float32)
    unet = components["unet"]
    if CHECKPOINT_PATTERN.match(folder.name):
        state = load_file(str(folder / TRAINED_STATE_FILE))
        clip = state.get("conditioner.clip_head.2.weight")
        model = BridgeModel(build_conditioner(config, unet.config, None if clip is None else clip.shape[0]), unet)
        configure_training(config, model, torch.float32)
        load_trained_state(model, state, trained_keys(model), str(folder / TRAINED_STATE_FILE))
        conditioner = model.conditioner
    else:
        conditioner = EEGConditioner.from_pretrained(folder / "conditioner")
        if (folder / "unet").is_dir():
            unet = UNet2DConditionModel.from_pretrained(folder / "unet")
    pipeline = StableDiffusionXLPipeline(
        vae=components["vae"], text_encoder=None, text_encoder_2=None, tokenizer=None, tokenizer_2=None, unet=unet,
        scheduler=components["scheduler"],
    )  # fmt: skip
    if not CHECKPOINT_PATTERN.match(folder.name) and (folder / "pytorch_lora_weights.safetensors").is_file():
        pipeline.load_lora_weights(folder)
    record = {**record, "base_model": base_model, "vae": vae_model, "source": str(folder)}
    return pipeline, freeze(conditioner), record
