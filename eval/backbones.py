"""The networks behind the metrics, built from local weight files (or their usual hub/torchvision ids).

Each network is wrapped in a :class:`Backbone`: a module that maps a preprocessed batch to named feature
outputs, plus its pinned preprocessing (resize, crop, normalisation) and a record of what was loaded. The
suite only talks to :class:`Backbone` objects, so tests inject small random-weight ones through the same
interface (``backbones={"alexnet": ...}``) and the benchmark builds the full-size architectures with random
weights (``random_weights=True``).

Weight files are located before anything is loaded (:func:`resolve_weights`): an explicit path, then
``weights_dir/<file>``, then torch's hub cache (``$TORCH_HOME/hub/checkpoints``, where torchvision keeps
its downloads), then a download when allowed. Everything that is still missing is reported in **one**
:class:`MissingWeightsError` that lists each file, its URL and where to put it.
"""

import dataclasses
import hashlib
import os
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ttdnet.errors import TtdnetError

from .images import ResizeSpec


IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
CLIP_HF_ID = "openai/clip-vit-large-patch14"
CLIP_OPENAI_URL = (
    "https://openaipublic.azureedge.net/clip/models/"
    "b8cca3fd41ae0c99ba7e8951adf17d267cdb84cd88be6f7c2e0eca1737a03836/ViT-L-14.pt"
)
FID_INCEPTION_URL = (
    "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/weights-inception-2015-12-05-6726825d.pth"
)


@dataclasses.dataclass(frozen=True)
class WeightFile:
    """One file the evaluation may need.

    Attributes
    ----------
    backbone : str
        Backbone name (``alexnet``, ``inception``, ...).
    file_name : str
        Upstream file name; the file is looked up as ``weights_dir/<file_name>``.
    url : str
        Where to download it.
    option : str
        The ``ttdnet evaluate`` option that points at it directly.
    weights_id : str
        The torchvision enum / hub id it corresponds to.
    metrics : str
        Metrics that use it.
    """

    backbone: str
    file_name: str
    url: str
    option: str
    weights_id: str
    metrics: str


def _torchvision_url(weights_id: str) -> str:
    from torchvision.models import get_weight

    return get_weight(weights_id).url


def weight_files(classifier_weights_id: str = "ViT_H_14_Weights.IMAGENET1K_SWAG_E2E_V1") -> dict[str, WeightFile]:
    """Every weight file by backbone name (CLIP, a model directory or file, is handled by :func:`resolve_clip`)."""
    specs = [
        ("alexnet", "AlexNet_Weights.IMAGENET1K_V1", "alexnet_weights", "alexnet2, alexnet5, lpips_alex (backbone)"),
        ("inception", "Inception_V3_Weights.IMAGENET1K_V1", "inception_weights", "inception"),
        ("effnet_b1", "EfficientNet_B1_Weights.IMAGENET1K_V2", "effnet_weights", "effnet_b"),
        ("classifier", classifier_weights_id, "classifier_weights", "nway_cls_top1"),
    ]
    files = {}
    for name, weights_id, option, metrics in specs:
        url = _torchvision_url(weights_id)
        files[name] = WeightFile(name, url.rsplit("/", 1)[-1], url, option, weights_id, metrics)
    files["swav"] = WeightFile(
        "swav",
        "swav_800ep_pretrain.pth.tar",
        "https://dl.fbaipublicfiles.com/deepcluster/swav_800ep_pretrain.pth.tar",
        "swav_weights",
        "torch.hub facebookresearch/swav:main resnet50",
        "swav",
    )
    files["fid_inception"] = WeightFile(
        "fid_inception",
        FID_INCEPTION_URL.rsplit("/", 1)[-1],
        FID_INCEPTION_URL,
        "fid_inception_weights",
        "TF Inception 2015-12-05 (torch-fidelity port; pytorch-fid: pt_inception-2015-12-05-6726825d.pth)",
        "fid, kid",
    )
    return files


class MissingWeightsError(TtdnetError):
    """Weights the requested metrics need are not available locally (and could not be downloaded)."""


@dataclasses.dataclass
class ResolvedWeights:
    """Where one backbone's weights come from: ``kind`` is ``file``, ``hf_dir``, ``hf_id`` or ``open_clip_file``."""

    backbone: str
    kind: str
    location: str
    weights_id: str


def _hub_checkpoints() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints"


def _offline(allow_download: bool) -> bool:
    flag = os.environ.get("HF_HUB_OFFLINE", "") or os.environ.get("TTDNET_OFFLINE", "")
    return not allow_download or flag.strip().lower() in ("1", "true", "yes", "on")


def resolve_clip(clip_model: str, weights_dir: Path, cache_dir: str | None, offline: bool) -> ResolvedWeights | str:
    """Locate the CLIP ViT-L/14 weights.

    Returns a :class:`ResolvedWeights`, or the text of a missing-file entry. ``clip_model`` may be an OpenAI
    ``ViT-L-14.pt`` file (loaded with open_clip), a Hugging Face model folder, or a hub id (default
    ``openai/clip-vit-large-patch14``), which is looked for as ``weights_dir/ViT-L-14.pt``,
    ``weights_dir/clip-vit-large-patch14/`` and in the Hugging Face cache first.
    """
    path = Path(clip_model).expanduser()
    if path.is_file():
        return ResolvedWeights(
            "clip", "open_clip_file", str(path), "OpenAI CLIP ViT-L/14 (open_clip ViT-L-14, quick_gelu)"
        )
    if path.is_dir():
        return ResolvedWeights("clip", "hf_dir", str(path), f"Hugging Face CLIPVisionModelWithProjection from {path}")
    looks_like_path = (
        clip_model.startswith(("/", ".", "~"))
        or clip_model.count("/") != 1
        or path.suffix in (".pt", ".bin", ".safetensors")
    )
    if looks_like_path:
        return f"- clip: --clip_model {clip_model} does not exist (a ViT-L-14.pt file or a Hugging Face model folder)."
    if weights_dir and (weights_dir / "ViT-L-14.pt").is_file():
        return ResolvedWeights(
            "clip", "open_clip_file", str(weights_dir / "ViT-L-14.pt"), "OpenAI CLIP ViT-L/14 (open_clip)"
        )
    local_dir = weights_dir / clip_model.rsplit("/", 1)[-1] if weights_dir else None
    if local_dir is not None and (local_dir / "config.json").is_file():
        return ResolvedWeights("clip", "hf_dir", str(local_dir), f"Hugging Face {clip_model} from {local_dir}")
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(clip_model, "config.json", cache_dir=cache_dir)
    if isinstance(cached, str) or not offline:
        return ResolvedWeights("clip", "hf_id", clip_model, f"Hugging Face {clip_model}")
    target = local_dir or Path("<weights_dir>") / clip_model.rsplit("/", 1)[-1]
    return (
        f"- clip ({clip_model}; metrics clip, nway_clip): either "
        f"`huggingface-cli download {clip_model} --local-dir {target}` "
        f"(a Hugging Face folder), or {CLIP_OPENAI_URL} -> {weights_dir or '<weights_dir>'}/ViT-L-14.pt; "
        "or point --clip_model at either."
    )


def resolve_weights(
    backbones: list[str],
    weights_dir: str | os.PathLike | None,
    overrides: dict[str, str | None],
    allow_download: bool = True,
    clip_model: str = CLIP_HF_ID,
    cache_dir: str | None = None,
    classifier_weights_id: str = "ViT_H_14_Weights.IMAGENET1K_SWAG_E2E_V1",
) -> dict[str, ResolvedWeights]:
    """Locate (and, when allowed, download) the weights of ``backbones``, or fail once listing everything missing.

    Parameters
    ----------
    backbones : list of str
        Names among ``alexnet, inception, effnet_b1, swav, clip, classifier, lpips, fid_inception``.
        ``lpips`` needs the AlexNet file (its linear heads ship with the ``lpips`` package).
    weights_dir : path-like, optional
        Folder searched for the upstream file names.
    overrides : dict
        Backbone name to an explicit file path (None: search).
    allow_download : bool
        Download what is missing (into torch's hub cache) unless ``HF_HUB_OFFLINE=1``.
    clip_model, cache_dir, classifier_weights_id
        See :func:`resolve_clip` and :func:`weight_files`.

    Returns
    -------
    dict
        Backbone name to :class:`ResolvedWeights` (``lpips`` maps to the AlexNet file).

    Raises
    ------
    MissingWeightsError
        Listing every missing file, its URL and where to put it.
    """
    weights_dir = Path(weights_dir).expanduser() if weights_dir else None
    offline = _offline(allow_download)
    files = weight_files(classifier_weights_id)
    resolved: dict[str, ResolvedWeights] = {}
    missing: list[str] = []
    wanted = sorted({("alexnet" if name == "lpips" else name) for name in backbones})
    for name in wanted:
        if name == "clip":
            found = resolve_clip(clip_model, weights_dir or Path(""), cache_dir, offline)
            if isinstance(found, str):
                missing.append(found)
            else:
                resolved[name] = found
            continue
        spec = files[name]
        explicit = overrides.get(name)
        if explicit:
            if Path(explicit).expanduser().is_file():
                resolved[name] = ResolvedWeights(name, "file", str(Path(explicit).expanduser()), spec.weights_id)
            else:
                missing.append(
                    f"- {name}: --{spec.option} {explicit} does not exist (expected {spec.file_name} from {spec.url})."
                )
            continue
        candidates = ([weights_dir / spec.file_name] if weights_dir else []) + [_hub_checkpoints() / spec.file_name]
        found_path = next((path for path in candidates if path.is_file()), None)
        if found_path is None and not offline:
            found_path = _download(spec)
        if found_path is None:
            where = weights_dir / spec.file_name if weights_dir else f"<weights_dir>/{spec.file_name}"
            missing.append(
                f"- {name} ({spec.weights_id}; metrics {spec.metrics}): {spec.url} -> {where} "
                f"(or {_hub_checkpoints() / spec.file_name}, or pass --{spec.option} FILE)"
            )
        else:
            resolved[name] = ResolvedWeights(name, "file", str(found_path), spec.weights_id)
    if missing:
        reason = "downloads are off (HF_HUB_OFFLINE=1 or --no_download_weights)" if offline else "downloads failed"
        raise MissingWeightsError(
            f"{len(missing)} weight file(s) needed by the selected metrics are missing and {reason}. "
            "Fetch each and put it where shown (then re-run), or drop the metrics with --metrics:\n"
            + "\n".join(missing)
        )
    if "lpips" in backbones:
        resolved["lpips"] = resolved["alexnet"]
    return resolved


def _download(spec: WeightFile) -> Path | None:
    target = _hub_checkpoints() / spec.file_name
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        torch.hub.download_url_to_file(spec.url, str(target), progress=True)
    except Exception:  # noqa: BLE001 - any network failure is reported as a missing file
        return None
    return target


def file_sha256(path: str | os.PathLike, limit: int | None = None) -> str:
    """SHA-256 of a file (hex), recorded next to every loaded weight file."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class Backbone:
    """A feature network with its pinned preprocessing.

    Parameters
    ----------
    name : str
    module : torch.nn.Module
        Maps a preprocessed batch to a dict of named outputs (any shape ``(B, ...)``).
    resize : ResizeSpec or None
        Applied to float [0, 1] input first; None keeps the input size (the caller resized).
    crop : int or None
        Centre crop side after resizing.
    mean, std : tuple of float or None
        Normalisation after resize/crop.
    input_kind : {"float01", "uint8"}
        ``uint8``: the module takes uint8 images at their stored size (the FID Inception resizes internally).
    expected_dims : dict or None
        Flattened output sizes to assert (e.g. AlexNet ``features.4`` 184,512 at 256 px).
    info : dict
        What was loaded (weights id, file, sha256, implementation), recorded in ``metrics.json``.
    """

    def __init__(
        self,
        name: str,
        module: nn.Module,
        resize: ResizeSpec | None,
        mean: tuple[float, ...] | None = None,
        std: tuple[float, ...] | None = None,
        crop: int | None = None,
        input_kind: str = "float01",
        expected_dims: dict[str, int] | None = None,
        info: dict | None = None,
    ):
        self.name = name
        self.module = module.eval().requires_grad_(False).float()
        self.resize = resize
        self.crop = crop
        self.mean = mean
        self.std = std
        self.input_kind = input_kind
        self.expected_dims = expected_dims
        self.info = dict(info or {})
        self.device = torch.device("cpu")

    def to(self, device: str | torch.device) -> "Backbone":
        self.device = torch.device(device)
        self.module.to(self.device)
        return self

    def preprocess_settings(self) -> dict[str, object]:
        """Preprocessing as recorded in ``metrics.json``."""
        return {
            "resize": self.resize.describe() if self.resize else None,
            "center_crop": self.crop,
            "normalize": {"mean": list(self.mean), "std": list(self.std)} if self.mean else None,
            "input": self.input_kind,
            "dtype": "float32",
        }

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> dict[str, np.ndarray]:
        """Features of a batch.

        Parameters
        ----------
        images : torch.Tensor
            float32 ``(B, 3, H, W)`` in [0, 1], or uint8 ``(B, 3, H, W)`` when ``input_kind == "uint8"``.

        Returns
        -------
        dict
            Output name to float32 ``(B, D)`` numpy arrays (flattened).
        """
        x = images.to(self.device)
        if self.input_kind == "float01":
            if x.dtype != torch.float32:
                raise TypeError(f"{self.name} expects float32 images in [0, 1], got {x.dtype}")
            if self.resize is not None:
                x = self.resize(x)
            if self.crop is not None and self.crop < x.shape[-1]:
                top = (x.shape[-2] - self.crop) // 2
                left = (x.shape[-1] - self.crop) // 2
                x = x[..., top : top + self.crop, left : left + self.crop]
            if self.mean is not None:
                mean = torch.tensor(self.mean, device=x.device).view(1, -1, 1, 1)
                std = torch.tensor(self.std, device=x.device).view(1, -1, 1, 1)
                x = (x - mean) / std
        elif x.dtype != torch.uint8:
            raise TypeError(f"{self.name} expects uint8 images, got {x.dtype}")
        outputs = self.module(x)
        result = {}
        for key, value in outputs.items():
            flat = value.float().flatten(1).cpu().numpy()
            if (
                self.expected_dims is not None
                and key in self.expected_dims
                and flat.shape[1] != self.expected_dims[key]
            ):
                raise RuntimeError(
                    f"{self.name} output {key!r} has {flat.shape[1]} features, expected {self.expected_dims[key]}: "
                    "wrong feature node or input size"
                )
            result[key] = flat
        return result


class _FeatureNodes(nn.Module):
    """A torchvision feature extractor returning ``{output_name: tensor}``."""

    def __init__(self, model: nn.Module, nodes: dict[str, str]):
        super().__init__()
        from torchvision.models.feature_extraction import create_feature_extractor

        self.extractor = create_feature_extractor(model.eval(), return_nodes=nodes)

    def forward(self, x):
        return self.extractor(x)


def _load_state(path: str, model_name: str) -> dict:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - corrupt or foreign files
        raise TtdnetError(f"cannot load {model_name} weights from {path}: {error}. Re-download the file.") from error
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    return state


def _strict_load(model: nn.Module, state: dict, path: str, name: str) -> None:
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        raise TtdnetError(f"{path} does not hold {name} weights: {str(error)[:500]}") from error


def _file_info(resolved: ResolvedWeights | None, random_weights: bool, hash_files: bool) -> dict:
    if random_weights or resolved is None:
        return {"weights": "random (benchmark/test)", "weights_id": None, "file": None, "sha256": None}
    info = {"weights_id": resolved.weights_id, "source": resolved.kind, "file": resolved.location}
    info["sha256"] = file_sha256(resolved.location) if hash_files and Path(resolved.location).is_file() else None
    return info


def build_alexnet(resolved: ResolvedWeights | None, random_weights: bool = False, hash_files: bool = True) -> Backbone:
    """AlexNet ``features.4`` (``alexnet2``, 192·31·31) and ``features.11`` (``alexnet5``, 256·15·15).

    Input: 256 px, bilinear, no antialias, ImageNet normalisation.
    """
    from torchvision.models import alexnet

    model = alexnet(weights=None)
    if not random_weights:
        _strict_load(model, _load_state(resolved.location, "AlexNet"), resolved.location, "torchvision AlexNet")
    return Backbone(
        "alexnet",
        _FeatureNodes(model, {"features.4": "alexnet2", "features.11": "alexnet5"}),
        ResizeSpec(256, "bilinear", antialias=False),
        IMAGENET_MEAN,
        IMAGENET_STD,
        expected_dims={"alexnet2": 192 * 31 * 31, "alexnet5": 256 * 15 * 15},
        info=_file_info(resolved, random_weights, hash_files)
        | {"implementation": "torchvision alexnet, create_feature_extractor"},
    )


def build_inception(
    resolved: ResolvedWeights | None, random_weights: bool = False, hash_files: bool = True
) -> Backbone:
    """torchvision Inception-v3 (``transform_input=True``, ``aux_logits=True``), node ``avgpool`` → 2048, at 342 px."""
    from torchvision.models import inception_v3

    model = inception_v3(weights=None, aux_logits=True, transform_input=True, init_weights=random_weights)
    if not random_weights:
        _strict_load(
            model, _load_state(resolved.location, "Inception-v3"), resolved.location, "torchvision Inception-v3"
        )
    return Backbone(
        "inception",
        _FeatureNodes(model, {"avgpool": "inception"}),
        ResizeSpec(342, "bilinear", antialias=False),
        IMAGENET_MEAN,
        IMAGENET_STD,
        expected_dims={"inception": 2048},
        info=_file_info(resolved, random_weights, hash_files)
        | {"implementation": "torchvision inception_v3(transform_input=True), node avgpool"},
    )


def build_effnet(resolved: ResolvedWeights | None, random_weights: bool = False, hash_files: bool = True) -> Backbone:
    """torchvision EfficientNet-B1, node ``avgpool`` → 1280, at 255 px."""
    from torchvision.models import efficientnet_b1

    model = efficientnet_b1(weights=None)
    if not random_weights:
        _strict_load(
            model, _load_state(resolved.location, "EfficientNet-B1"), resolved.location, "torchvision EfficientNet-B1"
        )
    return Backbone(
        "effnet_b1",
        _FeatureNodes(model, {"avgpool": "effnet_b"}),
        ResizeSpec(255, "bilinear", antialias=False),
        IMAGENET_MEAN,
        IMAGENET_STD,
        expected_dims={"effnet_b": 1280},
        info=_file_info(resolved, random_weights, hash_files)
        | {"implementation": "torchvision efficientnet_b1, node avgpool"},
    )


def build_swav(resolved: ResolvedWeights | None, random_weights: bool = False, hash_files: bool = True) -> Backbone:
    """torchvision ResNet-50 with the SwAV 800-epoch weights, node ``avgpool`` → 2048.

    The checkpoint's ``module.`` prefix is stripped and it is loaded non-strictly (it has no ``fc``); any
    other missing key is an error.
    """
    from torchvision.models import resnet50

    model = resnet50(weights=None)
    if not random_weights:
        state = _load_state(resolved.location, "SwAV")
        state = {key.removeprefix("module."): value for key, value in state.items()}
        result = model.load_state_dict(state, strict=False)
        trunk_missing = [key for key in result.missing_keys if not key.startswith("fc.")]
        if trunk_missing:
            raise TtdnetError(
                f"{resolved.location} does not hold SwAV ResNet-50 weights: missing {trunk_missing[:5]} ..."
            )
    return Backbone(
        "swav",
        _FeatureNodes(model, {"avgpool": "swav"}),
        ResizeSpec(224, "bilinear", antialias=False),
        IMAGENET_MEAN,
        IMAGENET_STD,
        expected_dims={"swav": 2048},
        info=_file_info(resolved, random_weights, hash_files)
        | {"implementation": "torchvision resnet50 + swav_800ep_pretrain, node avgpool"},
    )


class HfClipImageEncoder(nn.Module):
    """``CLIPVisionModelWithProjection(...).image_embeds`` as ``{"clip": (B, projection_dim)}`` (unnormalised)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x):
        return {"clip": self.model(pixel_values=x).image_embeds}


class OpenClipImageEncoder(nn.Module):
    """open_clip ``encode_image`` as ``{"clip": (B, embed_dim)}`` (unnormalised)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x):
        return {"clip": self.model.encode_image(x)}


def clip_backbone(module: nn.Module, info: dict, size: int = 224, expected_dim: int | None = 768) -> Backbone:
    """Wrap a CLIP image encoder (returning ``{"clip": ...}``) with MindEye's CLIP preprocessing.

    Preprocessing: 224 px, bilinear, no antialias, CLIP mean/std.
    """
    return Backbone(
        "clip",
        module,
        ResizeSpec(size, "bilinear", antialias=False),
        CLIP_MEAN,
        CLIP_STD,
        expected_dims={"clip": expected_dim} if expected_dim else None,
        info=info,
    )


def build_clip(
    resolved: ResolvedWeights | None,
    random_weights: bool = False,
    cache_dir: str | None = None,
    hash_files: bool = True,
) -> Backbone:
    """CLIP ViT-L/14 image encoder from an OpenAI ``.pt`` (open_clip), a Hugging Face folder or hub id."""
    if random_weights:
        from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

        config = CLIPVisionConfig(
            hidden_size=1024, intermediate_size=4096, num_attention_heads=16, num_hidden_layers=24, patch_size=14,
            image_size=224, projection_dim=768, hidden_act="quick_gelu",
        )  # fmt: skip
        return clip_backbone(
            HfClipImageEncoder(CLIPVisionModelWithProjection(config)),
            _file_info(None, True, False)
            | {"implementation": "transformers CLIPVisionModelWithProjection (ViT-L/14 config)"},
        )
    if resolved.kind == "open_clip_file":
        import open_clip

        model = open_clip.create_model(
            "ViT-L-14", pretrained=resolved.location, force_quick_gelu=True, weights_only=False
        )
        info = _file_info(resolved, False, hash_files) | {
            "implementation": "open_clip ViT-L-14 encode_image (quick_gelu)"
        }
        return clip_backbone(OpenClipImageEncoder(model), info)
    from transformers import CLIPVisionModelWithProjection

    offline = _offline(True)
    try:
        model = CLIPVisionModelWithProjection.from_pretrained(
            resolved.location, cache_dir=cache_dir, local_files_only=offline, dtype=torch.float32
        )
    except OSError as error:
        raise MissingWeightsError(f"cannot load CLIP from {resolved.location}: {error}") from error
    info = {
        "weights_id": CLIP_HF_ID if resolved.kind == "hf_id" else resolved.weights_id,
        "source": resolved.kind,
        "file": resolved.location,
        "sha256": None,
        "implementation": "transformers CLIPVisionModelWithProjection.image_embeds",
    }
    return clip_backbone(HfClipImageEncoder(model), info)


class _Classifier(nn.Module):
    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x):
        return {"probs": torch.softmax(self.model(x).double(), dim=1)}


def build_classifier(
    resolved: ResolvedWeights | None,
    arch: str = "vit_h_14",
    weights_id: str = "ViT_H_14_Weights.IMAGENET1K_SWAG_E2E_V1",
    random_weights: bool = False,
    hash_files: bool = True,
) -> Backbone:
    """An ImageNet classifier (``torchvision.models.get_model(arch)``) with its weights' own preprocessing.

    Resize to ``resize_size`` (square), centre-crop ``crop_size``, ImageNet normalisation, all from the
    torchvision weights enum (ViT-H/14 SWAG E2E: 518 px, bicubic, antialias). Output ``probs``: softmax ``(B, K)``.
    """
    from torchvision.models import get_model, get_weight

    weights = get_weight(weights_id)
    transforms = weights.transforms()
    kwargs = {"num_classes": len(weights.meta["categories"])}
    if arch.startswith("vit_") and "min_size" in weights.meta:
        kwargs["image_size"] = weights.meta["min_size"][0]
    model = get_model(arch, weights=None, **kwargs)
    if not random_weights:
        _strict_load(
            model, _load_state(resolved.location, arch), resolved.location, f"torchvision {arch} ({weights_id})"
        )
    interpolation = transforms.interpolation.value
    resize = ResizeSpec(transforms.resize_size[0], interpolation, antialias=bool(transforms.antialias))
    return Backbone(
        "classifier",
        _Classifier(model),
        resize,
        tuple(transforms.mean),
        tuple(transforms.std),
        crop=transforms.crop_size[0],
        info=_file_info(resolved, random_weights, hash_files)
        | {"implementation": f"torchvision {arch}", "weights_id": weights_id},
    )


class LpipsFeatures(nn.Module):
    """LPIPS as an embedding: ``LPIPS(x, y) = ‖U(x) − U(y)‖²``.

    For LPIPS v0.1, ``d(x, y) = Σ_l mean_{h,w} Σ_c w_{l,c} (x̂_{l,c,h,w} − ŷ_{l,c,h,w})²`` with x̂ the
    channel-normalised features of layer l and ``w ≥ 0`` the linear heads. So with
    ``U_l(x) = sqrt(w_l) ⊙ x̂_l / sqrt(H_l W_l)`` flattened and concatenated over layers, the distance is a
    squared Euclidean distance, and all N² pairwise distances come from N + N forward passes.
    Input: float [0, 1] ``(B, 3, H, W)`` (mapped to [−1, 1] here). Output ``{"lpips": (B, D)}``.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        weights = [lin.model[-1].weight.detach().flatten() for lin in model.lins]
        if any((w < 0).any() for w in weights):
            raise TtdnetError("LPIPS linear heads have negative weights; expected the v0.1 (non-negative) heads.")
        for index, w in enumerate(weights):
            self.register_buffer(f"sqrt_w{index}", w.sqrt().view(1, -1, 1, 1))

    def forward(self, x):
        from lpips import normalize_tensor

        x = self.model.scaling_layer(2.0 * x - 1.0)
        outputs = self.model.net.forward(x)
        parts = []
        for index, feature in enumerate(outputs):
            scaled = normalize_tensor(feature) * getattr(self, f"sqrt_w{index}")
            parts.append((scaled / float(feature.shape[-1] * feature.shape[-2]) ** 0.5).flatten(1))
        return {"lpips": torch.cat(parts, dim=1)}


def build_lpips(
    resolved: ResolvedWeights | None,
    random_weights: bool = False,
    lin_path: str | None = None,
    hash_files: bool = True,
) -> tuple[Backbone, nn.Module]:
    """LPIPS v0.1 AlexNet, with the AlexNet trunk from the local torchvision file (never downloaded by lpips).

    Returns the :class:`Backbone` (input already at the evaluation size) and the underlying ``lpips.LPIPS``.
    """
    import lpips

    with warnings.catch_warnings():  # lpips calls torchvision's deprecated ``pretrained=False``
        warnings.simplefilter("ignore", UserWarning)
        model = lpips.LPIPS(
            pretrained=True, net="alex", version="0.1", pnet_rand=True, model_path=lin_path, verbose=False
        )
    if not random_weights:
        from torchvision.models import alexnet

        trunk = alexnet(weights=None)
        _strict_load(trunk, _load_state(resolved.location, "AlexNet"), resolved.location, "torchvision AlexNet")
        for slice_module in (model.net.slice1, model.net.slice2, model.net.slice3, model.net.slice4, model.net.slice5):
            for index, layer in slice_module.named_children():
                layer.load_state_dict(trunk.features[int(index)].state_dict())
    model.eval()
    lin_file = lin_path or str(Path(lpips.__file__).parent / "weights" / "v0.1" / "alex.pth")
    info = _file_info(resolved, random_weights, hash_files) | {
        "implementation": "lpips.LPIPS(net='alex', version='0.1'), trunk from torchvision AlexNet file",
        "linear_heads": lin_file,
        "input_range": "[-1, 1] (2x - 1 of [0, 1])",
    }
    return Backbone("lpips", LpipsFeatures(model), None, info=info), model


class FidInception(nn.Module):
    """torch-fidelity's TF-ported Inception-v3, 2048-d pool3 features from uint8 ``(B, 3, H, W)``.

    torch-fidelity resizes to 299×299 internally with its TF1-compatible bilinear interpolation.
    """

    def __init__(self, weights_path: str | None, random_weights: bool = False):
        super().__init__()
        from unittest import mock

        from torch_fidelity import feature_extractor_inceptionv3 as fidelity

        if random_weights:

            class _RandomInit(fidelity.FeatureExtractorInceptionV3):
                def load_state_dict(self, state_dict, strict=True, assign=False):
                    return None  # keep the random initialisation

            with mock.patch.object(fidelity, "load_state_dict_from_url", return_value={}):
                self.net = _RandomInit("inception-v3-compat", ["2048"])
        else:
            try:
                self.net = fidelity.FeatureExtractorInceptionV3(
                    "inception-v3-compat", ["2048"], feature_extractor_weights_path=weights_path
                )
            except RuntimeError as error:
                raise TtdnetError(
                    f"{weights_path} does not hold the FID Inception weights: {str(error)[:300]}"
                ) from error

    def forward(self, x):
        return {"fid": self.net(x)[0]}


def build_fid_inception(
    resolved: ResolvedWeights | None, random_weights: bool = False, hash_files: bool = True
) -> Backbone:
    """The FID feature extractor (2048-d pool3, uint8 input at stored size)."""
    module = FidInception(None if random_weights else resolved.location, random_weights)
    info = _file_info(resolved, random_weights, hash_files) | {
        "implementation": "torch-fidelity FeatureExtractorInceptionV3 (inception-v3-compat), feature 2048",
        "resize": "torch-fidelity interpolate_bilinear_2d_like_tensorflow1x to 299x299 from uint8 at stored size",
    }
    return Backbone("fid_inception", module, None, input_kind="uint8", expected_dims={"fid": 2048}, info=info)


BUILDERS: dict[str, Callable[..., Backbone]] = {
    "alexnet": build_alexnet,
    "inception": build_inception,
    "effnet_b1": build_effnet,
    "swav": build_swav,
    "fid_inception": build_fid_inception,
}
