import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from safetensors.torch import load_file
from things_files import write_one_subject

from ttdnet.cli import main


ACCELERATE = str(Path(sys.executable).parent / "accelerate")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """5 training concepts x 3 images x 4 repetitions for one subject."""
    return write_one_subject(tmp_path_factory.mktemp("things"))


@pytest.fixture(scope="module")
def accelerate_config(tmp_path_factory):
    from accelerate.utils import write_basic_config

    path = tmp_path_factory.mktemp("accelerate") / "default_config.yaml"
    write_basic_config(mixed_precision="no", save_location=str(path))
    return path


def pretrain_args(dataset, output_dir, cache_dir, **overrides):
    options = {
        "dataset_root": dataset,
        "eeg_cache_dir": cache_dir,
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
    # A constant schedule, so resuming with a longer max_train_steps continues the same run.
    common = {"checkpointing_steps": 4, "checkpoints_total_limit": 2, "lr_scheduler": "constant"}
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


def test_a_run_folder_holds_one_run(dataset, tmp_path, capsys):
    out = tmp_path / "run"
    args = pretrain_args(dataset, out, tmp_path / "cache", max_train_steps=8, checkpointing_steps=4)
    assert main(["pretrain", *args]) == 0
    capsys.readouterr()
    assert main(["pretrain", *args]) == 1
    assert "is not empty" in capsys.readouterr().err
    assert main(["pretrain", *args, "--resume_from_checkpoint", "latest", "--mask_ratio", "0.3"]) == 1
    assert "(mask_ratio: 0.5 -> 0.3)" in capsys.readouterr().err
    # With the cosine schedule a longer run would not follow the same learning rates: refused.
    longer = pretrain_args(dataset, out, tmp_path / "cache", max_train_steps=12, checkpointing_steps=4)
    assert main(["pretrain", *longer, "--resume_from_checkpoint", "latest"]) == 1
    assert "max_train_steps: 8 -> 12" in capsys.readouterr().err
    assert main(["pretrain", *args, "--overwrite", "--seed", "8"]) == 0
    assert (
        "seed: 8" in (out / "config.yaml").read_text()
        and len((out / "run_history.jsonl").read_text().splitlines()) == 1
    )


def test_a_damaged_checkpoint_names_the_missing_file_and_the_previous_checkpoint(dataset, tmp_path, capsys):
    out = tmp_path / "run"
    args = pretrain_args(dataset, out, tmp_path / "cache", max_train_steps=8, checkpointing_steps=4)
    assert main(["pretrain", *args]) == 0
    (out / "checkpoint-8" / "optimizer.bin").unlink()
    capsys.readouterr()
    assert main(["pretrain", *args, "--resume_from_checkpoint", "latest"]) == 1
    err = capsys.readouterr().err
    assert "checkpoint-8 is unusable: missing optimizer.bin; resume from the previous one with " in err
    assert "--resume_from_checkpoint checkpoint-4" in err and "Traceback" not in err
    assert main(["pretrain", *args, "--resume_from_checkpoint", "checkpoint-4"]) == 0


def test_an_empty_validation_split_is_an_error_unless_selection_is_last(dataset, tmp_path, capsys):
    args = pretrain_args(dataset, tmp_path / "run", tmp_path / "cache", max_train_steps=2, val_fraction=0.0)
    assert main(["pretrain", *args]) == 1
    assert "validation split is empty" in capsys.readouterr().err
    assert main(["pretrain", *args, "--model_selection", "last", "--output_dir", str(tmp_path / "last")]) == 0
    summary = (tmp_path / "last" / "training_summary.json").read_text()
    assert '"selection": "last step (--model_selection last)"' in summary


def test_a_resume_continues_in_the_saved_precision(dataset, tmp_path):
    """The README's resume example does not repeat --mixed_precision: the run's own precision is the default."""
    out = tmp_path / "run"
    common = {"checkpointing_steps": 2, "lr_scheduler": "constant"}
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    first = pretrain_args(dataset, out, tmp_path / "cache", max_train_steps=2, mixed_precision="bf16", **common)
    subprocess.run([sys.executable, "-m", "ttdnet", "pretrain", *first], env=env, check=True, capture_output=True)
    resumed = pretrain_args(dataset, out, tmp_path / "cache", max_train_steps=4, resume_from_checkpoint="latest",
                            **common)  # fmt: skip
    subprocess.run([sys.executable, "-m", "ttdnet", "pretrain", *resumed], env=env, check=True, capture_output=True)
    runs = [json.loads(line) for line in (out / "run_history.jsonl").read_text().splitlines()]
    assert [run["mixed_precision"] for run in runs] == ["bf16", "bf16"]
    assert runs[1]["changed_options"]["max_train_steps"] == [2, 4]
