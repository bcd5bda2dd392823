"""One ``accelerate`` training loop for every stage, correct on any number of processes.

The shape is that of the diffusers training examples, written once:

1. :func:`ttdnet.stages.accelerator_setup.create_accelerator` builds the ``Accelerator`` (trackers, project
   folders, seedable sampler) and checks the world size.
2. :class:`TrainingLoop` prepares the training loader **first**, so the step arithmetic comes from the sharded
   loader (:class:`StepPlan`): steps per epoch, ``max_train_steps`` when it is derived from epochs, and an LR
   scheduler sized to reach its end exactly at the last optimizer step. accelerate steps a prepared scheduler
   once per process per optimizer step, so the schedule is built for ``steps × processes``.
3. :meth:`TrainingLoop.resume` resolves ``--resume_from_checkpoint`` (:mod:`ttdnet.stages.checkpoints`),
   verifies and loads the checkpoint, and places the data position: first epoch, batches to skip.
4. :meth:`TrainingLoop.run` loops over epochs and micro-batches: ``set_epoch``, ``skip_first_batches`` on the
   first resumed epoch, a seed per micro-step (so a killed and resumed run repeats an uninterrupted one),
   gradient accumulation and clipping, one tracker row per optimizer step with a step that only grows,
   validation-driven selection (:class:`~ttdnet.stages.selection.BestOnValidation`) and atomic checkpoints.

The stage supplies what differs: the loss of a micro-batch and, optionally, a validation function.
"""

import dataclasses
import logging
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ttdnet.errors import TtdnetError
from ttdnet.stages.checkpoints import CheckpointError, resolve_checkpoint, save_checkpoint, verify_checkpoint
from ttdnet.stages.selection import BestOnValidation
from ttdnet.stages.training_logs import MetricsCSV


logger = logging.getLogger(__name__)

ComputeLoss = Callable[[Any, int], tuple[torch.Tensor, dict[str, torch.Tensor]]]
Validate = Callable[[int, int], tuple[float, dict[str, float]]]


class TrainingDivergedError(TtdnetError):
    """The training loss became NaN or infinite."""


def step_seed(seed: int, global_step: int, micro_step: int, process_index: int) -> int:
    """A 63-bit seed that depends only on (seed, step, micro-step, process).

    Seeding torch from it before each micro-batch makes the random draws of a step (masks, dropout,
    augmentation) independent of anything consumed before, so a resumed run repeats an uninterrupted one.
    """
    state = np.random.SeedSequence([seed, global_step, micro_step, process_index]).generate_state(2, dtype=np.uint32)
    return int((int(state[0]) << 31) ^ int(state[1]))


def freeze(module: nn.Module) -> nn.Module:
    """Freeze ``module`` for good: no gradients, and evaluation mode that ``model.train()`` cannot undo.

    BatchNorm statistics and dropout of a frozen encoder must not change when the surrounding model is put
    back into training mode (after a validation, say). The module's own ``train`` is replaced by one that
    always switches to evaluation mode; ``nn.Module.train`` reaches children through their ``train`` method,
    so this holds however deep the module sits. Returns ``module``.
    """
    module.requires_grad_(False)

    def stay_in_eval(mode: bool = True) -> nn.Module:
        return nn.Module.train(module, False)

    module.train = stay_in_eval
    return module.eval()


@dataclasses.dataclass(frozen=True)
class StepPlan:
    """Optimizer steps of a run, computed from the loader as sharded for this number of processes.

    Attributes
    ----------
    batches_per_epoch : int
        Micro-batches per process per epoch.
    steps_per_epoch : int
        Optimizer steps per epoch, ``ceil(batches_per_epoch / accumulation)`` (the last window of an epoch
        may be short; accelerate steps at the end of the loader).
    max_train_steps : int
        ``max_train_steps`` if given, else ``num_train_epochs × steps_per_epoch``.
    num_epochs : int
        Epochs needed for ``max_train_steps``.
    total_batch_size : int
        Samples per optimizer step: per-device batch × processes × accumulation.
    """

    batches_per_epoch: int
    steps_per_epoch: int
    max_train_steps: int
    num_epochs: int
    total_batch_size: int

    @classmethod
    def from_loader(
        cls,
        batches_per_epoch: int,
        batch_size: int,
        num_processes: int,
        accumulation: int,
        num_train_epochs: int,
        max_train_steps: int | None,
    ) -> "StepPlan":
        if batches_per_epoch < 1:
            raise TtdnetError(
                f"the training set gives no full batch of {batch_size} per process on {num_processes} "
                "process(es); lower --train_batch_size or use more data"
            )
        steps_per_epoch = math.ceil(batches_per_epoch / accumulation)
        total = max_train_steps if max_train_steps is not None else num_train_epochs * steps_per_epoch
        return cls(
            batches_per_epoch=batches_per_epoch,
            steps_per_epoch=steps_per_epoch,
            max_train_steps=total,
            num_epochs=math.ceil(total / steps_per_epoch),
            total_batch_size=batch_size * num_processes * accumulation,
        )


@dataclasses.dataclass
class LoopResult:
    """What :meth:`TrainingLoop.run` did in this invocation."""

    final_step: int
    resumed_from_step: int
    seconds: float
    samples_per_second: float | None


class TrainingLoop:
    """Prepare, size, resume and run the training of one model in one folder.

    Parameters
    ----------
    accelerator : accelerate.Accelerator
        From :func:`create_accelerator`. Its previously prepared objects are released, so one accelerator
        can run several loops in turn (the folds of cross-validation).
    config : dataclass instance
        Reads ``seed``, ``train_batch_size``, ``num_train_epochs``, ``max_train_steps`` and
        ``gradient_accumulation_steps`` (when it has them), ``lr_scheduler``, ``lr_warmup_steps``,
        ``max_grad_norm``, ``checkpointing_steps``, ``checkpoints_total_limit`` and ``model_selection``.
    folder : path-like
        Where this loop's checkpoints and ``metrics.csv`` live.
    model : torch.nn.Module
        Built and seeded by the stage (frozen parts already :func:`freeze`-d).
    optimizer : torch.optim.Optimizer
        Over ``model``'s trainable parameters (unprepared).
    train_loader : torch.utils.data.DataLoader
        Unprepared; sharded here.
    best : BestOnValidation
        Selection state, registered for checkpointing once by the stage (it outlives the folds).
    name : str
        Progress-bar label.
    metric_columns : sequence of str
        Extra ``metrics.csv`` columns (the loss terms of ``compute_loss`` and the validation metric names).
    log_prefix : str
        Prefix of tracker keys (e.g. ``"inter/sub-01/"``).
    step_offset : int
        Added to the step of every tracker row, so runs made of several loops (folds) log one growing step.
    selected_state : callable, optional
        ``selected_state(unwrapped_model) -> state dict`` that :class:`BestOnValidation` keeps (default the
        model's whole state dict; a stage that trains a LoRA keeps only the trained state).
    eval_loaders : sequence of DataLoader
        Prepared (sharded) here too; available as :attr:`eval_loaders`.
    """

    def __init__(
        self,
        accelerator,
        config,
        folder: str | os.PathLike,
        *,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        train_loader,
        best: BestOnValidation,
        name: str,
        metric_columns: tuple[str, ...] | list[str] = (),
        log_prefix: str = "",
        step_offset: int = 0,
        selected_state: Callable[[nn.Module], dict] | None = None,
        eval_loaders: tuple = (),
    ):
        from diffusers.optimization import get_scheduler

        accelerator.free_memory()
        self.accelerator, self.config, self.folder = accelerator, config, Path(folder)
        self.best, self.name, self.log_prefix, self.step_offset = best, name, log_prefix, step_offset
        self.metric_columns = list(metric_columns)
        self.selected_state = selected_state or (lambda module: module.state_dict())
        self.accumulation = getattr(config, "gradient_accumulation_steps", 1)
        prepared = accelerator.prepare(train_loader, *eval_loaders)
        prepared = prepared if isinstance(prepared, tuple) else (prepared,)
        self.train_loader, self.eval_loaders = prepared[0], prepared[1:]
        self.plan = StepPlan.from_loader(
            len(self.train_loader),
            config.train_batch_size,
            accelerator.num_processes,
            self.accumulation,
            config.num_train_epochs,
            getattr(config, "max_train_steps", None),
        )
        scheduler = get_scheduler(
            config.lr_scheduler,
            optimizer,
            num_warmup_steps=config.lr_warmup_steps * accelerator.num_processes,
            num_training_steps=self.plan.max_train_steps * accelerator.num_processes,
        )
        self.model, self.optimizer, self.scheduler = accelerator.prepare(model, optimizer, scheduler)
        self.parameters = [p for group in optimizer.param_groups for p in group["params"]]
        self.global_step = 0

    @property
    def unwrapped_model(self) -> nn.Module:
        return self.accelerator.unwrap_model(self.model)

    def resume(self, request: str | None) -> int:
        """Load the checkpoint ``request`` names (``--resume_from_checkpoint``); return the step it restores.

        ``latest`` in a folder without checkpoints starts at step 0 and says so.

        Raises
        ------
        CheckpointError
            Nothing matches ``request``, the checkpoint is incomplete, comes from another number of processes,
            lies beyond ``max_train_steps``, or does not fit this model.
        """
        found = resolve_checkpoint(self.folder, request)
        if found is None:
            if request == "latest" and self.accelerator.is_main_process:
                logger.info(f"no checkpoint in {self.folder} yet: starting at step 0")
            return 0
        step, path = found
        verify_checkpoint(path, self.accelerator.num_processes)
        if step > self.plan.max_train_steps:
            raise CheckpointError(
                f"{path} is at step {step}, past the {self.plan.max_train_steps} steps this run is configured for; "
                "raise --max_train_steps / --num_train_epochs or resume from an earlier checkpoint"
            )
        try:
            self.accelerator.load_state(str(path))
        except Exception as error:  # a checkpoint that does not fit the model, or damaged bytes
            raise CheckpointError(
                f"checkpoint {path} could not be loaded ({type(error).__name__}: {str(error).splitlines()[0]}); "
                "it was written for another model or is damaged: resume from an earlier checkpoint"
            ) from error
        if self.accelerator.is_main_process:
            logger.info(f"Resuming from {path} (step {step})")
        self.global_step = step
        return step

    def _log_row(self, epoch: int, values: dict[str, float], metrics: MetricsCSV | None) -> None:
        """One tracker row (all values of this optimizer step) and one CSV row per split."""
        self.accelerator.log(
            {f"{self.log_prefix}{key}": value for key, value in values.items()},
            step=self.step_offset + self.global_step,
        )
        if metrics is None:
            return
        by_split: dict[str, dict[str, float]] = {}
        for key, value in values.items():
            split, metric = key.split("/", 1)
            by_split.setdefault(split, {})[metric] = value
        for split, row in by_split.items():
            metrics.log(self.global_step, {"epoch": epoch, "split": split, **row})

    def _validate(self, validate: Validate, epoch: int, select_by_validation: bool) -> dict[str, float]:
        """One validation at the current step: update the selection, return the metrics, back to training mode."""
        score, metrics = validate(self.global_step, epoch)
        if select_by_validation and self.best.update(
            score, self.global_step, epoch, lambda: self.selected_state(self.unwrapped_model)
        ):
            if self.accelerator.is_main_process:
                logger.info(f"{self.name}: step {self.global_step}, validation {score:.5f} (best so far)")
        self.model.train()
        return metrics

    def run(
        self,
        compute_loss: ComputeLoss,
        *,
        validate: Validate | None = None,
        validation_steps: int | None = None,
        validation_epochs: int | None = None,
        after_optimizer_step: Callable[[], None] | None = None,
        validate_before_training: bool = False,
        divergence_hint: str = "lower --learning_rate",
    ) -> LoopResult:
        """Train to ``plan.max_train_steps``.

        Parameters
        ----------
        compute_loss : callable
            ``compute_loss(batch, epoch) -> (loss, terms)``: the loss to backpropagate for one micro-batch
            (0-based ``epoch``) and a dict of detached scalar tensors to log (``train/<name>``).
        validate : callable, optional
            ``validate(step, epoch) -> (score, metrics)``, called on **every** process, which must all return
            the same values (gather, or compute on the main process with :func:`on_main_process`). ``score``
            drives the selection when ``model_selection`` is ``"validation"``; ``metrics`` maps
            ``"<split>/<name>"`` to floats for the trackers and ``metrics.csv``.
        validation_steps, validation_epochs : int, optional
            Validate every N optimizer steps, or at the end of every N epochs; always at the last step.
        after_optimizer_step : callable, optional
            Called after each optimizer step (e.g. to clamp a parameter).
        validate_before_training : bool
            Also validate the untrained model (step 0) in a fresh run, as the baseline of the curve; it takes part
            in the selection like any other validation.
        divergence_hint : str
            The fix the error for a NaN/Inf loss suggests.
        """
        from tqdm.auto import tqdm

        accelerator, plan, config = self.accelerator, self.plan, self.config
        resumed_from = self.global_step
        first_epoch = resumed_from // plan.steps_per_epoch
        skip_batches = (resumed_from % plan.steps_per_epoch) * self.accumulation
        columns = ["epoch", "split", "loss", "lr", *[c for c in self.metric_columns if c not in ("loss", "lr")]]
        metrics = (  # a fresh start (also `latest` without a checkpoint yet) begins a fresh file
            MetricsCSV(self.folder / "metrics.csv", columns, resume_step=resumed_from or None)
            if accelerator.is_main_process
            else None
        )
        progress = tqdm(
            total=plan.max_train_steps,
            initial=resumed_from,
            desc=self.name,
            disable=not accelerator.is_local_main_process,
        )
        select_by_validation = getattr(config, "model_selection", "validation") == "validation"
        started = time.perf_counter()
        if validate is not None and validate_before_training and resumed_from == 0:
            self._log_row(0, self._validate(validate, 0, select_by_validation), metrics)
        self.model.train()
        for epoch in range(first_epoch, plan.num_epochs):
            if self.global_step >= plan.max_train_steps:
                break
            self.train_loader.set_epoch(epoch)
            loader = self.train_loader
            if epoch == first_epoch and skip_batches:
                loader = accelerator.skip_first_batches(self.train_loader, skip_batches)
            micro_step, window = 0, None
            for batch in loader:
                torch.manual_seed(step_seed(config.seed, self.global_step, micro_step, accelerator.process_index))
                with accelerator.accumulate(self.model):
                    loss, terms = compute_loss(batch, epoch)
                    logged = torch.stack([loss.detach().float(), *[t.detach().float() for t in terms.values()]])
                    logged = accelerator.gather(logged[None]).mean(dim=0) / self.accumulation
                    window = logged if window is None else window + logged
                    accelerator.backward(loss)
                    if accelerator.sync_gradients:
                        accelerator.clip_grad_norm_(self.parameters, config.max_grad_norm)
                    self.optimizer.step()
                    self.scheduler.step()
                    self.optimizer.zero_grad()
                micro_step += 1
                if not accelerator.sync_gradients:
                    continue
                self.global_step += 1
                values = dict(zip(["loss", *terms], (window * self.accumulation / micro_step).tolist()))
                micro_step, window = 0, None
                if not all(math.isfinite(v) for v in values.values()):
                    raise TrainingDivergedError(
                        f"{self.name}: the training loss is {values['loss']} at step {self.global_step}; "
                        f"{divergence_hint}"
                    )
                if after_optimizer_step is not None:
                    after_optimizer_step()
                lr = self.scheduler.get_last_lr()[0]
                row = {f"train/{key}": value for key, value in values.items()} | {"train/lr": lr}
                progress.update(1)
                progress.set_postfix(loss=f"{values['loss']:.4f}", lr=f"{lr:.2e}", epoch=epoch + 1)
                end_of_epoch = self.global_step % plan.steps_per_epoch == 0
                last = self.global_step == plan.max_train_steps
                due = (validation_steps and self.global_step % validation_steps == 0) or (
                    validation_epochs and end_of_epoch and (epoch + 1) % validation_epochs == 0
                )
                if validate is not None and (due or last):
                    row.update(self._validate(validate, epoch + 1, select_by_validation))
                self._log_row(epoch + 1, row, metrics)
                if self.global_step % config.checkpointing_steps == 0:
                    save_checkpoint(accelerator, self.folder, self.global_step, config.checkpoints_total_limit)
                if last:
                    break
        progress.close()
        accelerator.wait_for_everyone()
        seconds = time.perf_counter() - started
        steps = self.global_step - resumed_from
        return LoopResult(
            final_step=self.global_step,
            resumed_from_step=resumed_from,
            seconds=round(seconds, 2),
            samples_per_second=round(steps * plan.total_batch_size / seconds, 2) if seconds > 0 and steps else None,
        )

    def selected_weights(self) -> dict | None:
        """The weights to ship: the best on validation, or None for ``model_selection: last`` (keep current).

        Raises
        ------
        TtdnetError
            Selection by validation, but no validation ran.
        """
        if getattr(self.config, "model_selection", "validation") == "last":
            return None
        if not self.best.weights:
            raise TtdnetError(f"{self.name}: no validation ran, so nothing was selected; validate more often")
        return self.best.weights
