"""A tiny Stage B setup for tests: a random tiny SDXL base, learnable EEG, a feature file for the CLIP head.

Tests import it as ``from bridge_files import ...`` (``tests/`` is on pytest's ``pythonpath``).
"""

from pathlib import Path

from retrieval_files import write_retrieval_dataset


def write_bridge_setup(root: Path) -> dict:
    """``{"base", "data", "features", "root"}`` under ``root``."""
    from ttdnet.models.tiny_sdxl import save_tiny_sdxl

    features = write_retrieval_dataset(root / "data")
    return {"base": save_tiny_sdxl(root / "tiny-sdxl"), "data": root / "data", "features": features, "root": root}


def bridge_args(setup: dict, output_dir, **overrides) -> list[str]:
    """``ttdnet train-bridge`` flags for a few CPU steps on the tiny base (a None override drops the flag)."""
    values = {
        "dataset_root": setup["data"], "subjects": "1", "pretrained_model_name_or_path": setup["base"],
        "encoder_preset": "tiny", "resolution": 64, "n_queries": 4, "resampler_dim": 32, "resampler_depth": 1,
        "resampler_heads": 2, "rank": 4, "train_batch_size": 8, "val_fraction": 0.2, "max_train_steps": 6,
        "validation_steps": 3, "checkpointing_steps": 3, "checkpoints_total_limit": 10, "num_validation_trials": 8,
        "num_validation_images": 2, "validation_inference_steps": 2, "lr_warmup_steps": 2, "report_to": "none",
        "output_dir": output_dir, "eeg_cache_dir": setup["root"] / "eeg-cache",
        "latent_cache_dir": setup["root"] / "latents", "clip_features": setup["features"], "clip_layer": "rgb4",
        "seed": 5,
    }  # fmt: skip
    values.update(overrides)
    return [f"--{key}={value}" for key, value in values.items() if value is not None]


def train_bridge_in_process(args: list[str]) -> dict:
    from ttdnet.cli import available_commands, build_parser
    from ttdnet.stages.bridge_training import train

    config, _ = build_parser(available_commands()["train-bridge"]).parse_config(args)
    return train(config)
