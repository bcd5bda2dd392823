"""What the training commands share about their options: ranges, help groups, renamed names.

Cheap to import: the CLI reads these when it builds a command's parser (see :mod:`ttdnet.config`).
"""

from ttdnet.config import SEED_RANGE


TRAINING_OPTION_RANGES: dict[str, str] = {
    "val_fraction": "[0, 1)",
    "train_batch_size": "[1, inf)",
    "num_train_epochs": "[1, inf)",
    "learning_rate": "(0, inf)",
    "lr_warmup_steps": "[0, inf)",
    "adam_weight_decay": "[0, inf)",
    "max_grad_norm": "(0, inf)",
    "dataloader_num_workers": "[0, inf)",
    "checkpointing_steps": "[1, inf)",
    "checkpoints_total_limit": "[1, inf)",
    "seed": SEED_RANGE,
    "split_seed": SEED_RANGE,
}
"""Merged into each training config's ``OPTION_RANGES``."""

TRAINING_OPTION_GROUPS: dict[str, str] = {
    "dataset_root": "data",
    "subjects": "data",
    "tmin": "data",
    "tmax": "data",
    "val_fraction": "data",
    "split_seed": "data",
    "eeg_cache_dir": "data",
    "dataloader_num_workers": "data",
    "encoder_preset": "model",
    "seed": "optimisation",
    "train_batch_size": "optimisation",
    "num_train_epochs": "optimisation",
    "learning_rate": "optimisation",
    "lr_scheduler": "optimisation",
    "lr_warmup_steps": "optimisation",
    "adam_weight_decay": "optimisation",
    "max_grad_norm": "optimisation",
    "mixed_precision": "optimisation",
    "model_selection": "validation",
    "output_dir": "checkpoints",
    "checkpointing_steps": "checkpoints",
    "checkpoints_total_limit": "checkpoints",
    "resume_from_checkpoint": "checkpoints",
    "overwrite": "checkpoints",
    "report_to": "logging",
    "logging_dir": "logging",
}
"""Merged into each training config's ``OPTION_GROUPS``: the help group of every option they all have."""

EEG_CACHE_HELP = (
    "float32 EEG cache root of the data layer; none: $TTDNET_CACHE_DIR, else $XDG_CACHE_HOME/ttdnet or ~/.cache/ttdnet"
)
"""Help of ``--eeg_cache_dir``, the same in every command that reads EEG through the data layer."""

RENAMED_EEG_CACHE: dict[str, str] = {
    "cache_dir": "--cache_dir is the model-download cache in every command; the float32 EEG cache is --eeg_cache_dir",
}
"""``RENAMED_OPTIONS`` entry of the commands whose EEG cache was called ``--cache_dir``."""
