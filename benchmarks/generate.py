"""Generation throughput of ``ttdnet generate``: images per second, batched against one image per call.

A bridge with random weights (a fresh ``tiny`` InceptSAD conditioner) is saved as a shipped Stage B folder
beside a random-weight base, and the real command (``ttdnet.stages.generation.generate``) renders the same
images at ``--batch_size 1`` and at each larger batch size, in this one process, one after the other; the
time covers the batch loop only (model loading excluded). With ``--full_size`` (GPU) the base is SDXL base
1.0's UNet and VAE architecture with random weights.

Examples (time each alone, with nothing else on the machine)::

    python benchmarks/generate.py                                   # CPU, tiny base, batch 1 and 8
    python benchmarks/generate.py --device cuda --full_size --resolution 512 --batch_sizes 1 4
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path


SDXL_VAE_CONFIG = {
    "act_fn": "silu",
    "block_out_channels": [128, 256, 512, 512],
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "in_channels": 3,
    "latent_channels": 4,
    "layers_per_block": 2,
    "norm_num_groups": 32,
    "out_channels": 3,
    "sample_size": 1024,
    "scaling_factor": 0.13025,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
}
"""SDXL base 1.0's VAE architecture (``vae/config.json``)."""


def write_bridge(root: Path, full_size: bool, resolution: int) -> Path:
    """A random-weight base and a random bridge saved the way ``train-bridge`` ships one; returns ``model/``."""
    import torch
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, UNet2DConditionModel

    from ttdnet.models import EEGConditioner, InceptSADEncoder, conditioning_dims, encoder_preset
    from ttdnet.models.tiny_sdxl import SDXL_SCHEDULER_CONFIG, build_tiny_sdxl, save_sdxl_folder

    if full_size:
        sys.path.insert(0, str(Path(__file__).parent))
        from stage_b import SDXL_BASE_UNET_CONFIG

        torch.manual_seed(0)
        components = {"unet": UNet2DConditionModel(**SDXL_BASE_UNET_CONFIG), "vae": AutoencoderKL(**SDXL_VAE_CONFIG),
                      "scheduler": EulerDiscreteScheduler(**SDXL_SCHEDULER_CONFIG)}  # fmt: skip
        preset = "things17"
    else:
        components, preset = build_tiny_sdxl("tiny"), "tiny"
    base = save_sdxl_folder(root / "base", **components)
    encoder = InceptSADEncoder(**encoder_preset(preset))
    cross, pooled = conditioning_dims(components["unet"].config)
    tiny = {"n_queries": 4, "resampler_dim": 32, "resampler_depth": 1, "resampler_heads": 2}
    sizes = {"n_queries": 16, "resampler_dim": 768} if full_size else tiny
    model = root / "bridge" / "model"
    EEGConditioner("inceptsad", dict(encoder.config), cross, pooled, **sizes).save_pretrained(model / "conditioner")
    signal = encoder.signal
    record = {"base_model": str(base), "vae": None, "revision": None, "variant": None, "unet_training": "frozen",
              "resolution": resolution, "prediction_type": "epsilon",
              "eeg": {"ch_names": list(signal.ch_names), "sfreq": signal.sfreq, "n_times": signal.n_times,
                      "tmin": -0.2}}  # fmt: skip
    (model / "bridge.json").write_text(json.dumps(record))
    return model


def write_eeg(root: Path, model: Path, n_trials: int) -> Path:
    """Random EEG trials in the conditioner's channels and window, as an array with its sidecar."""
    import numpy as np

    record = json.loads((model / "bridge.json").read_text())["eeg"]
    data = np.random.default_rng(0).standard_normal((n_trials, len(record["ch_names"]), record["n_times"]))
    np.save(root / "eeg.npy", data.astype(np.float32))
    (root / "eeg.json").write_text(json.dumps({"ch_names": record["ch_names"], "sfreq": record["sfreq"],
                                               "tmin": record["tmin"]}))  # fmt: skip
    return root / "eeg.npy"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--full_size", action="store_true", help="SDXL base architecture (random weights; GPU)")
    parser.add_argument("--resolution", type=int, default=64, help="image size (64 for the tiny base)")
    parser.add_argument("--batch_sizes", type=int, nargs="+", default=[1, 8], help="the first is the baseline")
    parser.add_argument("--images", type=int, default=16, help="images per measurement")
    parser.add_argument("--steps", type=int, default=10, help="denoising steps")
    args = parser.parse_args(argv)

    from ttdnet.cli import available_commands, build_parser
    from ttdnet.stages.generation import generate

    rows = []
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        model = write_bridge(root, args.full_size, args.resolution)
        eeg = write_eeg(root, model, args.images)
        parser_ = build_parser(available_commands()["generate"])
        for batch_size in args.batch_sizes:
            flags = ["--bridge", str(model), "--eeg", str(eeg), "--output_dir", str(root / f"out-{batch_size}"),
                     "--batch_size", str(batch_size), "--num_inference_steps", str(args.steps), "--device",
                     args.device, "--grid_trials", "0"]  # fmt: skip
            config, _ = parser_.parse_config(flags)
            started = time.perf_counter()
            summary = generate(config)
            rows.append({"batch_size": batch_size, **summary, "wall_s": round(time.perf_counter() - started, 2)})
            print(json.dumps(rows[-1]), flush=True)
    base = rows[0]["images_per_second"]
    print(f"\n| base | image | steps | batch | device | dtype | images/s | vs batch {rows[0]['batch_size']} |")
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {'SDXL (random)' if args.full_size else 'tiny'} | {args.resolution}² | {args.steps} | "
              f"{row['batch_size']} | {row['device']} | {row['dtype']} | {row['images_per_second']} | "
              f"{row['images_per_second'] / base:.2f}x |")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
