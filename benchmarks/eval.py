"""Time `ttdnet evaluate` per metric at several test-set sizes, beside an earlier version of the code, in one run.

The backbones are the real architectures (AlexNet, Inception-v3, EfficientNet-B1, ResNet-50, LPIPS AlexNet, FID
Inception; CLIP ViT-L/14 and the ViT-H/14 classifier on request) with random weights: the cost is the same as
with the released weights, the values are meaningless. Images are smooth random 500×500 JPEGs (ground truth)
and noisy PNGs (reconstructions).

The earlier version is the ``eval/`` folder of a git revision (``--previous``, default the commit before the
batched SSIM), extracted into a temporary package and imported beside the current one, so both are timed by
the same process on the same files. Its N² pair-wise SSIM costs about 50 ms a pair on 2 CPU cores (about
35 minutes at N = 200), so the runs that include ``ssim_rgb`` are timed with the previous code only up to
``--previous_ssim_max_pairs`` trials; every other metric is timed with both at every N.

Examples
--------
The per-metric table at N = 50 and 200, and the weight-free + CNN suite in one run::

    python benchmarks/eval.py

Only some metrics, on a GPU::

    python benchmarks/eval.py --metrics ssim_rgb lpips_alex --device cuda

Results are printed as a Markdown table and written as JSON to ``--output``.
"""

import argparse
import importlib
import json
import os
import platform
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image


REPO = Path(__file__).resolve().parent.parent
DEFAULT_PREVIOUS = "18f5a4d"  # the last commit before the batched SSIM kernel and the N x M FID
WEIGHT_FREE_AND_CNN = [
    "pixcorr", "ssim", "alexnet2", "alexnet5", "inception", "effnet_b", "swav",
    "mse", "pcc", "ssim_rgb", "lpips_alex", "fid", "kid",
]  # fmt: skip
"""Every metric but those of CLIP ViT-L/14 (clip, nway_clip) and the ViT-H/14 classifier (nway_cls)."""


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


def import_previous(revision: str, into: Path):
    """The ``eval`` package of ``revision``, imported as its own package (it imports itself relatively only)."""
    name = f"ttdnet_eval_{revision}"
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", "--format=tar", revision, "eval"], check=True, capture_output=True
    ).stdout
    with tarfile.open(fileobj=__import__("io").BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    (into / "eval").rename(into / name)
    sys.path.insert(0, str(into))
    return importlib.import_module(name)


def timed_run(package, gt_dir: Path, rec_dir: Path, out_dir: Path, metrics: list[str], args) -> dict:
    """Build the backbones ``metrics`` need (random weights), then time one ``evaluate`` call."""
    api = importlib.import_module(f"{package}.api")
    command = importlib.import_module(f"{package}.command")
    catalogue = importlib.import_module(f"{package}.metrics")
    config = command.EvaluateConfig(
        ground_truth=str(gt_dir), reconstructions=str(rec_dir), output_dir=str(out_dir), metrics=metrics,
        batch_size=args.batch_size, eval_size=args.eval_size, device=args.device, progress=False,
        download_weights=False,
    )  # fmt: skip
    torch.manual_seed(0)  # the same random weights for both versions, so their scores can be compared
    start = time.perf_counter()
    backbones = api.load_backbones(config, api.needed_backbones(catalogue.select_groups(metrics)), random_weights=True)
    built = time.perf_counter()
    api.evaluate(config, backbones=backbones, log=lambda message: None)
    if args.device.startswith("cuda"):
        torch.cuda.synchronize()
    done = time.perf_counter()
    return {"build_s": round(built - start, 2), "evaluate_s": round(done - built, 2)}


def ssim_against_skimage(gt_dir: Path, rec_dir: Path, eval_size: int, n_images: int = 3) -> dict[str, float]:
    """Largest |difference| from scikit-image of the pair-wise RGB SSIM, both kernel paths, on a sample of pairs.

    The first ``n_images`` reconstructions and ground truths, resized as ``evaluate`` resizes them
    (``eval_size``, bilinear, antialias), every pair of the sample.
    """
    from skimage.metrics import structural_similarity

    from ttdnet.eval import pixels
    from ttdnet.eval.images import ResizeSpec, to_float

    resize = ResizeSpec(eval_size, "bilinear", antialias=True)

    def load(folder: Path) -> torch.Tensor:
        files = sorted(folder.iterdir())[:n_images]
        return resize(to_float([np.asarray(Image.open(path).convert("RGB")) for path in files]))

    gt, rec = load(gt_dir), load(rec_dir)
    reference = torch.tensor([
        [structural_similarity(
            r.permute(1, 2, 0).double().numpy(), g.permute(1, 2, 0).double().numpy(), channel_axis=-1, data_range=1.0
        ) for g in gt]
        for r in rec
    ], dtype=torch.float64)  # fmt: skip
    return {
        f"{path}_max_abs_diff": float(
            (pixels.ssim_matrix(rec, gt, pixels.SSIM_DEFAULT, compiled=compiled).double() - reference).abs().max()
        )
        for path, compiled in (("uncompiled", False), ("compiled", True))
    }


def largest_difference(now_dir: Path, previous_dir: Path) -> float | None:
    """Largest |difference| between the per-trial scores two ``evaluate`` runs wrote (keys both have)."""

    def scores(folder: Path) -> dict:
        return json.loads((folder / "metrics.json").read_text())["per_trial"]["scores"]

    now, previous = scores(now_dir), scores(previous_dir)
    gaps = [
        abs(a - b)
        for key in now.keys() & previous.keys()
        for a, b in zip(now[key], previous[key], strict=True)
        if a is not None and b is not None
    ]
    return max(gaps) if gaps else None


def cell(result: dict | None) -> str:
    return "–" if result is None else f"{result['evaluate_s']:.1f}"


def markdown_table(rows: list[dict], sizes: list[int]) -> str:
    header = ["metric"] + [f"N={n} {version}" for n in sizes for version in ("previous", "now")]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [row["metrics"]] + [
            cell(row["runs"].get(f"{version}@{n}")) for n in sizes for version in ("previous", "now")
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--n_pairs", type=int, nargs="+", default=[50, 200], help="test-set sizes (trials)")
    parser.add_argument("--metrics", nargs="+", default=WEIGHT_FREE_AND_CNN, help="metric groups, one run each")
    parser.add_argument("--no_suite", action="store_true", help="skip the run of all --metrics together")
    parser.add_argument("--previous", default=DEFAULT_PREVIOUS, help="git revision to time beside ('' for none)")
    parser.add_argument(
        "--previous_ssim_max_pairs", type=int, default=50,
        help="largest N at which the previous code runs the tasks that include ssim_rgb",
    )  # fmt: skip
    parser.add_argument("--size", type=int, default=500, help="side of the synthetic images")
    parser.add_argument("--samples", type=int, default=1, help="reconstructions per trial")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="evaluate's --device")
    parser.add_argument("--batch_size", type=int, default=16, help="evaluate's --batch_size")
    parser.add_argument("--eval_size", type=int, default=512, help="evaluate's --eval_size")
    parser.add_argument("--output", default="outputs/bench-eval.json", help="JSON file of the timings and checks")
    args = parser.parse_args(argv)

    tasks = [[metric] for metric in args.metrics] + ([] if args.no_suite else [list(args.metrics)])
    rows = [{"metrics": " ".join(metrics) if len(metrics) == 1 else "all of the above, one run", "runs": {}}
            for metrics in tasks]  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        versions = {"now": "ttdnet.eval"}  # "now" first: each "previous" run is compared with it
        checks = {}
        if args.previous:
            versions["previous"] = import_previous(args.previous, tmp / "previous").__name__
        for n in args.n_pairs:
            gt_dir, rec_dir = make_images(tmp / f"n{n}", n, args.size, args.samples)
            for task, (row, metrics) in enumerate(zip(rows, tasks, strict=True)):
                for version, package in versions.items():
                    if version == "previous" and "ssim_rgb" in metrics and n > args.previous_ssim_max_pairs:
                        continue
                    out_dir = tmp / f"out-{version}-{n}-{task}"
                    result = timed_run(package, gt_dir, rec_dir, out_dir, metrics, args)
                    if version == "previous":
                        now_dir = tmp / f"out-now-{n}-{task}"
                        result["max_abs_diff_from_now"] = largest_difference(now_dir, out_dir)
                    row["runs"][f"{version}@{n}"] = result
                    gap = result.get("max_abs_diff_from_now")
                    print(f"N={n:4d} {version:8s} {row['metrics']:30s} evaluate {result['evaluate_s']:8.1f} s "
                          f"(backbones built in {result['build_s']:.1f} s)"
                          + ("" if gap is None else f", per-trial scores differ from now by <= {gap:.1e}"),
                          flush=True)  # fmt: skip
            if "ssim_rgb" in args.metrics:
                check = checks[f"ssim_rgb_vs_skimage@{n}"] = ssim_against_skimage(gt_dir, rec_dir, args.eval_size)
                print(f"N={n:4d} pair-wise SSIM against scikit-image on 3 x 3 pairs: {check}")
    table = markdown_table(rows, args.n_pairs)
    print("\nSeconds per `evaluate` call (backbone building excluded):\n")
    print(table)
    report = {
        "n_pairs": args.n_pairs,
        "previous": args.previous,
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
        "rows": rows,
        "checks": checks,
        "table": table,
    }
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
