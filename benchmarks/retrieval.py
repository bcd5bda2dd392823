"""Retrieval quality bar on synthetic THINGS-EEG2 at full training scale, on the CPU.

Steps (each skipped when its output already exists):

1. ``ttdnet simulate`` a full-scale dataset: 1654 × 10 training images (4 repetitions), 200 test images
   (80 repetitions), default SNR 0.3, ``--n_subjects`` subjects;
2. ``ttdnet features`` for the chosen backbone (default ``pixels``: weight-free RGB thumbnails, **not** a
   pretrained vision model);
3. ``ttdnet train-retrieval`` with ``configs/retrieval.yaml`` (the default configuration) and the intra
   protocol, then prints per-subject 200-way top-1/top-5, the protocol and the training time.

Example (writes about 1.2 GB per subject; delete ``--work_dir`` afterwards)::

    python benchmarks/retrieval.py --work_dir /tmp/ttdnet-retrieval-bench --n_subjects 2

Extra ``train-retrieval`` flags can follow ``--``, e.g. ``-- --num_train_epochs 50``.
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path


REPO = Path(__file__).resolve().parents[1]
TTDNET = [sys.executable, "-m", "ttdnet"]


def step(command: list[str], what: str) -> float:
    print(f"\n$ {' '.join(command)}", flush=True)
    started = time.perf_counter()
    subprocess.run(command, check=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    seconds = time.perf_counter() - started
    print(f"{what}: {seconds:.1f} s", flush=True)
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work_dir", default="/tmp/ttdnet-retrieval-bench", help="data, features and runs go here")
    parser.add_argument("--n_subjects", type=int, default=2)
    parser.add_argument("--snr", type=float, default=0.3, help="simulation SNR (0.3 is the simulator default)")
    parser.add_argument("--backbone", default="pixels", help="ttdnet features --backbone")
    parser.add_argument("--features_args", default="", help="extra `ttdnet features` flags, one string")
    parser.add_argument("--run_name", default=None, help="run folder name (default: the backbone)")
    args, extra = parser.parse_known_args(argv)
    extra = [item for item in extra if item != "--"]
    work = Path(args.work_dir)
    data = work / f"synthetic-full-{args.n_subjects}sub-snr{args.snr}"
    timings = {}
    if not (data / "simulation.json").is_file():
        timings["simulate_s"] = step(
            [*TTDNET, "simulate", "--output_dir", str(data), "--n_subjects", str(args.n_subjects),
             "--n_train_concepts", "1654", "--n_test_images", "200", "--snr", str(args.snr)],
            "simulate",
        )  # fmt: skip
    feature_dir = work / "features"
    timings["features_s"] = step(
        [*TTDNET, "features", "--image_dir", str(data), "--backbone", args.backbone, "--output_dir", str(feature_dir),
         *args.features_args.split()],
        "features",
    )  # fmt: skip
    feature_file = sorted(feature_dir.glob("*.safetensors"), key=lambda p: p.stat().st_mtime)[-1]
    run_dir = work / "runs" / (args.run_name or feature_file.stem)
    timings["train_and_test_s"] = step(
        [*TTDNET, "train-retrieval", "--config", str(REPO / "configs" / "retrieval.yaml"), "--dataset_root", str(data),
         "--features", str(feature_file), "--output_dir", str(run_dir), "--cache_dir", str(work / "cache"),
         "--report_to", "none", *extra],
        "train-retrieval",
    )  # fmt: skip
    results = json.loads((run_dir / "results.json").read_text())
    print("\nProtocol:")
    for key, value in results["protocol"].items():
        print(f"  {key}: {value}")
    print("\nsubject  selected_epoch  top1 %  top5 %  (chance 0.5 / 2.5)  train s")
    for fold in results["subjects"]:
        print(
            f"{fold['subject']:>7}  {fold['selection']['epoch']:>14}  {100 * fold['test']['top1']:6.1f}  "
            f"{100 * fold['test']['top5']:6.1f}  {'':>19}  {fold['train_seconds']:7.1f}"
        )
    summary = results["summary"]
    print(
        f"{'mean':>7}  {'':>14}  {100 * summary['top1']['mean']:6.1f}  {100 * summary['top5']['mean']:6.1f}"
        f"   (sd {100 * summary['top1']['sd']:.1f} / {100 * summary['top5']['sd']:.1f})"
    )
    print(f"\ntimings: {json.dumps(timings)}; CPU threads: {os.cpu_count()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
