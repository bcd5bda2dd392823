"""``ttdnet train-bridge`` on a tiny SDXL-architecture base: artifacts, LoRA export, checkpoints, resume, learning."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from bridge_files import bridge_args, train_bridge_in_process, write_bridge_setup
from safetensors.torch import load_file

from ttdnet.cli import main


ACCELERATE = str(Path(sys.executable).parent / "accelerate")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A tiny base saved as a diffusers folder, 3 subjects of learnable EEG, and a feature file for the CLIP head."""
    return write_bridge_setup(tmp_path_factory.mktemp("bridge"))


def lora_parameter_count(unet, targets=("to_q", "to_k", "to_v", "to_out.0"), rank=4) -> int:
    """r * (in + out) for every Linear the LoRA targets, counted on the base UNet here."""
    total = 0
    for name, module in unet.named_modules():
        if isinstance(module, torch.nn.Linear) and any(name.endswith(target) for target in targets):
            total += rank * (module.in_features + module.out_features)
    return total


@pytest.fixture(scope="module")
def lora_run(setup):
    """One run under `accelerate launch --cpu`: LoRA, CLIP head, 6 steps, a checkpoint and a validation every 3."""
    from accelerate.utils import write_basic_config

    config = setup["root"] / "accelerate.yaml"
    write_basic_config(mixed_precision="no", save_location=str(config))
    out = setup["root"] / "lora-run"
    command = [ACCELERATE, "launch", "-q", "--config_file", str(config), "--cpu", "--num_processes", "1",
               "-m", "ttdnet", "train-bridge", *bridge_args(setup, out, report_to="tensorboard")]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    return out


def test_a_run_writes_the_artifacts_and_logs_validation(lora_run, setup):
    from diffusers import UNet2DConditionModel

    model = lora_run / "model"
    assert {"pytorch_lora_weights.safetensors", "conditioner", "README.md", "bridge.json"} <= {
        p.name for p in model.iterdir()
    }
    assert all("lora" in key for key in load_file(str(model / "pytorch_lora_weights.safetensors")))
    from PIL import Image

    first_image = next((setup["data"] / "image_set" / "training_images").rglob("*.jpg"))
    width, height = Image.open(first_image).size  # every fixture image has this size; training resizes to 64
    for folder in (model, lora_run / "model-last"):
        record = json.loads((folder / "bridge.json").read_text())
        assert record["base_model"] == str(setup["base"]) and record["original_size"] == [height, width] != [64, 64]
    card = (model / "README.md").read_text()
    assert f"base_model: {setup['base']}" in card and "never the test set" in card
    val_steps = [line.split(",")[0] for line in (lora_run / "metrics.csv").read_text().splitlines() if ",val," in line]
    assert val_steps == ["0", "3", "6"]  # the untrained baseline, then every 3 steps
    assert sorted(p.name for p in (lora_run / "validation").iterdir()) == [
        "step-000000.png", "step-000003.png", "step-000006.png"
    ]  # fmt: skip
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    logged = EventAccumulator(str(lora_run / "logs" / "ttdnet-stage-b")).Reload()  # accelerate's TensorBoard run
    assert "validation" in logged.Tags()["images"]
    assert [event.step for event in logged.Scalars("val/diffusion_loss")] == [0, 3, 6]
    assert [event.step for event in logged.Scalars("train/loss")] == [1, 2, 3, 4, 5, 6]
    summary = json.loads((lora_run / "training_summary.json").read_text())
    unet = UNet2DConditionModel.from_pretrained(setup["base"], subfolder="unet")
    counts = summary["trained_parameters"]
    assert counts["unet"] == lora_parameter_count(unet) and counts["encoder"] == 0  # frozen encoder
    assert counts["clip_head"] > 0 and counts["total"] == sum(v for k, v in counts.items() if k != "total")


def test_checkpoints_hold_only_what_is_trained(lora_run, setup):
    checkpoint = lora_run / "checkpoint-6"
    state = load_file(str(checkpoint / "trained_state.safetensors"))
    assert not (checkpoint / "model.safetensors").exists()
    unet_keys = [key for key in state if key.startswith("unet.")]
    assert unet_keys and all("lora" in key for key in unet_keys)  # never a base UNet weight
    frozen = load_file(str(lora_run / "model-last" / "conditioner" / "diffusion_pytorch_model.safetensors"))
    encoder = {key.removeprefix("conditioner."): value for key, value in state.items() if ".encoder." in key}
    assert encoder and all(torch.equal(value, frozen[key]) for key, value in encoder.items())  # kept, unchanged
    size = sum(p.stat().st_size for p in checkpoint.iterdir())
    base_size = (Path(setup["base"]) / "unet" / "diffusion_pytorch_model.safetensors").stat().st_size
    assert size < base_size / 2, f"checkpoint {size} bytes vs base UNet {base_size}"


def test_the_saved_lora_reproduces_the_trained_unet(lora_run, setup):
    """load_lora_weights into a fresh pipeline gives the UNet of the run's last trained state."""
    from diffusers import StableDiffusionXLPipeline, UNet2DConditionModel
    from peft import LoraConfig

    pipeline = StableDiffusionXLPipeline.from_pretrained(setup["base"])
    pipeline.load_lora_weights(lora_run / "model-last")
    trained = UNet2DConditionModel.from_pretrained(setup["base"], subfolder="unet")
    trained.add_adapter(LoraConfig(r=4, lora_alpha=4, target_modules=["to_k", "to_q", "to_v", "to_out.0"]))
    state = load_file(str(lora_run / "checkpoint-6" / "trained_state.safetensors"))
    missing = trained.load_state_dict({k.removeprefix("unet."): v for k, v in state.items() if k.startswith("unet.")},
                                      strict=False).missing_keys  # fmt: skip
    assert not [key for key in missing if "lora" in key]
    base = UNet2DConditionModel.from_pretrained(setup["base"], subfolder="unet")
    torch.manual_seed(0)
    inputs = (torch.randn(2, 4, 32, 32), torch.tensor([50, 700]))
    extra = {"encoder_hidden_states": torch.randn(2, 4, 64),
             "added_cond_kwargs": {"text_embeds": torch.randn(2, 32), "time_ids": torch.ones(2, 6)}}  # fmt: skip
    with torch.no_grad():
        exported, expected, plain = (u(*inputs, **extra).sample for u in (pipeline.unet, trained, base))
    torch.testing.assert_close(exported, expected, rtol=1e-5, atol=1e-5)
    assert (exported - plain).abs().max() > 1e-4  # the LoRA changed the base


def test_resume_is_bit_identical_to_an_uninterrupted_run(setup, tmp_path):
    settings = {"gradient_accumulation_steps": 2, "clip_queue_size": 12, "random_flip": "true", "max_train_steps": 4,
                "checkpointing_steps": 2, "validation_steps": 2}  # fmt: skip
    reference = tmp_path / "reference"
    train_bridge_in_process(bridge_args(setup, reference, **settings))
    resumed = tmp_path / "resumed"
    shutil.copytree(reference, resumed)
    for name in ("checkpoint-4", "model", "model-last", "training_summary.json"):  # as if killed after step 2
        path = resumed / name
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    train_bridge_in_process(bridge_args(setup, resumed, resume_from_checkpoint="latest", **settings))
    for artifact in ("model-last/pytorch_lora_weights.safetensors", "model/pytorch_lora_weights.safetensors",
                     "model-last/conditioner/diffusion_pytorch_model.safetensors"):  # fmt: skip
        expected, again = load_file(str(reference / artifact)), load_file(str(resumed / artifact))
        assert expected.keys() == again.keys()
        assert all(torch.equal(expected[key], again[key]) for key in expected), artifact
    assert (resumed / "metrics.csv").read_text() == (reference / "metrics.csv").read_text()


def test_the_validation_loss_falls_below_its_untrained_value(setup, tmp_path):
    """A randomly initialised tiny base trained in full on learnable EEG-image pairs."""
    out = tmp_path / "full"
    settings = {"unet_training": "full", "learning_rate": 5e-4, "max_train_steps": 10, "validation_steps": 10,
                "checkpointing_steps": 10, "clip_features": None, "clip_layer": None}  # fmt: skip
    train_bridge_in_process(bridge_args(setup, out, **settings))
    rows = [line.split(",") for line in (out / "metrics.csv").read_text().splitlines() if ",val," in line]
    header = (out / "metrics.csv").read_text().splitlines()[0].split(",")
    loss = {int(row[0]): float(row[header.index("diffusion_loss")]) for row in rows}
    assert sorted(loss) == [0, 10] and loss[10] < 0.8 * loss[0], loss
    assert (out / "model" / "unet" / "config.json").is_file() and not (
        out / "model" / "pytorch_lora_weights.safetensors"
    ).exists()


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"resolution": 66}, "--resolution 66 must be a multiple of 4"),
        ({"selection_metric": "clip_top1", "clip_features": None, "clip_layer": None}, "needs the CLIP head"),
        ({"clip_layer": "final"}, "--clip_layer final: "),
        ({"pretrained_model_name_or_path": "/nowhere/sdxl"}, "cannot load the SDXL base from '/nowhere/sdxl'"),
        ({"encoder_training": "last_blocks", "encoder_trainable_blocks": 9}, "the encoder has 1 transformer blocks"),
        ({"conditioning_dropout_prob": 1.0}, "'conditioning_dropout_prob' is 1.0"),
        ({"use_8bit_adam": "true"}, "--use_8bit_adam needs bitsandbytes"),
    ],
)
def test_bad_values_are_one_line_errors(setup, tmp_path, capsys, overrides, expected):
    if "use_8bit_adam" in overrides:
        try:
            import bitsandbytes  # noqa: F401

            pytest.skip("bitsandbytes is installed here")
        except ImportError:
            pass
    assert main(["train-bridge", *bridge_args(setup, tmp_path / "run", **overrides)]) == 1
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1 and expected in err, err
