"""The frozen image networks of ``ttdnet features``, each with the preprocessing its own library defines.

* ``pixels``: no network. The shorter side is resized (PIL bicubic) to ``image_size`` (16), centre-cropped,
  values in [0, 1].
* ``torchvision:<arch>``: ``weights.transforms()`` of the torchvision weights given as ``--checkpoint``
  (``IMAGENET1K_V1``, ``DEFAULT`` or ``ResNet18_Weights.IMAGENET1K_V1``). A local weight file or random
  weights use the transform of the architecture's default weights (``get_model_weights(arch).DEFAULT``).
* ``open_clip:<model>``: the inference transform of ``open_clip.create_model_and_transforms`` (built from the
  model's ``preprocess_cfg``).
* ``transformers:<hub id or folder>``: the model's ``AutoImageProcessor``.
* ``dreamsim:<variant>``: DreamSim's own resize and per-tower normalisation (:mod:`.dreamsim_backbone`).
"""

import dataclasses
import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ttdnet.errors import TtdnetError
from ttdnet.hashing import sha256_file
from ttdnet.state_dicts import load_state_dict_file


FAMILIES = "pixels, torchvision:<arch>, open_clip:<model>, transformers:<id-or-folder> or dreamsim:<variant>"


@dataclasses.dataclass
class Backbone:
    """A frozen image network ready for extraction.

    Attributes
    ----------
    module : torch.nn.Module or None
        The network (None for the weight-free ``pixels`` backbone).
    final : callable
        ``final(batch) -> (B, D)``: the final embedding; hooks fire during this call.
    hook_root : torch.nn.Module or None
        Module whose ``named_modules()`` resolve layer names.
    preprocess : callable
        ``preprocess(PIL RGB image) -> float tensor (3, H, W)``: the backbone's own transform; batches of its
        output are what ``final`` takes. Picklable, so ``num_workers > 0`` can use it.
    description : dict
        Family and weights identity, recorded in the settings.
    preprocessing : dict
        JSON-ready description of ``preprocess``, recorded in the settings (a change rebuilds the cache).
    """

    module: nn.Module | None
    final: Callable[[torch.Tensor], torch.Tensor]
    hook_root: nn.Module | None
    preprocess: Callable
    description: dict
    preprocessing: dict


class PixelCrop:
    """``pixels`` preprocessing: shorter side resized (PIL bicubic) to ``size``, centre crop, values in [0, 1]."""

    def __init__(self, size: int):
        self.size = size

    def __call__(self, image) -> torch.Tensor:
        from ttdnet.data.image_crop import resize_center_crop

        crop, _, _ = resize_center_crop(image, self.size)
        return torch.from_numpy(np.asarray(crop, dtype=np.float32) / 255.0).permute(2, 0, 1)


class ImageProcessorTransform:
    """A transformers image processor applied to one image: PIL image -> its ``pixel_values`` ``(3, H, W)``."""

    def __init__(self, processor):
        self.processor = processor

    def __call__(self, image) -> torch.Tensor:
        return self.processor(images=image, return_tensors="pt")["pixel_values"][0]


def file_identity(path: str | os.PathLike) -> dict:
    """Path, size and SHA-256 of the first 16 MiB of a weight file (cheap, still catches a swapped file)."""
    p = Path(path)
    if p.is_dir():
        return {"path": str(p.resolve()), "kind": "directory"}
    digest = sha256_file(p, limit=16 << 20)
    return {"path": str(p.resolve()), "bytes": p.stat().st_size, "sha256_first_16MiB": digest}


def build_backbone(
    backbone: str,
    checkpoint: str | None = None,
    random_init: bool = False,
    trust_remote_code: bool = False,
    seed: int = 0,
    image_size: int | None = None,
    cache_dir: str | None = None,
) -> Backbone:
    """Build a frozen backbone, with its own preprocessing, from a spec string.

    Parameters
    ----------
    backbone : str
        ``pixels``, ``torchvision:<arch>`` (``torchvision:resnet18``), ``open_clip:<model>``
        (``open_clip:ViT-H-14``, ``open_clip:local-dir:/weights/model``), ``transformers:<hub id or folder>`` or
        ``dreamsim:<variant>`` (``dreamsim:ensemble``).
    checkpoint : str, optional
        torchvision: a local weight file or a weights name. open_clip: a pretrained tag (``laion2b_s32b_b79k``)
        or a local checkpoint file. dreamsim: the checkpoint folder. transformers: unused (the id/folder is in
        ``backbone``).
    random_init : bool
        Allow random weights (torchvision/open_clip without a checkpoint), seeded by ``seed``. Without it a
        missing checkpoint is an error, so random features are never produced by accident.
    trust_remote_code : bool
        transformers: allow the repository's own modelling code (InternViT).
    image_size : int, optional
        ``pixels`` only: the side the image is cropped to before thumbnails (default 16).
    cache_dir : str, optional
        Hub cache folder for open_clip and transformers.
    """
    family, _, name = backbone.partition(":")
    if image_size is not None and family != "pixels":
        raise TtdnetError(
            f"--image_size applies to the pixels backbone only; {backbone} uses its own preprocessing (drop the flag)"
        )
    if family == "pixels":
        size = image_size or 16
        description = {"family": "pixels", "weights": "none (weight-free)"}
        preprocessing = {"resize": "shorter side bicubic (PIL) + centre crop", "size": size, "values": "[0, 1]"}
        return Backbone(None, lambda batch: batch.flatten(1), None, PixelCrop(size), description, preprocessing)
    if not name:
        raise TtdnetError(f"--backbone {backbone!r}: use {FAMILIES}")
    torch.manual_seed(seed)
    random_weights = f"random (seed {seed})"
    if family == "torchvision":
        return _torchvision(backbone, name, checkpoint, random_init, random_weights)
    if family == "open_clip":
        return _open_clip(backbone, name, checkpoint, random_init, random_weights, cache_dir)
    if family == "transformers":
        return _transformers(backbone, name, trust_remote_code, cache_dir)
    if family == "dreamsim":
        from ttdnet.stages.dreamsim_backbone import build_dreamsim

        return build_dreamsim(name, checkpoint, random_init)
    raise TtdnetError(f"--backbone {backbone!r}: unknown family {family!r}; use {FAMILIES}")


def _torchvision(backbone: str, name: str, checkpoint, random_init: bool, random_weights: str) -> Backbone:
    import torchvision

    if checkpoint is None and not random_init:
        raise TtdnetError(
            f"--backbone {backbone}: give --checkpoint (a local weight file or a torchvision weights name such as "
            "IMAGENET1K_V1) or --random_init for random weights"
        )
    try:
        weights_class = torchvision.models.get_model_weights(name)
    except ValueError as error:
        raise TtdnetError(f"--backbone {backbone}: {error} (see torchvision.models.list_models())") from error
    if checkpoint is not None and not Path(checkpoint).exists():
        weights = _torchvision_weights(backbone, weights_class, checkpoint)
        try:
            module = torchvision.models.get_model(name, weights=weights)
        except (OSError, RuntimeError) as error:  # no network (URLError is an OSError) or a corrupt cached file
            target = Path(torch.hub.get_dir()) / "checkpoints" / weights.url.rsplit("/", 1)[-1]
            raise TtdnetError(
                f"--backbone {backbone} --checkpoint {checkpoint}: cannot load {weights.url} ({error}); download it "
                f"to {target} (torchvision's cache) or give a local weight file"
            ) from error
        identity, transform_source = {"torchvision_weights": str(weights)}, str(weights)
    else:
        module = torchvision.models.get_model(name, weights=None)
        identity = random_weights
        if checkpoint is not None:
            try:
                module.load_state_dict(load_state_dict_file(checkpoint), strict=True)
            except RuntimeError as error:
                raise TtdnetError(
                    f"--backbone {backbone}: {checkpoint} does not hold {name} weights "
                    f"({str(error).splitlines()[0]}); give the weight file of this architecture"
                ) from error
            identity = file_identity(checkpoint)
        weights = weights_class.DEFAULT
        transform_source = f"{weights} (the architecture's default weights)"
    transform = weights.transforms()
    description = {"family": "torchvision", "arch": name, "weights": identity}
    preprocessing = {"torchvision_transform": repr(transform), "from": transform_source}
    return Backbone(module.eval(), module, module, transform, description, preprocessing)


def _torchvision_weights(backbone: str, weights_class, value: str):
    """The member of ``weights_class`` named by ``value`` (``IMAGENET1K_V1``, ``DEFAULT``, ``<Class>.<member>``)."""
    member = value.removeprefix(f"{weights_class.__name__}.")
    try:
        return weights_class[member]
    except KeyError:
        raise TtdnetError(
            f"--backbone {backbone}: --checkpoint {value!r} is neither a file nor a weights name of "
            f"{weights_class.__name__}; give a local weight file or one of {list(weights_class.__members__)}"
        ) from None


def _open_clip(backbone: str, name: str, checkpoint, random_init: bool, random_weights: str, cache_dir) -> Backbone:
    import open_clip

    if name.startswith("local-dir:"):
        folder = Path(name.removeprefix("local-dir:"))
        found = sorted(p for pattern in ("*.safetensors", "*.bin", "*.pth") for p in folder.glob(pattern))
        if checkpoint is not None:
            raise TtdnetError(f"--backbone {backbone}: the weights come from the folder; drop --checkpoint")
        if not found and not random_init:
            raise TtdnetError(
                f"--backbone {backbone}: no weight file (*.safetensors, *.bin, *.pth) in {folder}; put the model's "
                "weights next to its open_clip_config.json, or add --random_init"
            )
        identity = {p.name: file_identity(p) for p in found} or random_weights
    elif name.startswith("hf-hub:"):
        identity = {"hf_hub": name.removeprefix("hf-hub:")}
    elif checkpoint is None and not random_init:
        raise TtdnetError(
            f"--backbone {backbone}: give --checkpoint (a pretrained tag with a filled cache, or a local "
            "checkpoint file) or --random_init to use random weights"
        )
    elif checkpoint is None:
        identity = random_weights
    else:
        identity = file_identity(checkpoint) if Path(checkpoint).exists() else {"pretrained": checkpoint}
    try:
        model, _, preprocess = open_clip.create_model_and_transforms(name, pretrained=checkpoint, cache_dir=cache_dir)
    except (RuntimeError, ValueError, OSError) as error:
        given = f"--backbone {backbone}" + (f" --checkpoint {checkpoint}" if checkpoint is not None else "")
        raise TtdnetError(f"{given}: {str(error).splitlines()[0]}") from error
    preprocess_cfg = json.loads(json.dumps(dict(model.visual.preprocess_cfg)))
    description = {"family": "open_clip", "model": name, "weights": identity}
    preprocessing = {"open_clip_preprocess_cfg": preprocess_cfg}
    return Backbone(model.eval(), model.encode_image, model.visual, preprocess, description, preprocessing)


def _transformers(backbone: str, name: str, trust_remote_code: bool, cache_dir) -> Backbone:
    import transformers
    from transformers import AutoConfig, AutoImageProcessor, AutoModel

    try:
        # The class the checkpoint was saved from (keeps e.g. CLIP's visual projection, which AutoModel drops).
        model_config = AutoConfig.from_pretrained(name, trust_remote_code=trust_remote_code, cache_dir=cache_dir)
        architectures = getattr(model_config, "architectures", None) or []
        model_class = getattr(transformers, architectures[0], AutoModel) if architectures else AutoModel
        if trust_remote_code:
            model_class = AutoModel
        model = model_class.from_pretrained(name, trust_remote_code=trust_remote_code, cache_dir=cache_dir).eval()
    except (OSError, ValueError) as error:
        raise TtdnetError(
            f"--backbone {backbone}: cannot load {name!r} ({error}). Give a local folder, pre-fill the hub cache "
            "(HF_HUB_OFFLINE=1 forbids downloads), or add --trust_remote_code for models with their own code."
        ) from error
    try:
        processor = AutoImageProcessor.from_pretrained(name, trust_remote_code=trust_remote_code, cache_dir=cache_dir)
    except (OSError, ValueError) as error:
        raise TtdnetError(
            f"--backbone {backbone}: no image processor (preprocessor_config.json) for {name!r}: "
            f"{str(error).splitlines()[0]} Save the model's processor with it, e.g. "
            f"AutoImageProcessor.from_pretrained('<hub id>').save_pretrained('{name}'), or pre-fill the hub cache."
        ) from error
    identity = file_identity(name) if Path(name).exists() else {"hub_id": name}

    def final(batch):
        if hasattr(model, "get_image_features"):
            out = model.get_image_features(pixel_values=batch)
        else:
            out = model(pixel_values=batch)
        if isinstance(out, torch.Tensor):
            return out
        pooled = getattr(out, "image_embeds", None)
        if pooled is None:
            pooled = getattr(out, "pooler_output", None)
        return pooled if pooled is not None else out.last_hidden_state.mean(dim=1)

    description = {
        "family": "transformers",
        "model": name,
        "weights": identity,
        "trust_remote_code": trust_remote_code,
    }
    preprocessing = {"transformers_image_processor": json.loads(processor.to_json_string())}
    return Backbone(model, final, model, ImageProcessorTransform(processor), description, preprocessing)


def default_layers(backbone: str) -> list[str]:
    """Layers used when none are given: RGB thumbnails for ``pixels``, the four stages of a torchvision ResNet,
    the final embedding otherwise."""
    family, _, name = backbone.partition(":")
    if family == "pixels":
        return ["rgb4", "rgb8", "rgb16"]
    if family == "torchvision" and name.startswith(("resnet", "resnext", "wide_resnet")):
        return ["layer1", "layer2", "layer3", "layer4"]
    return ["final"]
