"""``ttdnet generate`` on a tiny trained bridge: seeds, guidance, inputs, resume after SIGKILL, evaluate round trip."""

import io
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from bridge_files import bridge_args, train_bridge_in_process, write_bridge_setup
from PIL import Image

from ttdnet.cli import main
from ttdnet.data.channels import POSTERIOR_17_CHANNELS
from ttdnet.io import temporary_prefix
from ttdnet.stages.generation import image_seed


@pytest.fixture(scope="module")
def bridge(tmp_path_factory):
    """A bridge trained for 4 steps (LoRA + CLIP head), with a checkpoint at its last step."""
    setup = write_bridge_setup(tmp_path_factory.mktemp("generate"))
    out = setup["root"] / "bridge"
    train_bridge_in_process(bridge_args(setup, out, max_train_steps=4, checkpointing_steps=4, validation_steps=4))
    return {**setup, "run": out}


def generate_args(setup, out, **overrides):
    values = {"bridge": setup["run"] / "model-last", "eeg": setup["data"], "subject": "1", "num_inference_steps": 2,
              "num_samples": 2, "batch_size": 4, "output_dir": out, "seed": 11}  # fmt: skip
    values.update(overrides)
    return [f"--{key}={value}" for key, value in values.items() if value is not None]


def pngs(folder):
    return {p.name: p.read_bytes() for p in sorted((folder / "images").glob("*.png"))}


def manifest(folder):
    return [json.loads(line) for line in (folder / "manifest.jsonl").read_text().splitlines()]


def test_same_seed_same_images_other_seed_or_guidance_other_images(bridge, tmp_path):
    assert main(["generate", *generate_args(bridge, tmp_path / "a")]) == 0
    assert main(["generate", *generate_args(bridge, tmp_path / "b", batch_size=3)]) == 0
    assert main(["generate", *generate_args(bridge, tmp_path / "a2")]) == 0
    first = pngs(tmp_path / "a")
    assert len(first) == 20 and first == pngs(tmp_path / "a2")  # 10 test trials x 2 samples: the same bytes
    # Another batch size: the same images up to the rounding of batched arithmetic.
    a, b = (np.stack([np.asarray(Image.open(io.BytesIO(x)), dtype=int) for x in pngs(tmp_path / f).values()])
            for f in ("a", "b"))  # fmt: skip
    assert np.abs(a - b).max() <= 3 and np.mean(a == b) > 0.99
    assert main(["generate", *generate_args(bridge, tmp_path / "c", seed=12)]) == 0
    assert all(first[name] != image for name, image in pngs(tmp_path / "c").items())
    assert main(["generate", *generate_args(bridge, tmp_path / "d", guidance_scale=1.0)]) == 0
    assert all(first[name] != image for name, image in pngs(tmp_path / "d").items())
    rows = manifest(tmp_path / "a")
    assert [(row["trial"], row["sample"]) for row in rows][:3] == [("00001_antelope", 0), ("00001_antelope", 1),
                                                                  ("00002_backscratcher", 0)]  # fmt: skip
    assert rows[0]["seed"] == image_seed(11, "00001_antelope", 0) and rows[0]["ground_truth"].endswith(".jpg")
    assert (tmp_path / "a" / "grid.png").is_file() and (tmp_path / "a" / "config.yaml").is_file()


def test_a_checkpoint_generates_what_the_shipped_last_weights_generate(bridge, tmp_path):
    assert main(["generate", *generate_args(bridge, tmp_path / "shipped", num_samples=1)]) == 0
    checkpoint = bridge["run"] / "checkpoint-4"
    assert main(["generate", *generate_args(bridge, tmp_path / "checkpoint", num_samples=1, bridge=checkpoint)]) == 0
    assert pngs(tmp_path / "shipped") == pngs(tmp_path / "checkpoint")


def test_a_killed_run_resumes_to_the_complete_set_without_duplicates(bridge, tmp_path):
    reference = tmp_path / "reference"
    args = generate_args(bridge, reference, num_samples=4, batch_size=2)
    assert main(["generate", *args]) == 0
    out = tmp_path / "killed"
    command = [sys.executable, "-m", "ttdnet", "generate", *generate_args(bridge, out, num_samples=4, batch_size=2)]
    process = subprocess.Popen(command, env={**os.environ, "HF_HUB_OFFLINE": "1"}, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    deadline = time.monotonic() + 300
    while process.poll() is None and time.monotonic() < deadline and len(list(out.glob("images/*.png"))) < 9:
        time.sleep(0.01)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, "generation finished before it could be interrupted"
    assert 0 < len(pngs(out)) < 40
    # Whether or not the kill came mid-write, leave what it would have left: a PNG half written by that process.
    prefix = temporary_prefix("00001_x_s0.png").replace(f"-{os.getpid()}-", f"-{process.pid}-")
    (out / "images" / f"{prefix}abc.tmp").write_bytes(b"\x89PNG half")
    assert main(["generate", *generate_args(bridge, out, num_samples=4, batch_size=2)]) == 0
    assert pngs(out) == pngs(reference)
    rows = manifest(out)
    assert len(rows) == 40 and len({(row["trial"], row["sample"]) for row in rows}) == 40
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]


def test_the_manifest_goes_straight_into_evaluate(bridge, tmp_path, capsys, monkeypatch):
    # Relative paths, as a user types them: the manifest must still resolve from another folder.
    monkeypatch.chdir(bridge["data"].parent)
    data = bridge["data"].name
    run = os.path.relpath(bridge["run"] / "model-last")
    assert main(["generate", *generate_args(bridge, tmp_path / "gen", eeg=data, bridge=run)]) == 0
    capsys.readouterr()
    args = ["--ground_truth", data, "--manifest", str(tmp_path / "gen" / "manifest.jsonl"),
            "--metrics", "pixcorr", "ssim", "--device", "cpu", "--output_dir", str(tmp_path / "eval")]  # fmt: skip
    assert main(["evaluate", *args]) == 0
    assert "paired 10 trials x 2 sample(s)" in capsys.readouterr().out
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert "pixcorr" in json.dumps(metrics).lower()


def write_array(folder, name, data, ch_names, sfreq=100.0, tmin=-0.2, **extra):
    np.save(folder / f"{name}.npy", data)
    (folder / f"{name}.json").write_text(json.dumps({"ch_names": ch_names, "sfreq": sfreq, "tmin": tmin, **extra}))
    return folder / f"{name}.npy"


def test_plain_arrays_and_folders_of_them(bridge, tmp_path):
    arrays = tmp_path / "arrays"
    arrays.mkdir()
    rng = np.random.default_rng(0)
    channels = list(POSTERIOR_17_CHANNELS)
    write_array(arrays, "a", rng.standard_normal((2, 17, 100)), channels, ids=["x1", "x2"])
    shuffled = channels[::-1] + ["Cz"]  # other order and an extra channel: picked by name
    write_array(arrays, "b", rng.standard_normal((1, 18, 120)), shuffled, tmin=-0.3)
    assert main(["generate", *generate_args(bridge, tmp_path / "out", eeg=arrays, subject=None, num_samples=1)]) == 0
    assert sorted(pngs(tmp_path / "out")) == ["b_00000_s0.png", "x1_s0.png", "x2_s0.png"]
    assert [row["ground_truth"] for row in manifest(tmp_path / "out")] == [None, None, None]


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (
            lambda d: write_array(d, "r", np.zeros((17, 100)), list(POSTERIOR_17_CHANNELS)),
            "must be (n_trials, n_chans, n_times), got shape (17, 100)",
        ),
        (lambda d: write_array(d, "e", np.zeros((0, 17, 100)), list(POSTERIOR_17_CHANNELS)), "holds no trials"),
        (
            lambda d: write_array(d, "n", np.full((2, 17, 100), np.nan), list(POSTERIOR_17_CHANNELS)),
            "trial 0 has NaN or infinite values",
        ),
        (
            lambda d: write_array(d, "c", np.zeros((1, 3, 100)), ["Fz", "Cz", "Oz"], sfreq=250.0),
            "'PO8', 'P6', 'P2'] are missing (it has ['Fz', 'Cz', 'Oz']); sampling rate 250 Hz, the conditioner "
            "expects 100 Hz",
        ),
        (
            lambda d: write_array(d, "w", np.zeros((1, 17, 100)), list(POSTERIOR_17_CHANNELS), tmin=0.0),
            "window -0.2 s + 100 samples",
        ),
        (lambda d: (np.save(d / "s.npy", np.zeros((1, 17, 100))), d / "s.npy")[1], "no sidecar s.json"),
    ],
)
def test_bad_eeg_inputs_are_one_line_errors_naming_the_file(bridge, tmp_path, capsys, make, expected):
    path = make(tmp_path)
    assert main(["generate", *generate_args(bridge, tmp_path / "out", eeg=path, subject=None)]) == 1
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1 and expected in err and path.name in err, err


def test_bad_generation_options_are_one_line_errors(bridge, tmp_path, capsys):
    assert main(["generate", *generate_args(bridge, tmp_path / "o", device="cuda:7")]) == 1
    assert "--device cuda:7" in capsys.readouterr().err
    assert main(["generate", *generate_args(bridge, tmp_path / "o", bridge=tmp_path)]) == 1
    assert "not a trained bridge" in capsys.readouterr().err
    assert main(["generate", *generate_args(bridge, tmp_path / "o", subject=None)]) == 1
    assert "choose one with --subject" in capsys.readouterr().err
