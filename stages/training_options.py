"""Value ranges of the options every training command shares (cheap to import: the CLI reads them for --help)."""

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
}
"""Merged into each training config's ``OPTION_RANGES`` (see :mod:`ttdnet.config`)."""
