"""Real 2-process CPU runs of every training stage: a gloo group started by
``ACCELERATE_USE_CPU=1 torchrun --nproc_per_node 2 -m ttdnet ...`` (``accelerate launch --cpu --num_processes 2``
starts only one process on a CPU-only machine).

Step counts are checked against arithmetic done here: with ``drop_last``, accelerate's sharded loader gives each
of the N processes ``(n_samples // batch) // N`` batches per epoch.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from bridge_files import bridge_args, write_bridge_setup
from retrieval_files import options, write_retrieval_dataset
from safetensors.torch import load_file
from things_files import write_one_subject


TORCHRUN = str(Path(sys.executable).parent / "torchrun")


def torchrun(args: list[str], cpu_group: bool = True, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    env.pop("ACCELERATE_USE_CPU", None)
    if cpu_group:
        env["ACCELERATE_USE_CPU"] = "1"
    command = [TORCHRUN, "--standalone", "--nproc_per_node", "2", *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=timeout, check=False)


def rows(metrics_csv: Path, split: str) -> list[dict]:
    import csv

    with open(metrics_csv, newline="", encoding="utf-8") as handle:
        return [row for row in csv.DictReader(handle) if row["split"] == split]


@pytest.fixture(scope="module")
def stage_a_data(tmp_path_factory):
    """5 concepts x 3 images x 4 repetitions; val_fraction 0.2 holds out 1 concept: 48 training windows."""
    return write_one_subject(tmp_path_factory.mktemp("things"))


def stage_a_args(root, out, cache, **overrides):
    values = {"dataset_root": root, "output_dir": out, "eeg_cache_dir": cache, "encoder_preset": "tiny",
              "decoder_dim": 16, "decoder_depth": 1, "decoder_heads": 2, "train_batch_size": 4, "val_fraction": 0.2,
              "num_train_epochs": 3, "lr_warmup_steps": 2, "validation_steps": 4, "checkpointing_steps": 6,
              "report_to": "none", "seed": 7, **overrides}  # fmt: skip
    return ["-m", "ttdnet", "pretrain", *[f"--{key}={value}" for key, value in values.items()]]


def test_plain_torchrun_on_a_cpu_machine_is_refused(stage_a_data, tmp_path):
    """Without ACCELERATE_USE_CPU, accelerate sees one process per launch: two runs would share one folder."""
    out = tmp_path / "run"
    result = torchrun(stage_a_args(stage_a_data, out, tmp_path / "cache"), cpu_group=False)
    assert result.returncode != 0
    assert "the launcher started 2 processes (WORLD_SIZE=2) but accelerate sees 1" in result.stderr
    assert "ACCELERATE_USE_CPU=1 torchrun --nproc_per_node 2" in result.stderr
    assert not out.exists()


def test_stage_a_on_two_processes_steps_schedules_and_resumes(stage_a_data, tmp_path):
    out = tmp_path / "run"
    result = torchrun(stage_a_args(stage_a_data, out, tmp_path / "cache"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "world size 2 (MULTI_CPU)" in result.stderr
    steps_per_epoch = (48 // 4) // 2
    train = rows(out / "metrics.csv", "train")
    assert [int(row["step"]) for row in train] == list(range(1, 3 * steps_per_epoch + 1))  # 3 epochs, not 6
    assert {int(row["epoch"]) for row in train} == {1, 2, 3}
    assert float(train[-1]["lr"]) == 0.0 and float(train[1]["lr"]) == pytest.approx(4e-4)  # cosine end, warm-up
    assert [int(row["step"]) for row in rows(out / "metrics.csv", "val")] == [4, 8, 12, 16, 18]
    summary = json.loads((out / "training_summary.json").read_text())
    assert summary["num_processes"] == 2 and summary["total_batch_size"] == 8

    resumed = tmp_path / "resumed"
    shutil.copytree(out, resumed)
    for name in ("checkpoint-18", "encoder", "encoder-last", "training_summary.json"):
        path = resumed / name
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    args = stage_a_args(stage_a_data, resumed, tmp_path / "cache", resume_from_checkpoint="checkpoint-12")
    result = torchrun(args)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Resuming from" in result.stderr and "(step 12)" in result.stderr
    for artifact in ("encoder", "encoder-last"):
        expected = load_file(str(out / artifact / "diffusion_pytorch_model.safetensors"))
        again = load_file(str(resumed / artifact / "diffusion_pytorch_model.safetensors"))
        assert all(np.array_equal(expected[key].numpy(), again[key].numpy()) for key in expected), artifact
    assert (resumed / "metrics.csv").read_text() == (out / "metrics.csv").read_text()


def test_stage_a_validation_loss_is_the_same_on_two_processes(tmp_path):
    """11 windows in batches of 4 over 2 processes: the padded repeats must not enter the loss."""
    out = tmp_path / "result.json"
    script = Path(__file__).with_name("distributed_checks.py")
    result = torchrun([str(script), "validation", str(out)])
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(out.read_text())
    assert report["world_size"] == 2 and report["validation_gap"] < 1e-6 and report["value"] > 0


@pytest.fixture(scope="module")
def retrieval_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("retrieval")
    return root, write_retrieval_dataset(root)


def test_retrieval_on_two_processes_steps_evaluates_once_learns_and_resumes(retrieval_data, tmp_path):
    root, features = retrieval_data
    out = tmp_path / "run"
    settings = {"eval_subjects": ["1"], "num_train_epochs": 3, "lr_scheduler": "cosine", "lr_warmup_steps": 2,
                "checkpointing_steps": 3, "checkpoints_total_limit": 10}  # fmt: skip
    result = torchrun(["-m", "ttdnet", "train-retrieval", *options(root, features, out, **settings)])
    assert result.returncode == 0, result.stdout + result.stderr
    log = result.stdout + result.stderr
    steps_per_epoch = (24 * 3 // 8) // 2  # 24 training concepts x 3 images, batches of 8, 2 processes
    fold = out / "intra" / "sub-01"
    train = rows(fold / "metrics.csv", "train")
    assert [int(row["step"]) for row in train] == list(range(1, 3 * steps_per_epoch + 1))
    assert float(train[-1]["lr"]) == 0.0
    assert [line.split("validation at step ")[1] for line in log.splitlines() if "validation at step" in line] == [
        f"{step} on process 0" for step in (4, 8, 12)
    ]
    assert log.count("scoring the test set once, on process 0") == 1 and "on process 1" not in log
    report = json.loads((out / "results.json").read_text())
    (subject,) = report["subjects"]
    assert subject["num_processes"] == 2 and subject["steps"] == 12
    assert subject["test"]["top1"] >= 0.6  # chance 0.1
    assert report["protocol"]["infonce_negatives"].startswith("the global batch (8 per process x 2 process(es))")

    for path in [fold / "fold_results.json", fold / "model", fold / "model-last", out / "results.json"]:
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    for step in (9, 12):  # as if killed after the checkpoint of step 6
        shutil.rmtree(fold / f"checkpoint-{step}")
    result = torchrun(["-m", "ttdnet", "train-retrieval",
                       *options(root, features, out, resume_from_checkpoint="latest", **settings)])  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    again = json.loads((out / "results.json").read_text())["subjects"][0]
    assert again["selected_weights_sha256"] == subject["selected_weights_sha256"]
    assert again["test"] == subject["test"]


def test_stage_b_on_two_processes_steps_schedules_and_validates_once(tmp_path):
    setup = write_bridge_setup(tmp_path)
    out = tmp_path / "bridge"
    overrides = {"train_batch_size": 4, "max_train_steps": None, "num_train_epochs": 1, "lr_scheduler": "cosine",
                 "validation_steps": 4, "checkpointing_steps": 100, "num_validation_trials": 4,
                 "num_validation_images": 1}  # fmt: skip
    result = torchrun(["-m", "ttdnet", "train-bridge", *bridge_args(setup, out, **overrides)])
    assert result.returncode == 0, result.stdout + result.stderr
    steps = (24 * 3 // 4) // 2  # 24 training concepts x 3 images (averaged), batches of 4, 2 processes: one epoch
    train = rows(out / "metrics.csv", "train")
    assert [int(row["step"]) for row in train] == list(range(1, steps + 1)) and float(train[-1]["lr"]) == 0.0
    log = result.stdout + result.stderr
    validations = [line.split("validation at step ")[1] for line in log.splitlines() if "Stage B: validation" in line]
    assert validations == [f"{step} on process 0" for step in (0, 4, 8, steps)]
    assert json.loads((out / "training_summary.json").read_text())["total_batch_size"] == 8
