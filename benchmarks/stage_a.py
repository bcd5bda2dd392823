"""Stage A training throughput and peak memory for the InceptSAD presets.

Each preset runs in a fresh subprocess (so peak memory is its own): build the encoder and the masked
pretraining wrapper, run ``--warmup`` then ``--steps`` AdamW steps on random input of the preset's shape
(data loading excluded), and report samples per second and peak memory (process peak RSS on CPU;
``torch.cuda.max_memory_allocated`` on GPU).

Usage::

    python benchmarks/stage_a.py                              # CPU, presets things17 and things63, batch 256
    python benchmarks/stage_a.py --device cuda --mixed_precision bf16
"""

import argparse
import json
import resource
import subprocess
import sys
import time


def measure(preset: str, batch_size: int, steps: int, warmup: int, device: str, mixed_precision: str) -> dict:
    import torch

    from ttdnet.models import InceptSADEncoder, MaskedTemporalPretraining, encoder_preset

    torch.manual_seed(0)
    model = MaskedTemporalPretraining(InceptSADEncoder(**encoder_preset(preset))).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    signal = model.encoder.signal
    x = torch.randn(batch_size, signal.n_chans, signal.n_times, device=device)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(mixed_precision)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()

    def step():
        with torch.autocast(device_type=device, dtype=dtype, enabled=dtype is not None):
            loss = model(x).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(warmup):
        step()
    if device == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(steps):
        step()
    if device == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    result = {
        "preset": preset,
        "input": f"{signal.n_chans}x{signal.n_times} @ {signal.sfreq:g} Hz",
        "parameters_millions": round(sum(p.numel() for p in model.parameters()) / 1e6, 2),
        "batch_size": batch_size,
        "device": device if device == "cpu" else torch.cuda.get_device_name(),
        "mixed_precision": mixed_precision,
        "torch_threads": torch.get_num_threads(),
        "seconds_per_step": round(seconds / steps, 4),
        "samples_per_second": round(batch_size * steps / seconds, 1),
    }
    if device == "cuda":
        result["peak_gpu_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 3)
    result["peak_process_rss_gib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 3)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=["things17", "things63"])
    parser.add_argument("--batch_size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--mixed_precision", choices=["no", "bf16", "fp16"], default="no")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: measure one preset in this process
    args = parser.parse_args()
    if args.one:
        print(
            json.dumps(measure(args.one, args.batch_size, args.steps, args.warmup, args.device, args.mixed_precision))
        )
        return
    rows = []
    for preset in args.presets:
        command = [
            sys.executable,
            __file__,
            "--one",
            preset,
            "--batch_size",
            str(args.batch_size),
            "--steps",
            str(args.steps),
        ]
        command += ["--warmup", str(args.warmup), "--device", args.device, "--mixed_precision", args.mixed_precision]
        output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
        rows.append(json.loads(output.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]))
    memory = "peak_gpu_memory_gib" if args.device == "cuda" else "peak_process_rss_gib"
    print(f"\n| preset | input | params (M) | batch | device | samples/s | s/step | {memory} |")
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['preset']} | {row['input']} | {row['parameters_millions']} | {row['batch_size']} | "
            f"{row['device']} "
            f"({row['mixed_precision']}, {row['torch_threads']} threads) | {row['samples_per_second']} | "
            f"{row['seconds_per_step']} | {row[memory]} |"
        )


if __name__ == "__main__":
    main()
