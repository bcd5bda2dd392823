"""``ttdnet features``: a frozen backbone over every image, in resumable chunks, cached in one feature file.

The pieces: :mod:`.feature_file` (the file format), :mod:`.image_backbones` and :mod:`.dreamsim_backbone`
(networks with their own preprocessing), :mod:`.layer_taps` (hooks and pooling). This module runs them: it
decides whether a cached file can be reused, extracts the features chunk by chunk and writes the file.
"""

import dataclasses
import logging
import re
import shutil
from pathlib import Path

import torch

from ttdnet.devices import resolve_device
from ttdnet.errors import TtdnetError
from ttdnet.hashing import sha256_text
from ttdnet.io import remove_stale_temporaries
from ttdnet.stages.chunked_cache import ChunkSizeError, check_saved_chunks, compute_in_chunks, open_partial_dir
from ttdnet.stages.feature_file import SPLITS, FeatureFile, FeatureFileError, read_feature_file, write_feature_file
from ttdnet.stages.image_backbones import Backbone, build_backbone, default_layers
from ttdnet.stages.layer_taps import LayerTaps, pixel_layers, pool_output


# The feature-file names are re-exported: code that reads feature files may import them from here.
__all__ = ["ExtractionSettings", "FeatureFile", "FeatureFileError", "ImageFolderList", "extract",
           "read_feature_file", "run_features", "write_feature_file"]  # fmt: skip

logger = logging.getLogger(__name__)


class ImageFolderList(torch.utils.data.Dataset):
    """Images by relative path under ``root``, each opened as RGB and passed through ``preprocess``."""

    def __init__(self, root: Path, paths: list[str], preprocess):
        self.root, self.paths, self.preprocess = root, paths, preprocess

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> torch.Tensor:
        from ttdnet.data.image_crop import open_rgb

        return self.preprocess(open_rgb(self.root / self.paths[index]))


def image_list_digest(paths: list[str]) -> str:
    """SHA-256 of the newline-joined relative paths (identifies the image list in the settings)."""
    return sha256_text("\n".join(paths))


@dataclasses.dataclass(frozen=True)
class ExtractionSettings:
    """How :func:`extract` runs a backbone.

    Attributes
    ----------
    layers : list of str
        Module names to hook, ``"final"`` for the final embedding, ``rgbN`` for pixels.
    pooling : {"mean", "grid"}
        Token/spatial mean, or average-pool to ``grid_size x grid_size`` and flatten.
    grid_size : int
        Cells per side for ``pooling="grid"``.
    normalize : bool
        L2-normalise every stored vector.
    batch_size : int
        Images per forward pass.
    num_workers : int
        DataLoader worker processes (image decoding).
    device : torch.device
    dtype : torch.dtype
        Dtype the backbone runs in.
    chunk_size : int
        Images per resumable chunk.
    """

    layers: list[str]
    pooling: str
    grid_size: int
    normalize: bool
    batch_size: int
    num_workers: int
    device: torch.device
    dtype: torch.dtype
    chunk_size: int


def extract(
    image_dir: Path, paths: dict[str, list[str]], backbone: Backbone, settings: ExtractionSettings, partial_dir: Path
) -> tuple[dict[str, torch.Tensor], list[int]]:
    """Run the backbone over every image in chunks saved under ``partial_dir`` (kept chunks are skipped).

    Parameters
    ----------
    image_dir : pathlib.Path
        The image-set folder.
    paths : dict of str to list of str
        Image paths relative to ``image_dir``, per split (``"training"``, ``"test"``).
    backbone : Backbone
    settings : ExtractionSettings
    partial_dir : pathlib.Path
        Folder of the finished chunks (see :mod:`ttdnet.stages.chunked_cache`).

    Returns
    -------
    features : dict of str to torch.Tensor
        float16 ``(n_images, n_layers, dim)`` per split (layers zero-padded to the widest).
    layer_dims : list of int
    """
    from tqdm.auto import tqdm

    layers, device, dtype = settings.layers, settings.device, settings.dtype
    taps = None
    if backbone.module is not None:
        backbone.module.to(device=device, dtype=dtype)
        taps = LayerTaps(backbone.hook_root, layers, settings.pooling, settings.grid_size)
    collected: dict[str, list[torch.Tensor]] = {}
    try:
        for split in SPLITS:
            dataset = ImageFolderList(image_dir, paths[split], backbone.preprocess)
            progress = tqdm(total=len(dataset), desc=f"features {split}", unit="img")

            def compute(start: int, stop: int, dataset=dataset, progress=progress) -> dict[str, torch.Tensor]:
                subset = torch.utils.data.Subset(dataset, range(start, stop))
                loader = torch.utils.data.DataLoader(
                    subset, batch_size=settings.batch_size, num_workers=settings.num_workers
                )
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
                                pool_output(final, settings.pooling, settings.grid_size, layer)
                                if layer == "final"
                                else taps.outputs[layer]
                                for layer in layers
                            ]
                        for i, vector in enumerate(vectors):
                            vector = vector.float().cpu()
                            if settings.normalize:
                                vector = torch.nn.functional.normalize(vector, dim=-1)
                            per_layer[i].append(vector)
                        progress.update(batch.shape[0])
                return {f"layer{i}": torch.cat(parts) for i, parts in enumerate(per_layer)}

            stored = compute_in_chunks(partial_dir, split, len(dataset), settings.chunk_size, compute, progress)
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
        "preprocessing": backbone.preprocessing,
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


def config_path(target: Path) -> Path:
    """The resolved options of the run that wrote ``target``: ``<stem>.config.yaml`` beside it."""
    return target.with_name(f"{target.stem}.config.yaml")


def reusable(target: Path, settings: dict, overwrite: bool) -> FeatureFile | None:
    """The feature file at ``target`` if it can be reused (readable, valid, same settings, no ``overwrite``)."""
    if not target.is_file() or overwrite:
        return None
    try:
        existing = read_feature_file(target)
    except FeatureFileError as error:
        logger.warning(f"{target} is unreadable ({error}); rebuilding it")
        return None
    if existing.settings == settings:
        return existing
    changed = sorted(k for k in set(settings) | set(existing.settings) if settings.get(k) != existing.settings.get(k))
    logger.info(f"{target}: settings changed ({changed}); rebuilding")
    return None


def run_features(config) -> dict:
    """Extract (or reuse) the feature file described by ``config`` (a ``FeaturesConfig``); return a summary.

    The resolved options are saved as :func:`config_path` beside the file, once the file is written or reused.
    """
    import open_clip
    import peft
    import timm
    import torchvision
    import transformers

    from ttdnet.config import save_config
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
        config.cache_dir,
    )
    settings = feature_settings(config, backbone, layers, paths)
    target = output_path(config)
    existing = reusable(target, settings, config.overwrite)
    if existing is not None:
        logger.info(f"{target}: settings match; reusing the cached features")
        save_config(config, config_path(target), "features")
        return {"output": str(target), "reused": True, "layers": layers,
                "shape": list(existing.features["training"].shape), "config": str(config_path(target))}  # fmt: skip
    remove_stale_temporaries(target.parent, target.name)
    partial_dir = target.with_name(f".{target.name}.partial")
    device = resolve_device(config.device)
    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[config.model_dtype]
    extraction = ExtractionSettings(
        layers=layers,
        pooling=config.pooling,
        grid_size=config.grid_size,
        normalize=config.normalize,
        batch_size=config.batch_size,
        num_workers=config.dataloader_num_workers,
        device=device,
        dtype=dtype,
        chunk_size=config.chunk_size,
    )
    if open_partial_dir(partial_dir, settings, config.overwrite):
        logger.info(f"resuming the extraction from {partial_dir}")
        remove_stale_temporaries(partial_dir)
        try:
            for split in SPLITS:
                check_saved_chunks(partial_dir, split, len(paths[split]), config.chunk_size)
        except ChunkSizeError as error:
            same = f"--chunk_size {error.saved}" if error.saved else "the chunk size of the interrupted run"
            raise TtdnetError(f"{error}: rerun with {same} to resume it, or add --overwrite to start again") from None
    features, layer_dims = extract(image_dir, paths, backbone, extraction, partial_dir)
    provenance = {"torch": torch.__version__, "torchvision": torchvision.__version__,
                  "open_clip": open_clip.__version__, "transformers": transformers.__version__,
                  "timm": timm.__version__, "peft": peft.__version__}  # fmt: skip
    write_feature_file(target, features, paths, layers, layer_dims, config.normalize, settings, provenance)
    save_config(config, config_path(target), "features")
    shutil.rmtree(partial_dir)
    return {"output": str(target), "reused": False, "layers": layers, "layer_dims": layer_dims,
            "shape": {split: list(features[split].shape) for split in SPLITS},
            "config": str(config_path(target))}  # fmt: skip
