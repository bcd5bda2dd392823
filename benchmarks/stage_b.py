"""Stage B training-step time and peak memory: the tiny preset, and full-size SDXL built from its public config.

Each configuration runs in a fresh subprocess (so its peak memory is its own): the EEG conditioner (InceptSAD
``things17`` + Perceiver resampler) and the UNet are built and set up with the code ``ttdnet train-bridge``
uses (``configure_training``: LoRA via ``unet.add_adapter``, frozen base in the mixed-precision dtype, trained
parameters in fp32), prepared by ``accelerate``, and trained on random latents for ``--steps`` AdamW steps
after ``--warmup`` steps. Data loading and the VAE (latents are cached in training) are excluded.

The full-size UNet is SDXL base 1.0's architecture (``unet/config.json`` of
``stabilityai/stable-diffusion-xl-base-1.0``, written out below) with random weights: no download. It is built
directly in the weight dtype.

Examples (time each alone, with nothing else on the machine)::

    python benchmarks/stage_b.py                                   # CPU, tiny preset, batch 1 and 8
    python benchmarks/stage_b.py --full_size --resolutions 512 1024   # + full SDXL on the CPU (about 10+ GB)
    python benchmarks/stage_b.py --device cuda --full_size --batch_sizes 1 4 --mixed_precision bf16
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time
import types


SDXL_BASE_UNET_CONFIG = {
    "act_fn": "silu",
    "addition_embed_type": "text_time",
    "addition_embed_type_num_heads": 64,
    "addition_time_embed_dim": 256,
    "attention_head_dim": [5, 10, 20],
    "block_out_channels": [320, 640, 1280],
    "center_input_sample": False,
    "cross_attention_dim": 2048,
    "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
    "downsample_padding": 1,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "in_channels": 4,
    "layers_per_block": 2,
    "mid_block_scale_factor": 1,
    "norm_eps": 1e-05,
    "norm_num_groups": 32,
    "out_channels": 4,
    "projection_class_embeddings_input_dim": 2816,
    "sample_size": 128,
    "transformer_layers_per_block": [1, 2, 10],
    "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
    "use_linear_projection": True,
}
"""SDXL base 1.0 UNet architecture (2.57 B parameters; VAE factor 8, so 1024 px = 128 x 128 latents)."""


def bridge_options(model: str, rank: int, gradient_checkpointing: bool) -> types.SimpleNamespace:
    """The ``train-bridge`` options ``build_conditioner`` and ``configure_training`` read: the defaults for full
    SDXL (InceptSAD ``things17``, resampler 768 x 4 layers, 16 queries), the test sizes for the tiny preset."""
    sizes = {"tiny": ("tiny", 4, 32, 1, 2), "sdxl": ("things17", 16, 768, 4, 12)}[model]
    return types.SimpleNamespace(
        encoder_pretrained=None, encoder_preset=sizes[0], n_queries=sizes[1], resampler_dim=sizes[2],
        resampler_depth=sizes[3], resampler_heads=sizes[4], clip_hidden_dim=1024, encoder_training="frozen",
        encoder_trainable_blocks=1,
        unet_training="lora", rank=rank, lora_alpha=rank, lora_target_modules=["to_k", "to_q", "to_v", "to_out.0"],
        gradient_checkpointing=gradient_checkpointing,
    )  # fmt: skip


def measure(args) -> dict:
    """One configuration, in this process."""
    import torch
    from accelerate import Accelerator
    from diffusers import UNet2DConditionModel

    from ttdnet.models.tiny_sdxl import build_tiny_sdxl
    from ttdnet.stages.bridge_models import BridgeModel, build_conditioner, configure_training

    accelerator = Accelerator(mixed_precision=args.mixed_precision, cpu=args.device == "cpu")
    weight_dtype = {"no": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[args.mixed_precision]
    torch.manual_seed(0)
    if args.model == "tiny":
        unet, factor = build_tiny_sdxl("tiny")["unet"], 2
    else:
        default = torch.get_default_dtype()
        torch.set_default_dtype(weight_dtype)  # build the frozen base directly in its dtype
        unet, factor = UNet2DConditionModel(**SDXL_BASE_UNET_CONFIG), 8
        torch.set_default_dtype(default)
    options = bridge_options(args.model, args.rank, args.gradient_checkpointing)
    conditioner = build_conditioner(options, unet.config, None)
    model = BridgeModel(conditioner, unet)
    groups = configure_training(options, model, weight_dtype)
    trained = [p for group in groups.values() for p in group]
    optimizer = torch.optim.AdamW(trained, lr=1e-4)
    model, optimizer = accelerator.prepare(model, optimizer)
    model.train()
    device = accelerator.device
    side = args.resolution // factor
    batch = args.batch_size
    inputs = {
        "eeg": torch.randn(batch, conditioner.signal.n_chans, conditioner.signal.n_times, device=device),
        "noisy_latents": torch.randn(batch, 4, side, side, device=device),
        "timesteps": torch.randint(0, 1000, (batch,), device=device),
        "time_ids": torch.tensor(
            [[args.resolution, args.resolution, 0, 0, args.resolution, args.resolution]] * batch,
            dtype=torch.float32,
            device=device,
        ),  # fmt: skip
    }
    target = torch.randn(batch, 4, side, side, device=device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times = []
    for step in range(args.warmup + args.steps):
        started = time.perf_counter()
        prediction, _, _ = model(**inputs)
        loss = torch.nn.functional.mse_loss(prediction.float(), target)
        accelerator.backward(loss)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize()
        if step >= args.warmup:
            times.append(time.perf_counter() - started)
    row = {
        "model": args.model, "resolution": args.resolution, "batch": batch, "rank": args.rank,
        "gradient_checkpointing": args.gradient_checkpointing, "mixed_precision": args.mixed_precision,
        "device": str(device), "torch_threads": torch.get_num_threads(),
        "trained_parameters_M": round(sum(p.numel() for p in trained) / 1e6, 2),
        "unet_parameters_M": round(sum(p.numel() for p in unet.parameters()) / 1e6, 1),
        "s_per_step": round(sum(times) / len(times), 3), "steps_timed": len(times),
        "peak_rss_GiB": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
    }  # fmt: skip
    if device.type == "cuda":
        row["peak_gpu_GiB"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    return row


def precision_probe() -> list[str]:
    """Seconds of one SDXL-sized 3x3 convolution and one matmul in fp32 and bf16, side by side, on the CPU."""
    import torch

    lines = []
    x, w = torch.randn(1, 640, 64, 64), torch.randn(640, 640, 3, 3) * 0.01
    a, b = torch.randn(4096, 1280), torch.randn(1280, 1280)
    probes = {
        "conv 640->640 3x3 on 64x64": lambda d: torch.nn.functional.conv2d(x.to(d), w.to(d), padding=1),
        "matmul 4096x1280 @ 1280x1280": lambda d: a.to(d) @ b.to(d),
    }
    for name, run in probes.items():
        seconds = {}
        for dtype in (torch.float32, torch.bfloat16):
            started = time.perf_counter()
            run(dtype)
            seconds[dtype] = time.perf_counter() - started
        ratio = seconds[torch.bfloat16] / seconds[torch.float32]
        lines.append(
            f"{name}: fp32 {seconds[torch.float32]:.3f} s, bf16 {seconds[torch.bfloat16]:.3f} s ({ratio:.0f}x)"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--full_size", action="store_true", help="also full-size SDXL (random weights; 10+ GB)")
    parser.add_argument("--resolutions", type=int, nargs="+", default=[512, 1024], help="full-size image sizes")
    parser.add_argument("--batch_sizes", type=int, nargs="+", default=[1], help="full-size batch sizes")
    parser.add_argument("--tiny_batch_sizes", type=int, nargs="+", default=[1, 8], help="tiny preset batch sizes")
    parser.add_argument("--mixed_precision", default="bf16", help="full-size precision (tiny: always fp32)")
    parser.add_argument("--rank", type=int, default=16, help="LoRA rank")
    parser.add_argument("--checkpointing", choices=["both", "on", "off"], default="both",
                        help="full-size runs with and/or without gradient checkpointing")  # fmt: skip
    parser.add_argument("--steps", type=int, default=2, help="timed steps per configuration")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps first")
    parser.add_argument("--precision_probe", action="store_true", help="time one conv and matmul in fp32 vs bf16")
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)  # internal: one configuration, as JSON
    args = parser.parse_args(argv)
    if args.one is not None:
        print("RESULT " + json.dumps(measure(argparse.Namespace(**json.loads(args.one)))), flush=True)
        return 0
    if args.precision_probe:
        print("\n".join(precision_probe()), flush=True)
    configs = [{"model": "tiny", "resolution": 64, "batch_size": b, "gradient_checkpointing": False,
                "mixed_precision": "no"} for b in args.tiny_batch_sizes]  # fmt: skip
    if args.full_size:
        configs += [{"model": "sdxl", "resolution": r, "batch_size": b, "gradient_checkpointing": g,
                     "mixed_precision": args.mixed_precision}
                    for r in args.resolutions for b in args.batch_sizes
                    for g in {"both": (False, True), "on": (True,), "off": (False,)}[args.checkpointing]]  # fmt: skip
    rows = []
    for config in configs:
        one = {**config, "device": args.device, "rank": args.rank, "steps": args.steps, "warmup": args.warmup}
        result = subprocess.run([sys.executable, __file__, "--one", json.dumps(one)], capture_output=True,
                                text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"}, check=False)  # fmt: skip
        found = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")]
        if not found:
            print(f"failed: {config}\n{result.stderr[-2000:]}", file=sys.stderr)
            continue
        rows.append(json.loads(found[0][len("RESULT ") :]))
        print(json.dumps(rows[-1]), flush=True)
    memory = "peak GPU GiB" if args.device != "cpu" else "peak RSS GiB"
    print(f"\n| model | image | batch | LoRA r | grad. ckpt | precision | device | trained M | s/step | {memory} |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        peak = row.get("peak_gpu_GiB", row["peak_rss_GiB"])
        print(f"| {row['model']} ({row['unet_parameters_M']} M UNet) | {row['resolution']}² | {row['batch']} | "
              f"{row['rank']} | {'yes' if row['gradient_checkpointing'] else 'no'} | {row['mixed_precision']} | "
              f"{row['device']} ({row['torch_threads']} threads) | {row['trained_parameters_M']} | "
              f"{row['s_per_step']} | {peak} |")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
