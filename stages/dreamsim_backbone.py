"""DreamSim as a ``ttdnet features`` backbone: its ViT towers, its LoRA adapter and its embedding.

A DreamSim checkpoint folder (what ``dreamsim(cache_dir=FOLDER)`` leaves behind, or DreamSim's release zip
unzipped, plus the DINO / DINOv2 hub weights under ``checkpoints/``) holds ViT-B towers in the DINO ViT layout
and one LoRA adapter on every attention ``qkv``. The towers are rebuilt here as timm ``VisionTransformer``s
(same module names, same computation), the adapter is loaded and merged with PEFT, and the embedding is
DreamSim's ``embed`` with its default ``normalize_embeds=True``:

* the image is resized to 224 x 224 (bicubic, aspect ratio not kept, no crop) with values in [0, 1]; each tower
  then applies its own normalisation (ImageNet statistics for DINO, DINOv2 and SynCLR, OpenAI CLIP statistics
  for CLIP and OpenCLIP);
* DINO-family towers give the CLS token of their last block (before the final norm); CLIP-family towers give
  the final-norm CLS token times their projection matrix;
* the towers' vectors are concatenated, centred (their mean over dimensions subtracted) and L2-normalised.
"""

import dataclasses
import json
from functools import partial
from pathlib import Path

import torch
from torch import nn

from ttdnet.errors import TtdnetError
from ttdnet.image_constants import CLIP_MEAN, CLIP_STD, IMAGENET_MEAN, IMAGENET_STD
from ttdnet.stages.image_backbones import Backbone, file_identity
from ttdnet.state_dicts import read_tensor_file


IMAGE_SIZE = 224
HEAD_DIM = 64  # every DreamSim tower is a ViT-B: 768 wide, 12 heads of 64
RELEASES = "https://github.com/ssundaram21/dreamsim/releases/download"
FAIR = "https://dl.fbaipublicfiles.com"
ADAPTER_WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin")


@dataclasses.dataclass(frozen=True)
class Tower:
    """One ViT of DreamSim.

    Attributes
    ----------
    weight_file : str
        Path inside the checkpoint folder.
    source : str or None
        Where the file comes from when DreamSim's zip does not hold it (the torch hub weights it loads).
    feature : {"cls", "embedding"}
        ``cls``: the last block's CLS token. ``embedding``: the final-norm CLS token times ``proj`` (CLIP layout:
        a LayerNorm after the position embedding, every LayerNorm with eps 1e-5).
    quick_gelu : bool
        OpenAI CLIP's ``x * sigmoid(1.702 x)`` activation instead of GELU.
    mean, std : tuple of float
        The tower's input normalisation.
    container_key : str or None
        Key of the state dict inside the file (None: the file is the state dict).
    key_prefix : str
        Prefix stripped from every key.
    """

    weight_file: str
    source: str | None
    feature: str
    quick_gelu: bool
    mean: tuple[float, ...]
    std: tuple[float, ...]
    container_key: str | None = None
    key_prefix: str = ""


TOWERS = {
    "dino_vitb16": Tower("checkpoints/dino_vitbase16_pretrain.pth",
                         f"{FAIR}/dino/dino_vitbase16_pretrain/dino_vitbase16_pretrain.pth", "cls", False,
                         IMAGENET_MEAN, IMAGENET_STD),
    "dinov2_vitb14": Tower("checkpoints/dinov2_vitb14_pretrain.pth",
                           f"{FAIR}/dinov2/dinov2_vitb14/dinov2_vitb14_pretrain.pth", "cls", False,
                           IMAGENET_MEAN, IMAGENET_STD),
    "synclr_vitb16": Tower("synclr_vit_b_16.pth", None, "cls", False, IMAGENET_MEAN, IMAGENET_STD, "model",
                           "module.visual."),
    "clip_vitb16": Tower("clip_vitb16_pretrain.pth.tar", None, "embedding", True, CLIP_MEAN, CLIP_STD, "state_dict"),
    "clip_vitb32": Tower("clip_vitb32_pretrain.pth.tar", None, "embedding", True, CLIP_MEAN, CLIP_STD, "state_dict"),
    "open_clip_vitb16": Tower("open_clip_vitb16_pretrain.pth.tar", None, "embedding", False, CLIP_MEAN, CLIP_STD,
                              "state_dict"),
    "open_clip_vitb32": Tower("open_clip_vitb32_pretrain.pth.tar", None, "embedding", False, CLIP_MEAN, CLIP_STD,
                              "state_dict"),
}  # fmt: skip


@dataclasses.dataclass(frozen=True)
class Variant:
    """A DreamSim model: its towers (in embedding order), its adapter folder and the release zip holding both."""

    towers: tuple[str, ...]
    adapter_dir: str
    archive: str


VARIANTS = {
    "ensemble": Variant(("dino_vitb16", "clip_vitb16", "open_clip_vitb16"), "ensemble_lora",
                        f"{RELEASES}/v0.2.0-checkpoints/dreamsim_ensemble_checkpoint.zip"),
    "dino_vitb16": Variant(("dino_vitb16",), "dino_vitb16_single_lora",
                           f"{RELEASES}/v0.2.0-checkpoints/dreamsim_dino_vitb16_checkpoint.zip"),
    "clip_vitb32": Variant(("clip_vitb32",), "clip_vitb32_single_lora",
                           f"{RELEASES}/v0.2.0-checkpoints/dreamsim_clip_vitb32_checkpoint.zip"),
    "open_clip_vitb32": Variant(("open_clip_vitb32",), "open_clip_vitb32_single_lora",
                                f"{RELEASES}/v0.2.0-checkpoints/dreamsim_open_clip_vitb32_checkpoint.zip"),
    "dinov2_vitb14": Variant(("dinov2_vitb14",), "dinov2_vitb14_single_lora",
                             f"{RELEASES}/v0.2.1-checkpoints/dreamsim_dinov2_vitb14_checkpoint.zip"),
    "synclr_vitb16": Variant(("synclr_vitb16",), "synclr_vitb16_single_lora",
                             f"{RELEASES}/v0.2.1-checkpoints/dreamsim_synclr_vitb16_checkpoint.zip"),
}  # fmt: skip


def missing_files(variant: Variant, root: Path) -> list[str]:
    """``"<paths> (from <where>)"``, one entry per source, for the files of ``variant`` absent from ``root``."""
    by_source: dict[str, list[str]] = {}
    for name in variant.towers:
        tower = TOWERS[name]
        if not (root / tower.weight_file).is_file():
            by_source.setdefault(tower.source or variant.archive, []).append(str(root / tower.weight_file))
    adapter = root / variant.adapter_dir
    if not (adapter / "adapter_config.json").is_file():
        by_source.setdefault(variant.archive, []).append(str(adapter / "adapter_config.json"))
    if not any((adapter / name).is_file() for name in ADAPTER_WEIGHTS):
        by_source.setdefault(variant.archive, []).append(f"{adapter}/{' or '.join(ADAPTER_WEIGHTS)}")
    return [f"{', '.join(paths)} (from {source})" for source, paths in by_source.items()]


def tower_state(name: str, path: Path) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
    """The DINO-layout state dict of a tower's file and its projection matrix (``embedding`` towers)."""
    tower = TOWERS[name]
    stored = read_tensor_file(path, f"the DreamSim {name} weights")
    if tower.container_key is not None:
        if not isinstance(stored, dict) or tower.container_key not in stored:
            raise TtdnetError(f"{path}: no {tower.container_key!r} entry; this is not DreamSim's {name} file")
        stored = stored[tower.container_key]
    state = {key.removeprefix(tower.key_prefix): value for key, value in stored.items()}
    projection = state.pop("proj", None)
    if tower.feature == "embedding" and projection is None:
        raise TtdnetError(f"{path}: no 'proj' matrix; this is not DreamSim's {name} file")
    return state, projection


def position_embedding_for(pos_embed: torch.Tensor, grid: int) -> torch.Tensor:
    """The position embedding of a ``grid x grid`` patch input, resampled as DINO / DINOv2 do at run time.

    Parameters
    ----------
    pos_embed : torch.Tensor, shape (1, 1 + side², D)
        CLS position first, then the ``side x side`` patch grid.

    Returns
    -------
    torch.Tensor, shape (1, 1 + grid², D)
        Unchanged when ``side == grid``; else bicubic with scale factor ``(grid + 0.1) / side`` (DINOv2's
        ``interpolate_pos_encoding``, which DreamSim's DINOv2 tower runs at 224 px).
    """
    side = round((pos_embed.shape[1] - 1) ** 0.5)
    if side == grid:
        return pos_embed
    if side * side != pos_embed.shape[1] - 1:
        raise TtdnetError(f"position embedding of {pos_embed.shape[1]} tokens is no CLS token + square grid")
    patches = pos_embed[:, 1:].float().reshape(1, side, side, -1).permute(0, 3, 1, 2)
    scale = (grid + 0.1) / side
    patches = nn.functional.interpolate(patches, scale_factor=(scale, scale), mode="bicubic")
    patches = patches.permute(0, 2, 3, 1).reshape(1, grid * grid, -1)
    return torch.cat([pos_embed[:, :1].float(), patches], dim=1).to(pos_embed.dtype)


def tower_vit(name: str, state: dict[str, torch.Tensor], path: Path) -> nn.Module:
    """A timm ``VisionTransformer`` at 224 px holding a tower's weights; its size is read from the weights."""
    from timm.models.vision_transformer import VisionTransformer

    tower = TOWERS[name]
    clip_layout = tower.feature == "embedding"
    try:
        width = state["cls_token"].shape[-1]
        patch = state["patch_embed.proj.weight"].shape[-1]
        depth = 1 + max(int(key.split(".")[1]) for key in state if key.startswith("blocks."))
        mlp_ratio = state["blocks.0.mlp.fc1.weight"].shape[0] / width
    except (KeyError, ValueError) as error:
        raise TtdnetError(
            f"{path}: not a ViT in the DINO layout (no {error}); this is not DreamSim's {name} file"
        ) from error
    eps = 1e-5 if clip_layout else 1e-6
    vit = VisionTransformer(
        img_size=IMAGE_SIZE, patch_size=patch, num_classes=0, global_pool="token", embed_dim=width, depth=depth,
        num_heads=max(1, width // HEAD_DIM), mlp_ratio=mlp_ratio, qkv_bias=True,
        init_values=1.0 if "blocks.0.ls1.gamma" in state else None, norm_layer=partial(nn.LayerNorm, eps=eps),
        act_layer="quick_gelu" if tower.quick_gelu else None,
    )  # fmt: skip
    if clip_layout:  # DreamSim stores CLIP's ln_pre in the DINO ViT's pos_drop slot
        vit.norm_pre = nn.LayerNorm(width, eps=eps)
        state = {("norm_pre." + key.removeprefix("pos_drop.") if key.startswith("pos_drop.") else key): value
                 for key, value in state.items()}  # fmt: skip
    state = {key: value for key, value in state.items() if key != "mask_token"}  # DINOv2's, unused at inference
    state["pos_embed"] = position_embedding_for(state["pos_embed"], IMAGE_SIZE // patch)
    try:
        result = vit.load_state_dict(state, strict=False)
    except RuntimeError as error:  # shape mismatches
        raise TtdnetError(f"{path}: does not fit a ViT tower: {str(error).splitlines()[-1].strip()}") from error
    if result.missing_keys or result.unexpected_keys:
        raise TtdnetError(
            f"{path}: not DreamSim's {name} tower (missing {result.missing_keys[:5]}, unexpected "
            f"{result.unexpected_keys[:5]})"
        )
    return vit


def merge_adapter(vits: list[nn.Module], adapter: Path) -> None:
    """Load DreamSim's LoRA adapter into ``vits`` (in place) with PEFT and merge it into their weights.

    The adapter's keys name the towers as DreamSim's model does (``extractor_list.<i>.model.<ViT module>``), so
    the towers are put in a module of that shape for PEFT to resolve them.
    """
    from peft import LoraConfig, get_peft_model, set_peft_model_state_dict
    from peft.utils import load_peft_weights

    try:
        stored = json.loads((adapter / "adapter_config.json").read_text())
        config = LoraConfig(
            **{key: stored[key] for key in ("r", "lora_alpha", "lora_dropout", "bias", "target_modules")}
        )
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as error:
        raise TtdnetError(f"{adapter / 'adapter_config.json'}: not a LoRA adapter config ({error!r})") from error
    dreamsim_layout = nn.Module()
    dreamsim_layout.extractor_list = nn.ModuleList()
    for vit in vits:
        extractor = nn.Module()
        extractor.model = vit
        dreamsim_layout.extractor_list.append(extractor)
    model = get_peft_model(dreamsim_layout, config)
    result = set_peft_model_state_dict(model, load_peft_weights(str(adapter), device="cpu"))
    missing = [key for key in result.missing_keys if "lora_" in key]
    if result.unexpected_keys or missing:
        raise TtdnetError(
            f"{adapter}: the adapter does not fit the towers (unexpected {result.unexpected_keys[:3]}, missing "
            f"{missing[:3]}); use the adapter folder of the same DreamSim variant"
        )
    model.merge_and_unload()


class DreamSimEmbedding(nn.Module):
    """DreamSim's embedding of ``(B, 3, 224, 224)`` images in [0, 1] -> ``(B, sum of tower widths)``, unit norm.

    ``towers`` holds the ViTs by DreamSim's tower names, so their layers are ``<tower>.<module>``
    (``dino_vitb16.blocks.11``).
    """

    def __init__(self, names: list[str], vits: list[nn.Module], projections: list[torch.Tensor | None]):
        super().__init__()
        self.towers = nn.ModuleDict(dict(zip(names, vits)))
        self.features = [TOWERS[name].feature for name in names]
        self.register_buffer("means", torch.tensor([TOWERS[name].mean for name in names]).view(-1, 1, 3, 1, 1))
        self.register_buffer("stds", torch.tensor([TOWERS[name].std for name in names]).view(-1, 1, 3, 1, 1))
        for index, projection in enumerate(projections):
            self.register_buffer(f"projection{index}", projection)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        parts = []
        for index, vit in enumerate(self.towers.values()):
            x = (images - self.means[index]) / self.stds[index]
            if self.features[index] == "cls":
                (_patches, prefix), = vit.forward_intermediates(
                    x, indices=1, return_prefix_tokens=True, output_fmt="NLC", intermediates_only=True
                )  # fmt: skip
                parts.append(prefix[:, 0])
            else:
                parts.append(vit(x) @ getattr(self, f"projection{index}"))
        embedding = torch.cat(parts, dim=-1)
        embedding = embedding - embedding.mean(dim=-1, keepdim=True)
        return nn.functional.normalize(embedding, dim=-1)


def build_dreamsim(variant_name: str, checkpoint: str | None, random_init: bool) -> Backbone:
    """The ``dreamsim:<variant>`` backbone from the checkpoint folder ``checkpoint`` (nothing is downloaded)."""
    from torchvision import transforms

    variant = VARIANTS.get(variant_name)
    if variant is None:
        raise TtdnetError(f"--backbone dreamsim:{variant_name}: unknown variant; use one of {list(VARIANTS)}")
    if random_init:
        raise TtdnetError(f"--backbone dreamsim:{variant_name}: DreamSim has no random weights; drop --random_init")
    if checkpoint is None:
        files = missing_files(variant, Path("FOLDER"))
        raise TtdnetError(
            f"--backbone dreamsim:{variant_name}: give --checkpoint FOLDER, the folder holding {'; '.join(files)}"
        )
    root = Path(checkpoint)
    if not root.is_dir():
        raise TtdnetError(
            f"--backbone dreamsim:{variant_name}: --checkpoint {root} is not a folder; unzip {variant.archive} "
            "into a folder and give that folder"
        )
    missing = missing_files(variant, root)
    if missing:
        raise TtdnetError(f"--backbone dreamsim:{variant_name}: missing {'; '.join(missing)}")
    vits, projections = [], []
    for name in variant.towers:
        path = root / TOWERS[name].weight_file
        state, projection = tower_state(name, path)
        vits.append(tower_vit(name, state, path))
        projections.append(projection)
    adapter = root / variant.adapter_dir
    merge_adapter(vits, adapter)
    module = DreamSimEmbedding(list(variant.towers), vits, projections).eval()
    preprocess = transforms.Compose(
        [transforms.Resize((IMAGE_SIZE, IMAGE_SIZE), interpolation=transforms.InterpolationMode.BICUBIC),
         transforms.ToTensor()]
    )  # fmt: skip
    adapter_weights = next(adapter / name for name in ADAPTER_WEIGHTS if (adapter / name).is_file())
    used = [root / TOWERS[name].weight_file for name in variant.towers] + [adapter / "adapter_config.json"]
    description = {
        "family": "dreamsim",
        "variant": variant_name,
        "weights": {str(path.relative_to(root)): file_identity(path) for path in [*used, adapter_weights]},
    }
    preprocessing = {
        "dreamsim_transform": repr(preprocess),
        "tower_normalisation": {name: {"mean": TOWERS[name].mean, "std": TOWERS[name].std} for name in variant.towers},
        "embedding": "towers concatenated, centred, L2-normalised",
    }
    preprocessing = json.loads(json.dumps(preprocessing))
    return Backbone(module, module, module.towers, preprocess, description, preprocessing)
