"""Where the metric networks' weights come from: the file catalogue, local lookup, download, one missing-files error.

Weight files are located before anything is loaded (:func:`resolve_weights`): an explicit path, then
``weights_dir/<file>``, then torch's hub cache (``$TORCH_HOME/hub/checkpoints``, where torchvision keeps
its downloads), then a download when allowed. Everything that is still missing is reported in **one**
:class:`MissingWeightsError` that lists each file, its URL and where to put it. :func:`weights_info` is the
record of what was loaded (id, file, SHA-256) that each backbone carries into ``metrics.json``.
"""

import dataclasses
import os
from pathlib import Path

import torch

from ttdnet.errors import TtdnetError
from ttdnet.hashing import sha256_file


CLASSIFIER_WEIGHTS_ID = "ViT_H_14_Weights.IMAGENET1K_SWAG_E2E_V1"
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


def weight_files(classifier_weights_id: str = CLASSIFIER_WEIGHTS_ID) -> dict[str, WeightFile]:
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


def offline_mode(allow_download: bool) -> bool:
    """True when downloads are off: ``allow_download`` is False or ``HF_HUB_OFFLINE``/``TTDNET_OFFLINE`` is on."""
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
        return f"clip: --clip_model {clip_model} does not exist (a ViT-L-14.pt file or a Hugging Face model folder)."
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
        f"clip ({clip_model}; metrics clip, nway_clip): either "
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
    classifier_weights_id: str = CLASSIFIER_WEIGHTS_ID,
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
    offline = offline_mode(allow_download)
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
                    f"{name}: --{spec.option} {explicit} does not exist (expected {spec.file_name} from {spec.url})."
                )
            continue
        candidates = ([weights_dir / spec.file_name] if weights_dir else []) + [_hub_checkpoints() / spec.file_name]
        found_path = next((path for path in candidates if path.is_file()), None)
        if found_path is None and not offline:
            found_path = _download(spec)
        if found_path is None:
            where = weights_dir / spec.file_name if weights_dir else f"<weights_dir>/{spec.file_name}"
            missing.append(
                f"{name} ({spec.weights_id}; metrics {spec.metrics}): {spec.url} -> {where} "
                f"(or {_hub_checkpoints() / spec.file_name}, or pass --{spec.option} FILE)."
            )
        else:
            resolved[name] = ResolvedWeights(name, "file", str(found_path), spec.weights_id)
    if missing:
        reason = "downloads are off (HF_HUB_OFFLINE=1 or --no_download_weights)" if offline else "downloads failed"
        raise MissingWeightsError(
            f"{len(missing)} weight file(s) needed by the selected metrics are missing and {reason}. "
            "Fetch each and put it where shown (then re-run), or drop the metrics with --metrics: "
            + " ".join(f"({number}) {item}" for number, item in enumerate(missing, start=1))
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


def weights_info(resolved: ResolvedWeights | None, random_weights: bool, hash_files: bool) -> dict:
    """What a backbone was loaded from: weights id, source kind, file and its SHA-256 (None when not hashed).

    Random weights (benchmarks and tests) are recorded as such, with no id, file or hash.
    """
    if random_weights or resolved is None:
        return {"weights": "random (benchmark/test)", "weights_id": None, "file": None, "sha256": None}
    info = {"weights_id": resolved.weights_id, "source": resolved.kind, "file": resolved.location}
    info["sha256"] = sha256_file(resolved.location) if hash_files and Path(resolved.location).is_file() else None
    return info
