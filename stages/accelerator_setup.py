"""The run's ``Accelerator``: built once per training command, with its world size checked.

:func:`create_accelerator` sets trackers, project folders and the seedable sampler, refuses a launch whose
environment announces more processes than accelerate sees, and logs the world size. :func:`on_main_process`
runs work (validation, say) on the main process only and hands every process the result;
:func:`print_json_on_main_process` prints a command's summary once.
"""

import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ttdnet.errors import TtdnetError
from ttdnet.stages.training_logs import tracker_setup


logger = logging.getLogger(__name__)


def create_accelerator(config, gradient_accumulation_steps: int = 1, find_unused_parameters: bool = False):
    """The ``Accelerator`` of a training run, with its world size checked and logged.

    Parameters
    ----------
    config : dataclass instance
        A training config (``output_dir``, ``logging_dir``, ``report_to``, ``mixed_precision``, ``seed``).
    gradient_accumulation_steps : int
    find_unused_parameters : bool
        For DDP: parameters that some steps do not use (as diffusers' SDXL LoRA example sets it).

    Raises
    ------
    TtdnetError
        ``WORLD_SIZE`` says several processes but accelerate sees fewer: each process would train on its own
        and write into the same folder (plain ``torchrun`` on a CPU machine does this).
    """
    from accelerate import Accelerator
    from accelerate.utils import DataLoaderConfiguration, DistributedDataParallelKwargs, ProjectConfiguration

    output_dir = Path(config.output_dir)
    accelerator = Accelerator(
        gradient_accumulation_steps=gradient_accumulation_steps,
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=find_unused_parameters)],
        mixed_precision=config.mixed_precision,
        log_with=tracker_setup(config.report_to),
        project_config=ProjectConfiguration(
            project_dir=str(output_dir), logging_dir=str(output_dir / config.logging_dir)
        ),
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True, data_seed=config.seed),
    )
    declared = int(os.environ.get("WORLD_SIZE", "1"))
    if declared != accelerator.num_processes:
        raise TtdnetError(
            f"the launcher started {declared} processes (WORLD_SIZE={declared}) but accelerate sees "
            f"{accelerator.num_processes}, so each would train alone into {output_dir}. On CPU machines launch with "
            f"`ACCELERATE_USE_CPU=1 torchrun --nproc_per_node {declared} -m ttdnet ...`; on GPUs use "
            "`accelerate launch -m ttdnet ...`"
        )
    if accelerator.is_main_process:
        logger.info(
            f"world size {accelerator.num_processes} ({accelerator.distributed_type.value}), device "
            f"{accelerator.device}, mixed precision {accelerator.mixed_precision}"
        )
    if accelerator.device.type == "cpu" and accelerator.mixed_precision == "bf16" and accelerator.is_main_process:
        logger.warning("bf16 autocast on the CPU can be many times slower than fp32; measure before keeping it")
    return accelerator


def on_main_process(accelerator, function: Callable[[], Any]) -> Any:
    """Run ``function`` on the main process only and give every process its (picklable) result."""
    from accelerate.utils import broadcast_object_list

    result = [function() if accelerator.is_main_process else None]
    if accelerator.num_processes > 1:
        broadcast_object_list(result, from_process=0)
    return result[0]


def print_json_on_main_process(value: Any) -> None:
    """Print ``value`` as indented JSON from the main process only (a training command's closing summary)."""
    from accelerate import PartialState

    if PartialState().is_main_process:
        print(json.dumps(value, indent=2))
