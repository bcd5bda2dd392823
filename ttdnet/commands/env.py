"""``ttdnet env``: the versions and devices to paste into a bug report."""

import argparse
import dataclasses
import json
import os

from ttdnet import __version__
from ttdnet.command import Command
from ttdnet.versions import package_versions, runtime_versions


PACKAGES = (
    "torch",
    "torchvision",
    "diffusers",
    "accelerate",
    "peft",
    "transformers",
    "open_clip_torch",
    "mne",
    "numpy",
    "scipy",
    "scikit-learn",
    "lpips",
    "safetensors",
)


@dataclasses.dataclass
class EnvConfig:
    """Options of ``ttdnet env``."""

    json: bool = dataclasses.field(default=False, metadata={"help": "print one JSON object instead of a table"})


def collect_environment() -> dict[str, object]:
    """Versions of Python, ttdnet and its main dependencies, and the visible accelerators.

    Returns
    -------
    dict
        Keys ``ttdnet``, ``python``, ``platform``, ``packages`` (name to version or ``"not installed"``),
        ``cuda_available``, ``cuda_version``, ``gpus`` and ``hf_hub_offline``.
    """
    import torch

    cuda = torch.cuda.is_available()
    return {
        "ttdnet": __version__,
        **runtime_versions(),
        "packages": package_versions(PACKAGES),
        "cuda_available": cuda,
        "cuda_version": torch.version.cuda,
        "gpus": [torch.cuda.get_device_name(index) for index in range(torch.cuda.device_count())] if cuda else [],
        "hf_hub_offline": os.environ.get("HF_HUB_OFFLINE", "0"),
    }


def run(config: EnvConfig, namespace: argparse.Namespace) -> int:
    report = collect_environment()
    if config.json:
        print(json.dumps(report, indent=2))
        return 0
    rows = [("ttdnet", report["ttdnet"]), ("python", report["python"]), ("platform", report["platform"])]
    rows += list(report["packages"].items())
    rows += [
        ("CUDA available", report["cuda_available"]),
        ("CUDA (torch build)", report["cuda_version"]),
        ("GPUs", ", ".join(report["gpus"]) or "none"),
        ("HF_HUB_OFFLINE", report["hf_hub_offline"]),
    ]
    width = max(len(key) for key, _ in rows)
    print("\n".join(f"- {key.ljust(width)}  {value}" for key, value in rows))
    return 0


COMMAND = Command(
    name="env",
    summary="print versions of Python, torch, diffusers, accelerate, ... and CUDA availability (for bug reports)",
    config_class=EnvConfig,
    run=run,
)
