"""Time `ttdnet evaluate` on synthetic ground-truth/reconstruction pairs with full-size backbones.

The backbones are the real architectures (AlexNet, Inception-v3, EfficientNet-B1, ResNet-50, CLIP ViT-L/14,
ViT-H/14 at 518 px, LPIPS AlexNet, FID Inception) with random weights: the cost is the same as with the
released weights, the values are meaningless. Images are smooth random 500×500 JPEGs (ground truth) and
PNGs (reconstructions).

Examples
--------
Whole suite in one run (what a user pays)::

    python benchmarks/eval.py --n_pairs 200 --device cpu

One timing per metric group (each run alone, so shared backbones are counted in each group)::

    python benchmarks/eval.py --n_pairs 200 --per_metric --metrics pixcorr ssim alexnet2 inception

Results are printed and written as JSON to ``--output`` (default ``outputs/bench-eval.json``).
"""

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image


def make_images(root: Path, n_pairs: int, size: int, samples: int, seed: int = 0) -> tuple[Path, Path]:
    """Write ``n_pairs`` ground-truth JPEGs and ``samples`` reconstructions per trial (PNG, ``_s<k>`` names)."""
    rng = np.random.default_rng(seed)
    gt_dir, rec_dir = root / "gt", root / "rec"
    gt_dir.mkdir(parents=True)
    rec_dir.mkdir(parents=True)
    for i in range(n_pairs):
        coarse = rng.random((8, 8, 3))
        image = np.asarray(
            Image.fromarray((coarse * 255).astype(np.uint8)).resize((size, size), Image.Resampling.BICUBIC)
        )
        Image.fromarray(image).save(gt_dir / f"{i:05d}.jpg", quality=90)
        for s in range(samples):
            noise = rng.normal(0, 20, image.shape)
            rec = np.clip(image + noise, 0, 255).astype(np.uint8)
            Image.fromarray(rec).save(rec_dir / f"{i:05d}_s{s}.png")
    return gt_dir, rec_dir


def timed_run(gt_dir: Path, rec_dir: Path, out_dir: Path, metrics: list[str], args) -> dict:
    from ttdnet.eval.api import evaluate, load_backbones, needed_backbones
    from ttdnet.eval.command import EvaluateConfig
    from ttdnet.eval.metrics import select_groups

    config = EvaluateConfig(
        ground_truth=str(gt_dir),
        reconstructions=str(rec_dir),
        output_dir=str(out_dir),
        metrics=metrics,
        batch_size=args.batch_size,
        eval_size=args.eval_size,
        device=args.device,
        progress=not args.no_progress,
        download_weights=False,
    )
    start = time.perf_counter()
    names = needed_backbones(select_groups(metrics))
    backbones = load_backbones(config, names, random_weights=True)
    built = time.perf_counter()
    evaluate(config, backbones=backbones, log=lambda message: None)
    if args.device.startswith("cuda"):
        torch.cuda.synchronize()
    done = time.perf_counter()
    return {"metrics": metrics, "build_s": built - start, "evaluate_s": done - built, "total_s": done - start}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n_pairs", type=int, default=200)
    parser.add_argument("--size", type=int, default=500, help="side of the synthetic images")
    parser.add_argument("--samples", type=int, default=1, help="reconstructions per trial")
    parser.add_argument("--metrics", nargs="+", default=["all"])
    parser.add_argument("--per_metric", action="store_true", help="time each metric group in its own run")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--eval_size", type=int, default=512)
    parser.add_argument("--no_progress", action="store_true")
    parser.add_argument("--output", default="outputs/bench-eval.json")
    args = parser.parse_args(argv)

    from ttdnet.eval.metrics import select_groups

    runs = [[group] for group in select_groups(args.metrics)] if args.per_metric else [args.metrics]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        gt_dir, rec_dir = make_images(Path(tmp), args.n_pairs, args.size, args.samples)
        for metrics in runs:
            result = timed_run(gt_dir, rec_dir, Path(tmp) / "out", metrics, args)
            results.append(result)
            print(
                f"{' '.join(metrics):40s} build {result['build_s']:7.1f} s   evaluate {result['evaluate_s']:8.1f} s",
                flush=True,
            )
    report = {
        "n_pairs": args.n_pairs,
        "size": args.size,
        "samples": args.samples,
        "device": args.device,
        "device_name": torch.cuda.get_device_name(0)
        if args.device.startswith("cuda")
        else platform.processor() or platform.machine(),
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "eval_size": args.eval_size,
        "batch_size": args.batch_size,
        "torch": torch.__version__,
        "python": sys.version.split()[0],
        "runs": results,
    }
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
