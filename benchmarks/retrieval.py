"""Retrieval benchmark with a known ceiling, on the CPU: ceiling, linear baselines and every registry encoder.

Steps (the dataset is reused when it exists with the same options):

1. ``ttdnet simulate-ceiling``: a linear-Gaussian THINGS-EEG2-shaped dataset at full scale (1654 × 10
   training images, 4 repetitions; 200 test images, 80 repetitions), ``--n_subjects`` subjects, its image
   features and the Bayes-optimal 200-way top-1/top-5 (the **ceiling**);
2. the ridge (EEG → features, cosine) and Gaussian-encoding (features → EEG, Mahalanobis) baselines of
   :mod:`ttdnet.stages.retrieval_baselines`, hyper-parameters chosen on held-out training concepts, and a
   **reference** row: the same Gaussian-encoding fit given the true latents (``latents.npz``) instead of the
   features. No method sees the latents; the row measures what estimating the EEG side from these training
   trials alone costs, so the gap between it and the ceiling is out of reach of any model;
3. ``ttdnet train-retrieval --config configs/retrieval.yaml`` for each encoder (intra protocol), with any
   extra flags given after ``--``;
4. one table, per subject: ceiling, baselines and encoders as top-1/top-5 and as a fraction of the ceiling
   on the same test files, with the seconds each took (run it alone on the machine: timings of a shared CPU
   mean nothing). It is also written to ``work_dir/table.md`` and ``table.json``.

Example (about 1.1 GB per subject; delete ``--work_dir`` afterwards)::

    python benchmarks/retrieval.py --work_dir /tmp/ttdnet-ceiling --encoders eegproject nice
    python benchmarks/retrieval.py --encoders eegproject -- --num_train_epochs 20
"""

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


REPO = Path(__file__).resolve().parents[1]
TTDNET = [sys.executable, "-m", "ttdnet"]


def step(command: list[str], what: str, log: Path) -> float:
    """Run ``command`` with its output in ``log``; return the wall-clock seconds."""
    print(f"$ {' '.join(command)}  > {log}", flush=True)
    started = time.perf_counter()
    with log.open("w") as handle:
        result = subprocess.run(
            command, stdout=handle, stderr=subprocess.STDOUT, env={**os.environ, "HF_HUB_OFFLINE": "1"}
        )
    if result.returncode:
        raise SystemExit(f"{what} failed (exit {result.returncode}); see {log}")
    seconds = time.perf_counter() - started
    print(f"{what}: {seconds:.0f} s", flush=True)
    return seconds


def dataset(work: Path, n_subjects: int, knobs: list[str]) -> tuple[Path, dict, float]:
    data = work / "data"
    wanted = [*TTDNET, "simulate-ceiling", "--output_dir", str(data), "--n_subjects", str(n_subjects), *knobs]
    stamp = work / "data-command.json"
    seconds = 0.0
    if not (data / "ceiling.json").is_file() or not stamp.is_file() or json.loads(stamp.read_text()) != wanted[2:]:
        seconds = step([*wanted, "--overwrite"], "simulate-ceiling", work / "simulate.log")
        stamp.write_text(json.dumps(wanted[2:]))
    return data, json.loads((data / "ceiling.json").read_text()), seconds


def baselines(data: Path, subject: str, cache: Path) -> list[dict]:
    from ttdnet.stages.retrieval_baselines import encoding_baseline, protocol_arrays, ridge_baseline
    from ttdnet.stages.simulate_ceiling import FEATURE_FILE

    started = time.perf_counter()
    arrays = protocol_arrays(data, data / FEATURE_FILE, subject, cache_dir=cache)
    load_seconds = time.perf_counter() - started
    truth = np.load(data / "latents.npz")
    given_latents = dataclasses.replace(
        arrays, train_features=truth["training_latents"], test_features=truth["test_latents"]
    )
    fits = (
        ("baseline: ridge", ridge_baseline, arrays),
        ("baseline: gaussian-encoding", encoding_baseline, arrays),
        ("reference: gaussian-encoding given the true latents", encoding_baseline, given_latents),
    )
    rows = []
    for label, fit, inputs in fits:
        result = fit(inputs)
        rows.append(
            {"method": label, "top1": result.test["top1"], "top5": result.test["top5"],
             "seconds": result.seconds + load_seconds, "selected": result.selected}
        )  # fmt: skip
        print(f"{subject} {label}: {result.test} selected {result.selected} ({result.seconds:.0f} s)", flush=True)
    return rows


def encoder_rows(data: Path, work: Path, encoder: str, extra: list[str]) -> list[dict]:
    from ttdnet.stages.simulate_ceiling import FEATURE_FILE

    run_dir = work / "runs" / encoder
    command = [
        *TTDNET, "train-retrieval", "--config", str(REPO / "configs" / "retrieval.yaml"), "--dataset_root", str(data),
        "--features", str(data / FEATURE_FILE), "--encoder", encoder, "--output_dir", str(run_dir),
        "--eeg_cache_dir", str(work / "cache"), "--report_to", "none", "--overwrite", *extra,
    ]  # fmt: skip
    seconds = step(command, f"train-retrieval {encoder}", work / f"train-{encoder}.log")
    results = json.loads((run_dir / "results.json").read_text())
    return [
        {"method": f"{encoder} (default config{', ' + ' '.join(extra) if extra else ''})", "subject": fold["subject"],
         "top1": fold["test"]["top1"], "top5": fold["test"]["top5"], "seconds": seconds,
         "selected": {"epoch": fold["selection"]["epoch"]}}
        for fold in results["subjects"]
    ]  # fmt: skip


def table(rows: list[dict], ceiling: dict) -> str:
    lines = [
        "| subject | method | top-1 % | top-5 % | top-1 / ceiling | top-5 / ceiling | seconds |",
        "|---|---|---|---|---|---|---|",
    ]
    for subject, values in ceiling["subjects"].items():
        here, expected = values["on_these_files"], values["expected"]
        lines.append(
            f"| {subject} | **ceiling** (Bayes-optimal, these test files) | {100 * here['top1']:.1f} | "
            f"{100 * here['top5']:.1f} | 1 | 1 | |"
        )
        lines.append(
            f"| {subject} | ceiling, expected over fresh test sets | {100 * expected['top1']['mean']:.1f} ± "
            f"{100 * expected['top1']['ci95_half_width']:.1f} | {100 * expected['top5']['mean']:.1f} ± "
            f"{100 * expected['top5']['ci95_half_width']:.1f} | | | |"
        )
        for row in (r for r in rows if r["subject"] == subject):
            lines.append(
                f"| {subject} | {row['method']} | {100 * row['top1']:.1f} | {100 * row['top5']:.1f} | "
                f"{row['top1'] / here['top1']:.2f} | {row['top5'] / here['top5']:.2f} | {row['seconds']:.0f} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from ttdnet.models.registry import encoder_names

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work_dir", default="/tmp/ttdnet-ceiling", help="data, caches, runs and the table go here")
    parser.add_argument("--n_subjects", type=int, default=1, help="subjects simulated and evaluated (default 1)")
    parser.add_argument(
        "--encoders",
        nargs="*",
        default=encoder_names(),
        help=f"registry encoders to train; none after the flag trains none (default all: {encoder_names()})",
    )
    parser.add_argument(
        "--no_baselines",
        action="store_true",
        help="skip the ridge and Gaussian-encoding baselines and the true-latent reference",
    )
    parser.add_argument(
        "--simulate_args", default="", help="extra `ttdnet simulate-ceiling` flags (difficulty knobs), one string"
    )
    args, extra = parser.parse_known_args(argv)
    extra = [item for item in extra if item != "--"]
    work = Path(args.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    data, ceiling, simulate_seconds = dataset(work, args.n_subjects, args.simulate_args.split())
    rows = []
    if not args.no_baselines:
        for subject in ceiling["subjects"]:
            rows += [{**row, "subject": subject} for row in baselines(data, subject, work / "cache")]
    for encoder in args.encoders:
        rows += encoder_rows(data, work, encoder, extra)
    text = table(rows, ceiling)
    protocol = (
        "Protocol: linear-Gaussian synthetic THINGS-EEG2 (`ttdnet simulate-ceiling`, seed 0; knobs in "
        f"{data / 'ceiling.json'}), 17 channels, 100 Hz, -0.2...0.79 s, intra-subject, training on the mean of 4 "
        "repetitions, test queries the mean of 80 (avg_input), gallery the 200 test images, features all layers "
        "of the model's feature file; selection on 10% held-out training concepts (galleries of one image per "
        "concept, mean top-1); the test split read once. Seconds are wall-clock per method on "
        f"{os.cpu_count()} CPU threads (simulation {simulate_seconds:.0f} s when it ran)."
    )
    print("\n" + protocol + "\n\n" + text)
    (work / "table.md").write_text(protocol + "\n\n" + text + "\n")
    (work / "table.json").write_text(
        json.dumps({"protocol": protocol, "ceiling": ceiling["subjects"], "rows": rows}, indent=2)
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
