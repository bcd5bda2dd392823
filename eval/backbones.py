"""The networks behind the metrics, built from resolved weight files (or with random weights).

Each builder returns a :class:`~ttdnet.eval.feature_backbone.Backbone`: the network as a module mapping a
preprocessed batch to named feature outputs, its pinned preprocessing (resize, crop, normalisation) and a record
of what was loaded. The weights are located first by :func:`~ttdnet.eval.weights.resolve_weights`; the benchmark
builds the full-size architectures with random weights (``random_weights=True``).
"""

import io
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from ttdnet.errors import TtdnetError
from ttdnet.image_constants import CLIP_MEAN, CLIP_STD, IMAGENET_MEAN, IMAGENET_STD
from ttdnet.state_dicts import load_state_dict_file

from .feature_backbone import Backbone
from .images import ResizeSpec
from .weights import (
    CLASSIFIER_WEIGHTS_ID,
    CLIP_HF_ID,
    MissingWeightsError,
    ResolvedWeights,
    offline_mode,
    weights_info,
)


class _FeatureNodes(nn.Module):
    """A torchvision feature extractor returning ``{output_name: tensor}``."""

    def __init__(self, model: nn.Module, nodes: dict[str, str]):
        super().__init__()
        from torchvision.models.feature_extraction import create_feature_extractor

        self.extractor = create_feature_extractor(model.eval(), return_nodes=nodes)

    def forward(self, x):
        return self.extractor(x)


def _load_strict(model: nn.Module, path: str, name: str) -> None:
    """Load the weight file ``path`` into ``model``, every key required; ``name`` is the model in error messages."""
    state = load_state_dict_file(path, f"the {name} weights")
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        raise TtdnetError(f"{path} does not hold {name} weights: {' '.join(str(error).split())[:500]}") from error


def build_alexnet(resolved: ResolvedWeights | None, random_weights: bool = False, hash_files: bool = True) -> Backbone:
    """AlexNet ``features.4`` (``alexnet2``, 192·31·31) and ``features.11`` (``alexnet5``, 256·15·15).

    Input: 256 px, bilinear, no antialias, ImageNet normalisation.
    """
    from torchvision.models import alexnet

    model = alexnet(weights=None)
    if not random_weights:
        _load_strict(model, resolved.location, "torchvision AlexNet")
    return Backbone(
        "alexnet",
        _FeatureNodes(model, {"features.4": "alexnet2", "features.11": "alexnet5"}),
        ResizeSpec(256, "bilinear", antialias=False),
        IMAGENET_MEAN,
        IMAGENET_STD,
        expected_dims={"alexnet2": 192 * 31 * 31, "alexnet5": 256 * 15 * 15},
        info=weights_info(resolved, random_weights, hash_files)
        | {"implementation": "torchvision alexnet, create_feature_extractor"},
    )


def build_inception(
    resolved: ResolvedWeights | None, random_weights: bool = False, hash_files: bool = True
) -> Backbone:
    """torchvision Inception-v3 (``transform_input=True``, ``aux_logits=True``), node ``avgpool`` → 2048, at 342 px."""
    from torchvision.models import inception_v3

    model = inception_v3(weights=None, aux_logits=True, transform_input=True, init_weights=random_weights)
    if not random_weights:
        _load_strict(model, resolved.location, "torchvision Inception-v3")
    return Backbone(
        "inception",
        _FeatureNodes(model, {"avgpool": "inception"}),
        ResizeSpec(342, "bilinear", antialias=False),
        IMAGENET_MEAN,
        IMAGENET_STD,
        expected_dims={"inception": 2048},
        info=weights_info(resolved, random_weights, hash_files)
        | {"implementation": "torchvision inception_v3(transform_input=True), node avgpool"},
    )


def build_effnet(resolved: ResolvedWeights | None, random_weights: bool = False, hash_files: bool = True) -> Backbone:
    """torchvision EfficientNet-B1, node ``avgpool`` → 1280, at 255 px."""
    from torchvision.models import efficientnet_b1

    model = efficientnet_b1(weights=None)
    if not random_weights:
        _load_strict(model, resolved.location, "torchvision EfficientNet-B1")
    return Backbone(
        "effnet_b1",
        _FeatureNodes(model, {"avgpool": "effnet_b"}),
        ResizeSpec(255, "bilinear", antialias=False),
        IMAGENET_MEAN,
        IMAGENET_STD,
        expected_dims={"effnet_b": 1280},
        info=weights_info(resolved, random_weights, hash_files)
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
        state = load_state_dict_file(resolved.location, "the SwAV weights")
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
        info=weights_info(resolved, random_weights, hash_files)
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
            weights_info(None, True, False)
            | {"implementation": "transformers CLIPVisionModelWithProjection (ViT-L/14 config)"},
        )
    if resolved.kind == "open_clip_file":
        import open_clip

        model = open_clip.create_model(
            "ViT-L-14", pretrained=resolved.location, force_quick_gelu=True, weights_only=False
        )
        info = weights_info(resolved, False, hash_files) | {
            "implementation": "open_clip ViT-L-14 encode_image (quick_gelu)"
        }
        return clip_backbone(OpenClipImageEncoder(model), info)
    from transformers import CLIPVisionModelWithProjection

    offline = offline_mode(True)
    try:
        model = CLIPVisionModelWithProjection.from_pretrained(
            resolved.location, cache_dir=cache_dir, local_files_only=offline, dtype=torch.float32
        )
    except OSError as error:
        detail = " ".join(str(error).split())
        raise MissingWeightsError(f"cannot load CLIP from {resolved.location}: {detail}") from error
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
    weights_id: str = CLASSIFIER_WEIGHTS_ID,
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
        _load_strict(model, resolved.location, f"torchvision {arch} ({weights_id})")
    interpolation = transforms.interpolation.value
    resize = ResizeSpec(transforms.resize_size[0], interpolation, antialias=bool(transforms.antialias))
    return Backbone(
        "classifier",
        _Classifier(model),
        resize,
        tuple(transforms.mean),
        tuple(transforms.std),
        crop=transforms.crop_size[0],
        info=weights_info(resolved, random_weights, hash_files)
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
        _load_strict(trunk, resolved.location, "torchvision AlexNet")
        for slice_module in (model.net.slice1, model.net.slice2, model.net.slice3, model.net.slice4, model.net.slice5):
            for index, layer in slice_module.named_children():
                layer.load_state_dict(trunk.features[int(index)].state_dict())
    model.eval()
    lin_file = lin_path or str(Path(lpips.__file__).parent / "weights" / "v0.1" / "alex.pth")
    info = weights_info(resolved, random_weights, hash_files) | {
        "implementation": "lpips.LPIPS(net='alex', version='0.1'), trunk from torchvision AlexNet file",
        "linear_heads": lin_file,
        "input_range": "[-1, 1] (2x - 1 of [0, 1])",
    }
    return Backbone("lpips", LpipsFeatures(model), None, info=info), model


def fidelity_inception(state: dict[str, torch.Tensor] | None) -> nn.Module:
    """torch-fidelity's ``FeatureExtractorInceptionV3`` (``inception-v3-compat``, feature ``2048``) holding ``state``.

    torch-fidelity reads the file it is given with a full pickle load, and downloads its weights when given none.
    It is given an in-memory copy of ``state`` instead, a state dict already read with ``weights_only=True``, so
    nothing untrusted is unpickled and nothing is downloaded. ``state=None`` keeps the random initialisation.

    Raises
    ------
    RuntimeError
        ``state`` does not fit the network (missing, unexpected or misshapen keys).
    """
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    class _RandomInit(FeatureExtractorInceptionV3):
        def load_state_dict(self, state_dict, strict=True, assign=False):
            return None  # keep the random initialisation

    buffer = io.BytesIO()
    torch.save(state or {}, buffer)
    buffer.seek(0)
    network = FeatureExtractorInceptionV3 if state is not None else _RandomInit
    return network("inception-v3-compat", ["2048"], feature_extractor_weights_path=buffer)


class FidInception(nn.Module):
    """The FID feature network as ``{"fid": (B, 2048)}`` pool3 features of uint8 ``(B, 3, H, W)`` images.

    ``net`` is torch-fidelity's TF-ported Inception-v3 (:func:`fidelity_inception`), which resizes to 299×299
    internally with its TF1-compatible bilinear interpolation and returns a tuple of the requested features.
    """

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x):
        return {"fid": self.net(x)[0]}


def build_fid_inception(
    resolved: ResolvedWeights | None, random_weights: bool = False, hash_files: bool = True
) -> Backbone:
    """The FID feature extractor (2048-d pool3, uint8 input at stored size)."""
    state = None if random_weights else load_state_dict_file(resolved.location, "the FID Inception weights")
    try:
        module = FidInception(fidelity_inception(state))
    except RuntimeError as error:
        raise TtdnetError(
            f"{resolved.location} does not hold the FID Inception weights: {' '.join(str(error).split())[:300]}"
        ) from error
    info = weights_info(resolved, random_weights, hash_files) | {
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
