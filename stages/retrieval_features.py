"""Frozen image features for retrieval: the feature-file format, backbones, hooks and a resumable extractor.

Feature file (one per backbone; safetensors, nothing pickled)
-------------------------------------------------------------
Tensors:

* ``training``: float16 ``(n_training_images, n_layers, dim)``, rows in ``image_metadata.npy`` order;
* ``test``: float16 ``(n_test_images, n_layers, dim)``.

String metadata (safetensors ``__metadata__``; lists and dicts are JSON):

* ``format`` = ``"ttdnet-image-features"``, ``version`` = ``"1"``;
* ``training_paths``, ``test_paths``: image paths relative to the image-set folder, one per row
  (``training_images/00001_aardvark/aardvark_01b.jpg``);
* ``layer_names``: one name per layer; ``layer_dims``: each layer's true width (narrower layers are
  zero-padded to ``dim`` on the right);
* ``normalized``: ``"true"`` if the vectors were L2-normalised, else ``"false"`` (D15 of the design sources:
  the normalisation state travels with the features and is checked on load);
* ``settings``: the extraction settings (backbone, weights, layers, pooling, preprocessing, ...), compared to
  decide whether a cache can be reused; ``provenance``: library versions (informative only).

Any program can write such a file (``write_feature_file`` or ``safetensors.torch.save_file`` with the same keys),
and ``ttdnet train-retrieval --features FILE`` will use it.
"""

import dataclasses
import hashlib
import json
import logging
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ttdnet.errors import TtdnetError


logger = logging.getLogger(__name__)

FORMAT = "ttdnet-image-features"
VERSION = "1"
SPLITS = ("training", "test")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


class FeatureFileError(TtdnetError):
    """A feature file is missing, malformed, or does not belong to the images it is used with."""


@dataclasses.dataclass
class FeatureFile:
    """Contents of a feature file.

    Attributes
    ----------
    features : dict of str to torch.Tensor
        ``"training"`` and ``"test"``: float16 ``(n_images, n_layers, dim)``.
    paths : dict of str to list of str
        Relative image path of every row, per split.
    layer_names : list of str
    layer_dims : list of int
    normalized : bool
    settings : dict
    provenance : dict
    path : pathlib.Path or None
    """

    features: dict[str, torch.Tensor]
    paths: dict[str, list[str]]
    layer_names: list[str]
    layer_dims: list[int]
    normalized: bool
    settings: dict
    provenance: dict = dataclasses.field(default_factory=dict)
    path: Path | None = None

    @property
    def n_layers(self) -> int:
        return len(self.layer_names)

    @property
    def dim(self) -> int:
        return int(self.features["training"].shape[2])

    def check_paths(self, split: str, expected: list[str]) -> None:
        """Raise :class:`FeatureFileError` unless the rows of ``split`` are exactly the images ``expected``."""
        stored = self.paths[split]
        if stored == list(expected):
            return
        if len(stored) != len(expected):
            detail = f"{len(stored)} rows, the image set has {len(expected)} {split} images"
        else:
            first = next(i for i, (a, b) in enumerate(zip(stored, expected)) if a != b)
            detail = f"row {first} is {stored[first]!r}, the image set has {expected[first]!r}"
        raise FeatureFileError(
            f"{self.path}: the {split} features do not match image_metadata.npy ({detail}). Re-extract them with "
            "`ttdnet features` for this image set."
        )


def write_feature_file(
    path: str | os.PathLike,
    features: dict[str, torch.Tensor],
    paths: dict[str, list[str]],
    layer_names: list[str],
    layer_dims: list[int],
    normalized: bool,
    settings: dict,
    provenance: dict | None = None,
) -> Path:
    """Write a feature file atomically (temporary file in the same folder, then rename).

    Parameters
    ----------
    path : path-like
    features : dict
        ``"training"`` and ``"test"`` tensors ``(n_images, n_layers, dim)`` (cast to float16; must stay finite).
    paths, layer_names, layer_dims, normalized, settings, provenance :
        See :class:`FeatureFile`.
    """
    from safetensors.torch import save

    from ttdnet.io import atomic_open

    tensors = {}
    for split in SPLITS:
        if split not in features:
            raise FeatureFileError(f"feature file {path}: no {split!r} features given")
        array = features[split]
        if array.ndim != 3 or array.shape[1] != len(layer_names):
            raise FeatureFileError(
                f"{split} features must be (n_images, n_layers={len(layer_names)}, dim), got {tuple(array.shape)}"
            )
        if array.shape[0] != len(paths[split]):
            raise FeatureFileError(f"{split}: {array.shape[0]} feature rows for {len(paths[split])} image paths")
        half = array.detach().to(torch.float16).contiguous().cpu()
        if not torch.isfinite(half).all():
            raise FeatureFileError(
                f"{split} features overflow float16 (|x| > 65504) or are not finite; pick other layers or L2-normalise"
            )
        tensors[split] = half
    if tensors["training"].shape[1:] != tensors["test"].shape[1:]:
        raise FeatureFileError("training and test features must have the same (n_layers, dim)")
    metadata = {
        "format": FORMAT,
        "version": VERSION,
        "training_paths": json.dumps(list(paths["training"])),
        "test_paths": json.dumps(list(paths["test"])),
        "layer_names": json.dumps(list(layer_names)),
        "layer_dims": json.dumps([int(d) for d in layer_dims]),
        "normalized": "true" if normalized else "false",
        "settings": json.dumps(settings, sort_keys=True),
        "provenance": json.dumps(provenance or {}, sort_keys=True),
    }
    with atomic_open(path, "wb") as handle:
        handle.write(save(tensors, metadata=metadata))
    return Path(path)


def read_feature_file(path: str | os.PathLike, expect_normalized: bool | None = None) -> FeatureFile:
    """Read and validate a feature file.

    Parameters
    ----------
    path : path-like
    expect_normalized : bool, optional
        If given, the file's ``normalized`` flag must equal it (D15).

    Raises
    ------
    FeatureFileError
        Missing file, wrong format, inconsistent shapes or a normalisation-state mismatch.
    """
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise FeatureFileError(
            f"feature file {path} not found; create it with `ttdnet features` (see docs/retrieval.md)"
        )
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            keys = set(handle.keys())
            features = {split: handle.get_tensor(split) for split in SPLITS if split in keys}
    except Exception as error:  # safetensors raises its own error types for corrupt headers
        raise FeatureFileError(f"{path} is not a readable safetensors file: {error}") from error
    if metadata.get("format") != FORMAT:
        raise FeatureFileError(f"{path}: metadata 'format' is {metadata.get('format')!r}, expected {FORMAT!r}")
    if metadata.get("version") != VERSION:
        raise FeatureFileError(
            f"{path}: feature-file version {metadata.get('version')!r}; this ttdnet reads {VERSION}"
        )
    missing = [split for split in SPLITS if split not in features]
    missing += [
        key
        for key in ("training_paths", "test_paths", "layer_names", "layer_dims", "normalized")
        if key not in metadata
    ]
    if missing:
        raise FeatureFileError(f"{path}: missing {missing} (see the format in docs/retrieval.md)")
    try:
        paths = {split: json.loads(metadata[f"{split}_paths"]) for split in SPLITS}
        layer_names = json.loads(metadata["layer_names"])
        layer_dims = json.loads(metadata["layer_dims"])
        settings = json.loads(metadata.get("settings", "{}"))
        provenance = json.loads(metadata.get("provenance", "{}"))
    except json.JSONDecodeError as error:
        raise FeatureFileError(f"{path}: a metadata entry is not valid JSON: {error}") from error
    normalized = metadata["normalized"]
    if normalized not in ("true", "false"):
        raise FeatureFileError(f"{path}: 'normalized' must be 'true' or 'false', got {normalized!r}")
    for split in SPLITS:
        array = features[split]
        if array.ndim != 3 or array.shape[1] != len(layer_names) or array.shape[0] != len(paths[split]):
            raise FeatureFileError(
                f"{path}: {split} features have shape {tuple(array.shape)}, expected ({len(paths[split])}, "
                f"{len(layer_names)}, dim) from its path and layer lists"
            )
    if features["training"].shape[2] != features["test"].shape[2]:
        raise FeatureFileError(f"{path}: training and test features differ in width")
    if len(layer_dims) != len(layer_names) or max(layer_dims) > features["training"].shape[2]:
        raise FeatureFileError(f"{path}: layer_dims {layer_dims} do not fit {len(layer_names)} layers of width "
                               f"{features['training'].shape[2]}")  # fmt: skip
    result = FeatureFile(
        features={split: features[split] for split in SPLITS},
        paths=paths,
        layer_names=list(layer_names),
        layer_dims=[int(d) for d in layer_dims],
        normalized=normalized == "true",
        settings=settings,
        provenance=provenance,
        path=path,
    )
    if expect_normalized is not None and result.normalized != expect_normalized:
        raise FeatureFileError(
            f"{path}: features are {'L2-normalised' if result.normalized else 'not normalised'}, but "
            f"{'normalised' if expect_normalized else 'unnormalised'} ones were asked for"
        )
    return result


# --------------------------------------------------------------------------------------------- backbones


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
    image_size : int
    mean, std : tuple of float
    description : dict
        Weights and family, recorded in the settings.
    """

    module: nn.Module | None
    final: Callable[[torch.Tensor], torch.Tensor]
    hook_root: nn.Module | None
    image_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    description: dict


def _file_identity(path: str) -> dict:
    """Path, size and SHA-256 of the first 16 MiB of a weight file (cheap, still catches a swapped file)."""
    p = Path(path)
    if p.is_dir():
        return {"path": str(p.resolve()), "kind": "directory"}
    digest = hashlib.sha256()
    with open(p, "rb") as handle:
        digest.update(handle.read(16 << 20))
    return {"path": str(p.resolve()), "bytes": p.stat().st_size, "sha256_first_16MiB": digest.hexdigest()}


def _load_state_dict(path: str) -> dict:
    """Weights from a ``.safetensors`` file, or a torch file read with ``weights_only=True`` (never a full pickle)."""
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        return load_file(path)
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    return state


def build_backbone(
    backbone: str,
    checkpoint: str | None = None,
    random_init: bool = False,
    trust_remote_code: bool = False,
    seed: int = 0,
    image_size: int | None = None,
    mean: list[float] | None = None,
    std: list[float] | None = None,
    cache_dir: str | None = None,
) -> Backbone:
    """Build a frozen backbone from a spec string.

    Parameters
    ----------
    backbone : str
        ``pixels`` (weight-free RGB thumbnails), ``torchvision:<arch>`` (e.g. ``torchvision:resnet18``),
        ``open_clip:<model>`` (e.g. ``open_clip:ViT-H-14``) or ``transformers:<hub id or local folder>``.
    checkpoint : str, optional
        torchvision: a local weight file. open_clip: a pretrained tag (``laion2b_s32b_b79k``) or a local
        checkpoint file. transformers: unused (the id/folder is in ``backbone``).
    random_init : bool
        Allow random weights (torchvision/open_clip without a checkpoint); seeded by ``seed``. Without it a
        missing checkpoint is an error, so random features are never produced by accident.
    trust_remote_code : bool
        transformers: allow the repository's own modelling code (InternViT).
    image_size, mean, std : optional
        Override the preprocessing (resize shorter side + centre crop to ``image_size``, then normalise).
    """
    family, _, name = backbone.partition(":")
    if family == "pixels":
        return Backbone(None, lambda batch: batch.flatten(1), None, image_size or 16, (0.0,) * 3, (1.0,) * 3,
                        {"family": "pixels", "weights": "none (weight-free)"})  # fmt: skip
    if not name:
        raise TtdnetError(
            f"--backbone {backbone!r}: use pixels, torchvision:<arch>, open_clip:<model> or transformers:<id-or-path>"
        )
    torch.manual_seed(seed)
    if family == "torchvision":
        import torchvision

        if checkpoint is None and not random_init:
            raise TtdnetError(
                f"--backbone {backbone}: give --checkpoint (a local weight file) or --random_init for random weights"
            )
        try:
            module = torchvision.models.get_model(name, weights=None)
        except ValueError as error:
            raise TtdnetError(f"--backbone {backbone}: {error}") from error
        weights = f"random (seed {seed})"
        if checkpoint is not None:
            module.load_state_dict(_load_state_dict(checkpoint), strict=True)
            weights = _file_identity(checkpoint)
        description = {"family": "torchvision", "arch": name, "weights": weights}
        return Backbone(module.eval(), module, module, image_size or 224, tuple(mean or IMAGENET_MEAN),
                        tuple(std or IMAGENET_STD), description)  # fmt: skip
    if family == "open_clip":
        import open_clip

        if checkpoint is None and not random_init:
            raise TtdnetError(
                f"--backbone {backbone}: give --checkpoint (a pretrained tag with a filled cache, or a local "
                "checkpoint file) or --random_init to use random weights"
            )
        try:
            model = open_clip.create_model(name, pretrained=checkpoint, cache_dir=cache_dir)
        except RuntimeError as error:
            raise TtdnetError(f"--backbone {backbone} --checkpoint {checkpoint}: {error}") from error
        visual = model.visual.eval()
        cfg = getattr(visual, "preprocess_cfg", {}) or {}
        size = cfg.get("size", getattr(visual, "image_size", 224))
        size = size[0] if isinstance(size, list | tuple) else size
        weights = f"random (seed {seed})" if checkpoint is None else (
            _file_identity(checkpoint) if Path(checkpoint).exists() else {"pretrained": checkpoint})  # fmt: skip
        return Backbone(model.eval(), model.encode_image, visual, image_size or int(size),
                        tuple(mean or cfg.get("mean", CLIP_MEAN)), tuple(std or cfg.get("std", CLIP_STD)),
                        {"family": "open_clip", "model": name, "weights": weights})  # fmt: skip
    if family == "transformers":
        import transformers
        from transformers import AutoConfig, AutoModel

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
        size, m, s = 224, IMAGENET_MEAN, IMAGENET_STD
        try:
            from transformers import AutoImageProcessor

            processor = AutoImageProcessor.from_pretrained(name, trust_remote_code=trust_remote_code)
            crop = getattr(processor, "crop_size", None) or getattr(processor, "size", None) or {}
            size = crop.get("height", crop.get("shortest_edge", size)) if isinstance(crop, dict) else size
            m, s = tuple(processor.image_mean), tuple(processor.image_std)
        except (OSError, ValueError, AttributeError, TypeError):
            config_size = getattr(getattr(model.config, "vision_config", model.config), "image_size", None)
            size = config_size if isinstance(config_size, int) else size
        weights = _file_identity(name) if Path(name).exists() else {"hub_id": name}

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

        return Backbone(model, final, model, image_size or int(size), tuple(mean or m), tuple(std or s),
                        {"family": "transformers", "model": name, "weights": weights,
                         "trust_remote_code": trust_remote_code})  # fmt: skip
    raise TtdnetError(
        f"--backbone {backbone!r}: unknown family {family!r} (pixels, torchvision, open_clip, transformers)"
    )


def default_layers(backbone: str) -> list[str]:
    """Layers used when none are given: RGB thumbnails for ``pixels``, the four stages of a torchvision ResNet,
    the final embedding otherwise."""
    family, _, name = backbone.partition(":")
    if family == "pixels":
        return ["rgb4", "rgb8", "rgb16"]
    if family == "torchvision" and name.startswith(("resnet", "resnext", "wide_resnet")):
        return ["layer1", "layer2", "layer3", "layer4"]
    return ["final"]


def pool_output(output, pooling: str, grid_size: int, layer: str) -> torch.Tensor:
    """One vector per image from a layer's output.

    Parameters
    ----------
    output : torch.Tensor or tuple
        ``(B, C, H, W)`` feature maps, ``(B, N, D)`` tokens, or ``(B, D)``; a tuple's first tensor is used.
    pooling : {"mean", "grid"}
        ``mean``: spatial mean / token mean. ``grid``: average-pool to ``grid_size × grid_size`` cells and
        flatten (tokens: the patch tokens reshaped to their square grid, a leading CLS token dropped).

    Returns
    -------
    torch.Tensor, shape (B, dim) float32
    """
    if isinstance(output, tuple | list):
        output = next(item for item in output if isinstance(item, torch.Tensor))
    elif not isinstance(output, torch.Tensor):
        output = output[0]
    output = output.float()
    if output.ndim == 2:
        return output
    if output.ndim == 4:
        if pooling == "mean":
            return output.mean(dim=(2, 3))
        return torch.nn.functional.adaptive_avg_pool2d(output, grid_size).flatten(1)
    if output.ndim == 3:
        if pooling == "mean":
            return output.mean(dim=1)
        n = output.shape[1]
        side = int(round(n**0.5))
        if side * side != n:
            side = int(round((n - 1) ** 0.5))
            if side * side != n - 1:
                raise TtdnetError(f"layer {layer}: {n} tokens form no square grid; use --pooling mean")
            output = output[:, 1:]
        grid = output.transpose(1, 2).reshape(output.shape[0], output.shape[2], side, side)
        return torch.nn.functional.adaptive_avg_pool2d(grid, grid_size).flatten(1)
    raise TtdnetError(f"layer {layer}: cannot pool an output of shape {tuple(output.shape)}")


class ImageFolderList(torch.utils.data.Dataset):
    """Images by relative path, preprocessed: shorter side resized (bicubic) to ``size``, centre-cropped, then
    ``(x − mean) / std`` on [0, 1] values; ``pixels`` mode returns the raw [0, 1] crop."""

    def __init__(self, root: Path, paths: list[str], size: int, mean, std):
        self.root, self.paths, self.size = root, paths, size
        self.mean = torch.tensor(mean).view(3, 1, 1)
        self.std = torch.tensor(std).view(3, 1, 1)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> torch.Tensor:
        from ttdnet.data.image_crop import open_rgb, resize_center_crop

        image, _, _ = resize_center_crop(open_rgb(self.root / self.paths[index]), self.size)
        pixels = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1)
        return (pixels - self.mean) / self.std


def pixel_layers(batch: torch.Tensor, layers: list[str]) -> list[torch.Tensor]:
    """``pixels`` backbone: layer ``rgbN`` is the [0, 1] image area-averaged to N × N, flattened (3·N² values).

    Parameters
    ----------
    batch : torch.Tensor, shape (B, 3, S, S)
    """
    out = []
    for layer in layers:
        match = re.fullmatch(r"rgb(\d+)", layer)
        if not match or int(match.group(1)) < 1 or int(match.group(1)) > batch.shape[-1]:
            raise TtdnetError(
                f"pixels backbone: layer {layer!r} must be rgbN with 1 <= N <= image_size ({batch.shape[-1]})"
            )
        out.append(torch.nn.functional.adaptive_avg_pool2d(batch, int(match.group(1))).flatten(1))
    return out


class LayerTaps:
    """Forward hooks on named modules of ``root`` that keep each one's pooled output of the current batch."""

    def __init__(self, root: nn.Module, layers: list[str], pooling: str, grid_size: int):
        modules = dict(root.named_modules())
        missing = [layer for layer in layers if layer != "final" and layer not in modules]
        if missing:
            names = [name for name in modules if name][:40]
            raise TtdnetError(f"layers {missing} are not modules of the backbone; some valid names: {names}")
        self.outputs: dict[str, torch.Tensor] = {}
        self.handles = []
        for layer in layers:
            if layer == "final":
                continue

            def hook(_module, _inputs, output, layer=layer):
                self.outputs[layer] = pool_output(output, pooling, grid_size, layer)

            self.handles.append(modules[layer].register_forward_hook(hook))

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()


def image_list_digest(paths: list[str]) -> str:
    """SHA-256 of the newline-joined relative paths (identifies the image list in the settings)."""
    return hashlib.sha256("\n".join(paths).encode()).hexdigest()


def extract(
    image_dir: Path,
    paths: dict[str, list[str]],
    backbone: Backbone,
    layers: list[str],
    pooling: str,
    grid_size: int,
    normalize: bool,
    batch_size: int,
    num_workers: int,
    device: torch.device,
    dtype: torch.dtype,
    partial_dir: Path,
    chunk_size: int,
) -> tuple[dict[str, torch.Tensor], list[int]]:
    """Run the backbone over every image in chunks saved under ``partial_dir`` (kept chunks are skipped).

    Returns
    -------
    features : dict of str to torch.Tensor
        float16 ``(n_images, n_layers, dim)`` per split (layers zero-padded to the widest).
    layer_dims : list of int
    """
    from tqdm.auto import tqdm

    from ttdnet.stages.chunked_cache import compute_in_chunks

    taps = None
    if backbone.module is not None:
        backbone.module.to(device=device, dtype=dtype)
        taps = LayerTaps(backbone.hook_root, layers, pooling, grid_size)
    collected: dict[str, list[torch.Tensor]] = {}
    try:
        for split in SPLITS:
            dataset = ImageFolderList(image_dir, paths[split], backbone.image_size, backbone.mean, backbone.std)
            progress = tqdm(total=len(dataset), desc=f"features {split}", unit="img")

            def compute(start: int, stop: int, dataset=dataset, progress=progress) -> dict[str, torch.Tensor]:
                subset = torch.utils.data.Subset(dataset, range(start, stop))
                loader = torch.utils.data.DataLoader(subset, batch_size=batch_size, num_workers=num_workers)
                per_layer: list[list[torch.Tensor]] = [[] for _ in layers]
                with torch.no_grad():
                    for batch in loader:
                        batch = batch.to(device=device, dtype=dtype)
                        if backbone.module is None:
                            vectors = pixel_layers(batch.float(), layers)
                        else:
                            taps.outputs.clear()
                            final = backbone.final(batch)
                            vectors = [
                                pool_output(final, pooling, grid_size, layer)
                                if layer == "final"
                                else taps.outputs[layer]
                                for layer in layers
                            ]
                        for i, vector in enumerate(vectors):
                            vector = vector.float().cpu()
                            if normalize:
                                vector = torch.nn.functional.normalize(vector, dim=-1)
                            per_layer[i].append(vector)
                        progress.update(batch.shape[0])
                return {f"layer{i}": torch.cat(parts) for i, parts in enumerate(per_layer)}

            stored = compute_in_chunks(partial_dir, split, len(dataset), chunk_size, compute, progress)
            progress.close()
            collected[split] = [stored[f"layer{i}"] for i in range(len(layers))]
    finally:
        if taps is not None:
            taps.remove()
    layer_dims = [int(collected["training"][i].shape[1]) for i in range(len(layers))]
    width = max(layer_dims)
    features = {}
    for split, per_layer in collected.items():
        padded = [torch.nn.functional.pad(t, (0, width - t.shape[1])) for t in per_layer]
        features[split] = torch.stack(padded, dim=1)
    return features, layer_dims


def feature_settings(config, backbone: Backbone, layers: list[str], paths: dict[str, list[str]]) -> dict:
    """The settings that decide whether a cached feature file can be reused."""
    return {
        "backbone": config.backbone,
        "weights": backbone.description,
        "layers": layers,
        "pooling": "area average to NxN (rgbN layers)" if backbone.module is None else config.pooling,
        "grid_size": config.grid_size if config.pooling == "grid" and backbone.module is not None else None,
        "normalize": config.normalize,
        "image_size": backbone.image_size,
        "mean": list(backbone.mean),
        "std": list(backbone.std),
        "resize": "shorter side bicubic (PIL) + centre crop; values /255 then (x - mean) / std",
        "model_dtype": config.model_dtype,
        "storage_dtype": "float16",
        "images": {split: {"n": len(paths[split]), "sha256": image_list_digest(paths[split])} for split in SPLITS},
    }


def output_path(config) -> Path:
    """``output_file``, or ``output_dir/<backbone with unsafe characters replaced>.safetensors``."""
    if config.output_file:
        return Path(config.output_file)
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", config.backbone).strip("_")
    if config.random_init and config.backbone != "pixels":
        slug += f"_random{config.seed}"
    return Path(config.output_dir) / f"{slug}.safetensors"


def run_features(config) -> dict:
    """Extract (or reuse) the feature file described by ``config`` (a ``FeaturesConfig``); return a summary."""
    import open_clip
    import torchvision
    import transformers

    from ttdnet.data import locate_image_set, read_image_metadata

    if config.image_dir is None:
        raise TtdnetError("give --image_dir (the THINGS-EEG2 root or its image_set folder)")
    image_dir = locate_image_set(config.image_dir)
    metadata = read_image_metadata(image_dir)
    paths = {split: metadata.relative_paths(split) for split in SPLITS}
    layers = list(config.layers) if config.layers else default_layers(config.backbone)
    if config.pooling not in ("mean", "grid"):
        raise TtdnetError(f"--pooling must be mean or grid, got {config.pooling!r}")
    backbone = build_backbone(
        config.backbone,
        config.checkpoint,
        config.random_init,
        config.trust_remote_code,
        config.seed,
        config.image_size,
        config.image_mean,
        config.image_std,
        config.cache_dir,
    )
    settings = feature_settings(config, backbone, layers, paths)
    target = output_path(config)
    if target.is_file() and not config.overwrite:
        try:
            existing = read_feature_file(target)
        except FeatureFileError as error:
            logger.warning(f"{target} is unreadable ({error}); rebuilding it")
            existing = None
        if existing is not None and existing.settings == settings:
            logger.info(f"{target}: settings match; reusing the cached features")
            return {
                "output": str(target),
                "reused": True,
                "layers": layers,
                "shape": list(existing.features["training"].shape),
            }
        if existing is not None:
            changed = sorted(
                k for k in set(settings) | set(existing.settings) if settings.get(k) != existing.settings.get(k)
            )
            logger.info(f"{target}: settings changed ({changed}); rebuilding")
    from ttdnet.stages.chunked_cache import open_partial_dir

    partial_dir = target.with_name(f".{target.name}.partial")
    if open_partial_dir(partial_dir, settings, config.overwrite):
        logger.info(f"resuming the extraction from {partial_dir}")
    device = torch.device(config.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[config.model_dtype]
    features, layer_dims = extract(
        image_dir, paths, backbone, layers, config.pooling, config.grid_size, config.normalize, config.batch_size,
        config.num_workers, device, dtype, partial_dir, config.chunk_size,
    )  # fmt: skip
    provenance = {"torch": torch.__version__, "torchvision": torchvision.__version__,
                  "open_clip": open_clip.__version__, "transformers": transformers.__version__}  # fmt: skip
    write_feature_file(target, features, paths, layers, layer_dims, config.normalize, settings, provenance)
    shutil.rmtree(partial_dir)
    return {"output": str(target), "reused": False, "layers": layers, "layer_dims": layer_dims,
            "shape": {split: list(features[split].shape) for split in SPLITS}}  # fmt: skip
