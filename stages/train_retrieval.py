"""``ttdnet train-retrieval``: contrastive EEG-to-image retrieval with honest zero-shot evaluation.

Run it as ``accelerate launch -m ttdnet train-retrieval --config configs/retrieval.yaml`` (or ``ttdnet
train-retrieval ...`` on one device). Protocols (see docs/retrieval.md):

* ``intra``: one model per subject, trained on that subject's training split;
* ``inter`` (leave-one-subject-out): per held-out subject, a **freshly initialised** model (the same seed for
  every fold) trained on the other subjects' training splits;
* ``finetune``: per target subject and ``--subject_training_ratio``, the selected model of an inter run's fold
  for that subject (``--finetune_from``), fine-tuned on that fraction of the subject's training concepts.

Model selection uses the validation split only (held-out *training concepts*, scored on galleries of one image
per concept like the test gallery) or the last epoch; the test set is scored once, at the end of a fold, with
the selected weights. Per-epoch test curves can be logged (``--log_test_curves``); they are labelled
``test_curve_not_for_selection`` and never read by the selection code.

Outputs in ``output_dir``: ``results.json``, ``results.csv``, ``results.md`` (protocol next to the numbers),
``config.yaml``, ``run_history.jsonl``, and per fold ``<protocol>/sub-XX/`` (``finetune/sub-XX/ratio-R/``) with
``model/`` (selected weights), ``model-last/``, ``metrics.csv``, ``checkpoint-N/`` and ``fold_results.json`` (a
finished fold is reused on resume).
"""

import argparse
import dataclasses
from typing import ClassVar, Literal

from ttdnet.command import Command
from ttdnet.config import LazyChoices
from ttdnet.stages.training_options import (
    EEG_CACHE_HELP,
    RENAMED_EEG_CACHE,
    TRAINING_OPTION_GROUPS,
    TRAINING_OPTION_RANGES,
)


DEFAULT_KWAY = (2, 4, 10, 50, 100, 200)
"""``--kway`` when none is given; the sizes above the test gallery are skipped, and the results list them."""
DEFAULT_TOPK = (1, 5)
"""``--topk`` when none is given; treated like :data:`DEFAULT_KWAY`."""


@dataclasses.dataclass
class RetrievalConfig:
    """Options of ``ttdnet train-retrieval``. Flag names follow diffusers' training scripts."""

    OPTION_RANGES: ClassVar[dict[str, str]] = {
        **TRAINING_OPTION_RANGES,
        "tmin": "(-inf, inf)",
        "tmax": "(-inf, inf)",
        "router_init_logits": "(-inf, inf)",
        "proj_dim": "[1, inf)",
        "image_hidden_dim": "[1, inf)",
        "router_subject_dropout": "[0, 1]",
        "router_layer_dropout": "[0, 1)",
        "router_temperature": "(0, inf)",
        "init_temperature": "(0, inf)",
        "mmd_epochs": "[0, inf)",
        "mmd_weight_start": "[0, 1]",
        "mmd_weight_end": "[0, 1]",
        "smooth_prob": "[0, 1]",
        "smooth_kernel": "[1, inf)",
        "smooth_sigma": "(0, inf)",
        "validation_epochs": "[1, inf)",
        "kway": "[2, inf)",
        "topk": "[1, inf)",
        "mc_trials": "[0, inf)",
        "subject_training_ratio": "(0, 1]",
    }
    OPTION_GROUPS: ClassVar[dict[str, str]] = {
        **TRAINING_OPTION_GROUPS,
        **dict.fromkeys(
            (
                "features", "eval_subjects", "channels", "train_average_repetitions", "test_averaging", "protocol",
                "finetune_from", "subject_training_ratio",
            ),
            "data",
        ),
        **dict.fromkeys(
            (
                "encoder", "encoder_pretrained", "freeze_encoder", "proj_dim", "image_hidden_dim", "layer_mode",
                "single_layer", "router_init_logits", "router_subject_dropout", "router_layer_dropout",
                "router_temperature", "image_activation", "shared_head", "learn_temperature", "init_temperature",
            ),
            "model",
        ),
        **dict.fromkeys(
            ("mmd_epochs", "mmd_weight_start", "mmd_weight_end", "smooth_prob", "smooth_kernel", "smooth_sigma"),
            "optimisation",
        ),
        **dict.fromkeys(
            ("selection_metric", "validation_epochs", "log_test_curves", "kway", "topk", "mc_trials"), "validation"
        ),
    }  # fmt: skip
    RENAMED_OPTIONS: ClassVar[dict[str, str]] = {
        **RENAMED_EEG_CACHE,
        "encoder_size": "--encoder_size is now --encoder_preset (default or tiny), as in pretrain and train-bridge",
    }

    # Data.
    dataset_root: str | None = dataclasses.field(default=None, metadata={"help": "THINGS-EEG2 root"})
    features: str | None = dataclasses.field(
        default=None, metadata={"help": "image feature file from `ttdnet features` (or your own, same format)"}
    )
    subjects: list[str] | None = dataclasses.field(
        default=None, metadata={"help": "subjects taking part (e.g. 1 2 or sub-01); default all in the root"}
    )
    eval_subjects: list[str] | None = dataclasses.field(
        default=None, metadata={"help": "subjects to run folds for (intra: train+test; inter: held out); default all"}
    )
    channels: list[str] | None = dataclasses.field(default=None, metadata={"help": "channel names; default all"})
    tmin: float | None = dataclasses.field(default=None, metadata={"help": "window start in seconds (inclusive)"})
    tmax: float | None = dataclasses.field(default=None, metadata={"help": "window end in seconds (exclusive)"})
    train_average_repetitions: bool = dataclasses.field(
        default=True, metadata={"help": "train on the mean of the 4 repetitions (else one sample per repetition)"}
    )
    test_averaging: Literal["avg_input", "avg_embed"] = dataclasses.field(
        default="avg_input",
        metadata={"help": "avg_input: average test repetitions then encode; avg_embed: encode each, average"},
    )
    val_fraction: float = dataclasses.field(
        default=0.1, metadata={"help": "fraction of training concepts held out for validation (model selection)"}
    )
    split_seed: int = dataclasses.field(default=0, metadata={"help": "seed of the validation split"})
    eeg_cache_dir: str | None = dataclasses.field(default=None, metadata={"help": EEG_CACHE_HELP})
    protocol: Literal["intra", "inter", "finetune"] = dataclasses.field(
        default="intra",
        metadata={
            "help": "intra: one model per subject; inter: leave-one-subject-out; finetune: an inter fold's model "
            "(--finetune_from) fine-tuned on its held-out subject's training data"
        },
    )
    finetune_from: str | None = dataclasses.field(
        default=None,
        metadata={
            "help": "finetune: the output_dir of a finished --protocol inter run; the target subject S starts "
            "from its inter/sub-SS/model"
        },
    )
    subject_training_ratio: list[float] = dataclasses.field(
        default_factory=lambda: [1.0],
        metadata={
            "help": "finetune: fractions of the target's training concepts to fine-tune on, one model each "
            "(seeded by split_seed, nested; e.g. 0.1 0.25 0.5 1.0)"
        },
    )
    # Model.
    encoder: str = dataclasses.field(
        default="eegproject",
        metadata={
            "help": "EEG encoder from the registry (ttdnet.models.registry)",
            "choices": LazyChoices("ttdnet.models.registry:encoder_names"),
        },
    )
    encoder_preset: Literal["default", "tiny"] = dataclasses.field(
        default="default", metadata={"help": "the registry's default or tiny (tests) architecture of --encoder"}
    )
    encoder_pretrained: str | None = dataclasses.field(
        default=None,
        metadata={"help": "inceptsad: a Stage A save_pretrained folder (output_dir/encoder) to start from"},
    )
    freeze_encoder: bool = dataclasses.field(default=False, metadata={"help": "keep the EEG encoder frozen"})
    proj_dim: int = dataclasses.field(default=512, metadata={"help": "width of the shared embedding space"})
    image_hidden_dim: int = dataclasses.field(default=1024, metadata={"help": "hidden width of the image projector"})
    layer_mode: Literal["router", "single", "uniform", "concat"] = dataclasses.field(
        default="router",
        metadata={"help": "subject-aware softmax router over layers, one layer, equal weights, or all side by side"},
    )
    single_layer: int = dataclasses.field(default=-1, metadata={"help": "layer index for --layer_mode single"})
    router_init_logits: list[float] | None = dataclasses.field(
        default=None, metadata={"help": "initial global prior logits, one per layer (default zeros)"}
    )
    router_subject_dropout: float = dataclasses.field(default=0.3, metadata={"help": "drop a sample's subject bias"})
    router_layer_dropout: float = dataclasses.field(default=0.1, metadata={"help": "drop a layer (logit -> -inf)"})
    router_temperature: float = dataclasses.field(default=1.0, metadata={"help": "router softmax temperature"})
    image_activation: Literal["none", "gelu"] = dataclasses.field(
        default="none", metadata={"help": "nonlinearity between the image projector's two linear layers"}
    )
    shared_head: bool = dataclasses.field(default=True, metadata={"help": "shared linear head on both towers"})
    learn_temperature: bool = dataclasses.field(default=True, metadata={"help": "learn the InfoNCE temperature"})
    init_temperature: float = dataclasses.field(default=0.07, metadata={"help": "initial InfoNCE temperature"})
    # Loss and augmentation.
    mmd_epochs: int = dataclasses.field(default=20, metadata={"help": "epochs of the MMD warm stage (0 = off)"})
    mmd_weight_start: float = dataclasses.field(default=0.9, metadata={"help": "MMD weight at epoch 1"})
    mmd_weight_end: float = dataclasses.field(default=0.2, metadata={"help": "MMD weight at epoch mmd_epochs"})
    smooth_prob: float = dataclasses.field(default=0.3, metadata={"help": "probability of Gaussian smoothing"})
    smooth_kernel: int = dataclasses.field(default=5, metadata={"help": "smoothing kernel size (odd, samples)"})
    smooth_sigma: float = dataclasses.field(default=1.0, metadata={"help": "smoothing kernel sigma (samples)"})
    # Optimisation.
    output_dir: str = dataclasses.field(default="outputs/retrieval", metadata={"help": "run folder"})
    seed: int = dataclasses.field(default=42, metadata={"help": "seeds init (the same for every fold) and data order"})
    train_batch_size: int = dataclasses.field(default=1024, metadata={"help": "batch size per device"})
    num_train_epochs: int = dataclasses.field(default=100, metadata={"help": "epochs per fold"})
    learning_rate: float = dataclasses.field(default=1e-4, metadata={"help": "AdamW learning rate"})
    adam_weight_decay: float = dataclasses.field(default=1e-4, metadata={"help": "AdamW weight decay"})
    lr_scheduler: Literal["constant", "constant_with_warmup", "cosine", "linear"] = dataclasses.field(
        default="constant", metadata={"help": "learning-rate schedule (after the linear warm-up)"}
    )
    lr_warmup_steps: int = dataclasses.field(default=0, metadata={"help": "linear warm-up steps"})
    max_grad_norm: float = dataclasses.field(default=1.0, metadata={"help": "gradient clipping norm"})
    mixed_precision: Literal["no", "fp16", "bf16"] | None = dataclasses.field(
        default=None, metadata={"help": "default: the accelerate config's"}
    )
    dataloader_num_workers: int = dataclasses.field(default=0, metadata={"help": "DataLoader worker processes"})
    # Selection, evaluation, checkpoints, logging.
    model_selection: Literal["validation", "last"] = dataclasses.field(
        default="validation", metadata={"help": "best validation score (held-out training concepts) or last epoch"}
    )
    selection_metric: str = dataclasses.field(
        default="top1",
        metadata={
            "help": "validation score to maximise, on galleries of one image per held-out concept: top1 (K-way, "
            "K = held-out concepts), top5, or an exact k-way score such as top1_200way (needs K >= 200)"
        },
    )
    validation_epochs: int = dataclasses.field(default=1, metadata={"help": "validate every N epochs"})
    log_test_curves: bool = dataclasses.field(
        default=False, metadata={"help": "also log per-epoch test scores, labelled test_curve (never used to select)"}
    )
    kway: list[int] = dataclasses.field(
        default_factory=lambda: list(DEFAULT_KWAY),
        metadata={
            "help": "k-way sizes, each at most the test gallery's size (by default those of 2 4 10 50 100 200 that "
            "fit; the results list the others)"
        },
    )
    topk: list[int] = dataclasses.field(
        default_factory=lambda: list(DEFAULT_TOPK),
        metadata={"help": "top-t cut-offs, each at most the test gallery's size (default 1 5, like --kway)"},
    )
    mc_trials: int = dataclasses.field(
        default=100, metadata={"help": "seeded Monte-Carlo k-way draws per query at test time (0 = exact only)"}
    )
    checkpointing_steps: int = dataclasses.field(default=500, metadata={"help": "save a checkpoint every N steps"})
    checkpoints_total_limit: int | None = dataclasses.field(default=2, metadata={"help": "checkpoints kept per fold"})
    resume_from_checkpoint: str | None = dataclasses.field(
        default=None,
        metadata={
            "help": "'latest' (finished folds are reused, each other fold resumes from its newest checkpoint), or the "
            "path of one fold's checkpoint-N folder (a bare checkpoint-N name when the run has one fold)"
        },
    )
    overwrite: bool = dataclasses.field(
        default=False, metadata={"help": "delete the contents of a previous run in output_dir and start again"}
    )
    report_to: str = dataclasses.field(
        default="tensorboard",
        metadata={"help": "tensorboard, wandb (offline without your own W&B login or WANDB_MODE), all or none"},
    )
    logging_dir: str = dataclasses.field(default="logs", metadata={"help": "tracker folder inside output_dir"})


def run(config: RetrievalConfig, namespace: argparse.Namespace) -> int:
    from ttdnet.stages.accelerator_setup import print_json_on_main_process
    from ttdnet.stages.retrieval_training import train

    print_json_on_main_process(train(config)["summary"])
    return 0


COMMAND = Command(
    name="train-retrieval",
    summary="Contrastive EEG-to-image retrieval (intra / leave-one-subject-out / fine-tune), selected on validation",
    config_class=RetrievalConfig,
    run=run,
    description=(
        "Train an EEG encoder against cached image features (ttdnet features) with symmetric InfoNCE (optional MMD "
        "warm stage), select on held-out training concepts, score the 200 test images once. Run with `accelerate "
        "launch -m ttdnet train-retrieval --config configs/retrieval.yaml`. Writes results.json/.csv/.md."
    ),
)
