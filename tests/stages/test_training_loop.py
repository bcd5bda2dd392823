"""The shared training loop on one process: step arithmetic, schedule end, validation cadence, selection, freezing."""

import dataclasses
import math

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from ttdnet.errors import TtdnetError
from ttdnet.stages.accelerator_setup import create_accelerator
from ttdnet.stages.selection import BestOnValidation
from ttdnet.stages.training_loop import StepPlan, TrainingLoop, freeze, step_seed


@dataclasses.dataclass
class LoopOptions:
    output_dir: str
    seed: int = 0
    train_batch_size: int = 8
    num_train_epochs: int = 3
    max_train_steps: int | None = None
    gradient_accumulation_steps: int = 1
    learning_rate: float = 0.05
    lr_scheduler: str = "cosine"
    lr_warmup_steps: int = 2
    max_grad_norm: float = 1.0
    checkpointing_steps: int = 1000
    checkpoints_total_limit: int | None = None
    model_selection: str = "validation"
    mixed_precision: str | None = "no"
    report_to: str = "none"
    logging_dir: str = "logs"


def test_step_plan_arithmetic():
    plan = StepPlan.from_loader(
        45, batch_size=32, num_processes=2, accumulation=1, num_train_epochs=2, max_train_steps=None
    )
    assert (plan.steps_per_epoch, plan.max_train_steps, plan.num_epochs, plan.total_batch_size) == (45, 90, 2, 64)
    plan = StepPlan.from_loader(10, 4, 1, accumulation=3, num_train_epochs=2, max_train_steps=None)
    assert (plan.steps_per_epoch, plan.max_train_steps, plan.num_epochs) == (4, 8, 2)  # the last window is short
    plan = StepPlan.from_loader(10, 4, 1, accumulation=1, num_train_epochs=50, max_train_steps=25)
    assert (plan.max_train_steps, plan.num_epochs) == (25, 3)
    with pytest.raises(TtdnetError, match="no full batch"):
        StepPlan.from_loader(0, 512, 2, 1, 1, None)


def test_step_seed_depends_on_every_part():
    seeds = {
        step_seed(0, 1, 0, 0),
        step_seed(1, 1, 0, 0),
        step_seed(0, 2, 0, 0),
        step_seed(0, 1, 1, 0),
        step_seed(0, 1, 0, 1),
    }
    assert len(seeds) == 5 and step_seed(0, 1, 0, 0) == step_seed(0, 1, 0, 0)


def test_a_frozen_module_stays_frozen_when_its_parent_trains():
    torch.manual_seed(0)
    encoder = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Dropout(0.5))
    model = nn.Sequential(encoder, nn.Linear(8, 1))
    freeze(encoder)
    statistics = encoder[1].running_mean.clone()
    model.train()
    assert not encoder.training and not encoder[1].training and model[1].training
    x = torch.randn(16, 4)
    assert torch.equal(encoder(x), encoder(x))  # dropout off
    model(x).sum().backward()
    assert torch.equal(encoder[1].running_mean, statistics)
    assert all(p.grad is None and not p.requires_grad for p in encoder.parameters())
    assert model[1].weight.grad is not None


def regression_data(n=96, seed=0):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 5, generator=generator)
    return TensorDataset(x, x @ torch.tensor([1.0, -2.0, 0.5, 3.0, -1.0]))


def sgd_loop(options, folder) -> TrainingLoop:
    """A linear regression with SGD under the shared loop, unshuffled batches of 8."""
    model = nn.Linear(5, 1)
    loader = DataLoader(regression_data(), batch_size=8)
    optimizer = torch.optim.SGD(model.parameters(), 0.1)
    return TrainingLoop(create_accelerator(options), options, folder, model=model, optimizer=optimizer,
                        train_loader=loader, best=BestOnValidation(), name="toy")  # fmt: skip


@pytest.mark.parametrize("accumulation", [1, 3])
def test_loop_runs_the_planned_steps_ends_the_schedule_and_learns(tmp_path, accumulation):
    options = LoopOptions(str(tmp_path), gradient_accumulation_steps=accumulation)
    accelerator = create_accelerator(options, accumulation)
    torch.manual_seed(0)
    model = nn.Linear(5, 1)
    loader = DataLoader(regression_data(), batch_size=8, shuffle=True)
    best = BestOnValidation("min")
    loop = TrainingLoop(
        accelerator,
        options,
        tmp_path,
        model=model,
        optimizer=torch.optim.Adam(model.parameters(), 0.5),
        train_loader=loader,
        best=best,
        name="toy",
    )
    held_out = regression_data(32, seed=1).tensors
    calls = []

    def compute_loss(batch, epoch):
        x, y = batch
        return nn.functional.mse_loss(loop.model(x).squeeze(1), y), {}

    def validate(step, epoch):
        calls.append(step)
        with torch.no_grad():
            loss = float(nn.functional.mse_loss(loop.unwrapped_model(held_out[0]).squeeze(1), held_out[1]))
        return loss, {"val/loss": loss}

    initial = validate(0, 0)[0]
    calls.clear()
    result = loop.run(compute_loss, validate=validate, validation_steps=5)
    steps_per_epoch = math.ceil(12 / accumulation)  # 96 samples / batch 8 = 12 micro-batches
    assert result.final_step == loop.plan.max_train_steps == 3 * steps_per_epoch
    assert calls == [*range(5, result.final_step + 1, 5)] + ([result.final_step] if result.final_step % 5 else [])
    rows = (tmp_path / "metrics.csv").read_text().splitlines()
    train_rows = [row.split(",") for row in rows if ",train," in row]
    assert len(train_rows) == result.final_step
    assert float(train_rows[-1][4]) == pytest.approx(0.0, abs=1e-12)  # cosine reaches its end at the last step
    assert float(train_rows[1][4]) == pytest.approx(0.5)  # warm-up of 2 steps reaches the peak at step 2
    assert best.value < initial / 5  # it learns
    assert loop.selected_weights() is best.weights and best.step in calls


def test_selection_without_a_validation_is_an_error(tmp_path):
    options = LoopOptions(str(tmp_path), max_train_steps=2)
    loop = sgd_loop(options, tmp_path)
    loop.run(lambda batch, epoch: (nn.functional.mse_loss(loop.model(batch[0]).squeeze(1), batch[1]), {}))
    with pytest.raises(TtdnetError, match="no validation ran"):
        loop.selected_weights()


def test_a_nan_loss_is_an_error_naming_the_step(tmp_path):
    options = LoopOptions(str(tmp_path))
    loop = sgd_loop(options, tmp_path)

    def compute_loss(batch, epoch):
        loss = loop.model(batch[0]).sum()
        return (loss * float("nan") if loop.global_step == 3 else loss), {}

    with pytest.raises(TtdnetError, match="toy: the training loss is nan at step 4; lower --learning_rate"):
        loop.run(compute_loss)
