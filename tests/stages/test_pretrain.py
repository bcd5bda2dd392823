import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from safetensors.torch import load_file
from things_files import OFFICIAL_TIMES, write_eeg_file, write_image_set

from ttdnet.cli import main
from ttdnet.data.channels import POSTERIOR_17_CHANNELS


ACCELERATE = str(Path(sys.executable).parent / "accelerate")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """Official-format data: 5 training concepts x 3 images x 4 repetitions for one subject."""
    root = tmp_path_factory.mktemp("things")
    write_image_set(root / "image_set")
    rng = np.random.default_rng(0)
    t = np.arange(100) / 100
    for partition, n_rows, n_reps in (("training", 15, 4), ("test", 4, 80)):
        phases = rng.uniform(0, 2 * np.pi, size=(n_rows, n_reps, 17, 1))
        data = np.sin(2 * np.pi * 6 * t + phases) + 0.1 * rng.standard_normal((n_rows, n_reps, 17, 100))
        write_eeg_file(
            root / "sub-01" / f"preprocessed_eeg_{partition}.npy", data, list(POSTERIOR_17_CHANNELS), OFFICIAL_TIMES
        )
    return root


@pytest.fixture(scope="module")
def accelerate_config(tmp_path_factory):
    from accelerate.utils import write_basic_config

    path = tmp_path_factory.mktemp("accelerate") / "default_config.yaml"
    write_basic_config(mixed_precision="no", save_location=str(path))
    return path


def pretrain_args(dataset, output_dir, cache_dir, **overrides):
    options = {
        "dataset_root": dataset,
        "cache_dir": cache_dir,
        "output_dir": output_dir,
        "encoder_preset": "tiny",
        "decoder_dim": 16,
        "decoder_depth": 1,
        "decoder_heads": 2,
        "train_batch_size": 8,
        "val_fraction": 0.2,
        "lr_warmup_steps": 2,
        "validation_steps": 4,
        "report_to": "none",
        "seed": 7,
    }
    options.update(overrides)
    return [f"--{key}={value}" for key, value in options.items()]


def launch(accelerate_config, args, **popen):
    command = [ACCELERATE, "launch", "--config_file", str(accelerate_config), "--cpu", "--num_processes", "1"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([*command, "-m", "ttdnet", "pretrain", *args], env=env, **popen)


def run_to_end(accelerate_config, args):
    process = launch(accelerate_config, args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output, _ = process.communicate(timeout=600)
    assert process.returncode == 0, output
    return output


def checkpoint_names(output_dir):
    return {p.name for p in Path(output_dir).iterdir() if p.name.startswith("checkpoint-")}


def weights(path):
    return load_file(str(Path(path) / "diffusion_pytorch_model.safetensors"))


def test_rotation_and_resume_keep_the_exact_checkpoint_set(dataset, accelerate_config, tmp_path):
    out = tmp_path / "run"
    common = {"checkpointing_steps": 4, "checkpoints_total_limit": 2}
    run_to_end(accelerate_config, pretrain_args(dataset, out, tmp_path / "cache", max_train_steps=12, **common))
    assert checkpoint_names(out) == {"checkpoint-8", "checkpoint-12"}
    assert {"encoder", "encoder-last", "metrics.csv", "config.yaml", "training_summary.json"} <= {
        p.name for p in out.iterdir()
    }
    args = pretrain_args(
        dataset, out, tmp_path / "cache", max_train_steps=16, resume_from_checkpoint="checkpoint-8", **common
    )
    output = run_to_end(accelerate_config, args)
    assert "Resuming from" in output and "(step 8)" in output
    assert checkpoint_names(out) == {"checkpoint-12", "checkpoint-16"}


def test_killed_run_resumes_to_the_same_weights(dataset, accelerate_config, tmp_path):
    settings = {"max_train_steps": 120, "checkpointing_steps": 10, "validation_steps": 10}
    reference = tmp_path / "uninterrupted"
    run_to_end(accelerate_config, pretrain_args(dataset, reference, tmp_path / "cache", **settings))

    interrupted = tmp_path / "interrupted"
    process = launch(
        accelerate_config,
        pretrain_args(dataset, interrupted, tmp_path / "cache", **settings),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 300
    while not (interrupted / "checkpoint-20").exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, "the run finished before it could be interrupted"
    assert not (interrupted / "encoder-last").exists()
    completed = checkpoint_names(interrupted)
    assert "checkpoint-20" in completed and "checkpoint-120" not in completed

    output = run_to_end(
        accelerate_config,
        pretrain_args(dataset, interrupted, tmp_path / "cache", resume_from_checkpoint="latest", **settings),
    )
    assert "Resuming from" in output
    for artifact in ("encoder-last", "encoder"):
        expected, resumed = weights(reference / artifact), weights(interrupted / artifact)
        assert expected.keys() == resumed.keys()
        for key in expected:
            assert np.array_equal(expected[key].numpy(), resumed[key].numpy()), f"{artifact}: {key} differs"
    assert (interrupted / "metrics.csv").read_text() == (reference / "metrics.csv").read_text()


def test_channel_and_window_mismatch_are_clear_errors(dataset, tmp_path, capsys):
    args = pretrain_args(dataset, tmp_path / "out", tmp_path / "cache", max_train_steps=1)
    assert main(["pretrain", *args, "--tmin", "0.0", "--tmax", "0.7"]) == 1
    assert "70 time samples per window, the model expects 100" in capsys.readouterr().err
    assert main(["pretrain", *args, "--encoder_preset", "things63"]) == 1
    err = capsys.readouterr().err
    assert "channels ['Fp1'" in err and "are not in the data" in err


def test_missing_dataset_root_is_a_clear_error(tmp_path, capsys):
    assert main(["pretrain", "--output_dir", str(tmp_path), "--report_to", "none"]) == 1
    assert "give --dataset_root" in capsys.readouterr().err
