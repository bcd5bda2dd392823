"""The ``finetune`` protocol of ``ttdnet train-retrieval``: an inter fold's model, fine-tuned on its held-out subject.

For a target subject S the start is the selected model of fold ``inter/sub-SS`` of an earlier ``--protocol
inter`` run (``--finetune_from RUN_DIR``), which never saw S. It is fine-tuned on a fraction of S's training
data, one model per ``--subject_training_ratio``. The fraction is taken by whole training concepts, from those
left after the validation split: the first ``round(ratio · n)`` concepts of a permutation seeded by
``split_seed``, so the subset of a smaller ratio lies inside that of a larger one, and validation (S's held-out
training concepts, the inter run's split) is the same for every ratio. The start model itself is scored as
ratio 0: no fine-tuning, the inter result on S's test set.

Before anything is written every start model is checked against this run: ``RUN_DIR`` is an inter run with a
finished fold for S whose saved weights are those it records; its architecture, window and validation split
options equal this run's; its encoder fits the data's channels, rate and window; and the image features are
those it was trained on (same shape, and the training-split standardisation statistics stored with it).

Folds live in ``output_dir/finetune/sub-SS/ratio-R/`` and train with
:func:`ttdnet.stages.retrieval_training.train_fold`, so checkpoints, resume and several processes work as for
the other protocols; ``ratio-0`` holds only the start model's scores.
"""

import dataclasses
import json
import logging
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Subset

from ttdnet.data import ThingsEEG2Dataset
from ttdnet.data.things_eeg2 import subject_number
from ttdnet.errors import TtdnetError
from ttdnet.io import atomic_write_json
from ttdnet.models.fingerprint import state_fingerprint
from ttdnet.stages.feature_file import FeatureFile
from ttdnet.stages.retrieval_eval import evaluate_split, validation_scores
from ttdnet.stages.retrieval_model import RetrievalModel
from ttdnet.stages.retrieval_persistence import load_retrieval_model
from ttdnet.stages.retrieval_training import (
    Fold,
    _datasets,
    feature_statistics,
    flatten_scores,
    selection_galleries,
    subject_order,
)
from ttdnet.stages.run_folder import CONFIG_NAME, RunFolderError, changed_options, read_saved_config
from ttdnet.stages.training_loop import freeze


logger = logging.getLogger(__name__)

START_MODEL_OPTIONS = (
    "encoder",
    "encoder_preset",
    "encoder_pretrained",
    "proj_dim",
    "image_hidden_dim",
    "layer_mode",
    "single_layer",
    "router_init_logits",
    "router_subject_dropout",
    "router_layer_dropout",
    "router_temperature",
    "shared_head",
    "learn_temperature",
    "init_temperature",
    "tmin",
    "tmax",
    "val_fraction",
    "split_seed",
)
"""Options a fine-tuning run must share with the inter run: they define the start model's architecture and window,
and the validation concepts (which the start model must never have trained on)."""


def concept_subset(concepts: np.ndarray, ratio: float, seed: int) -> np.ndarray:
    """Whole concepts to fine-tune on: the first ``round(ratio · n)`` (at least 1) of a seeded permutation.

    Parameters
    ----------
    concepts : numpy.ndarray of int, shape (n,)
        The training concepts left after the validation split, sorted.
    ratio : float
        In (0, 1]; 1 keeps every concept.
    seed : int
        Seed of the permutation; for one seed the subset of a smaller ratio lies inside that of a larger one.

    Returns
    -------
    numpy.ndarray of int, shape (round(ratio · n),)
        Sorted concept indices.
    """
    order = np.random.default_rng(seed).permutation(np.asarray(concepts))
    count = max(1, int(round(ratio * len(order))))
    return np.sort(order[:count])


def ratio_name(ratio: float) -> str:
    """Folder of a ratio's model: ``ratio-0.25`` (``ratio-0`` for the start model)."""
    return f"ratio-{ratio:g}"


@dataclasses.dataclass(frozen=True)
class StartModel:
    """The checked start of one target subject: an inter fold's selected model.

    Attributes
    ----------
    model_dir : pathlib.Path
        ``RUN_DIR/inter/sub-SS/model``.
    sha256 : str
        :func:`~ttdnet.models.fingerprint.state_fingerprint` of its weights.
    subject_index : dict of int to int
        The inter run's subject numbering of the router's subject-bias rows.
    inter_epochs : int
        ``num_train_epochs`` of the inter run.
    selected_epoch : int
        The epoch the inter fold selected.
    """

    model_dir: Path
    sha256: str
    subject_index: dict[int, int]
    inter_epochs: int
    selected_epoch: int


class FinetuneFold(Fold):
    """The start model of ``subject`` fine-tuned on ``concepts`` (the training concepts of ``ratio``)."""

    def __init__(self, subject: str, ratio: float, root: Path, start: StartModel, concepts: np.ndarray):
        super().__init__("finetune", subject, [subject], root, start.subject_index, name=ratio_name(ratio))
        self.ratio, self.start, self.concepts = ratio, start, concepts

    def training_subset(self, train_set: ThingsEEG2Dataset) -> Subset:
        """The samples of ``train_set`` (the subject's training split) whose concept is in :attr:`concepts`."""
        sample_concepts = train_set.metadata.concept_indices(train_set.partition)[train_set.image_indices]
        return Subset(train_set, np.flatnonzero(np.isin(sample_concepts, self.concepts)).tolist())

    def start_model(self, config, signal: dict, features: FeatureFile, mean, std) -> RetrievalModel:
        """The inter fold's selected model (checked by :func:`finetune_folds`); a frozen encoder stays frozen."""
        model, _ = load_retrieval_model(self.start.model_dir)
        if config.freeze_encoder:
            freeze(model.encoder)
        return model

    def record(self) -> dict:
        return {
            "ratio": self.ratio,
            "start_model": str(self.start.model_dir),
            "start_model_sha256": self.start.sha256,
            "n_train_concepts": len(self.concepts),
            "train_concepts": [int(c) for c in self.concepts],
        }


class StartModelFold(FinetuneFold):
    """Ratio 0: the start model scored on the subject's validation and test sets, without training."""

    def __init__(self, subject: str, root: Path, start: StartModel):
        super().__init__(subject, 0.0, root, start, np.array([], dtype=np.int64))

    def run(self, config, accelerator, best, context: dict) -> dict:
        """Score the start model once on the main process; every process returns ``fold_results.json``."""
        done = self.dir / "fold_results.json"
        if accelerator.is_main_process:
            logger.info(f"{self.prefix}: scoring the start model once, on process {accelerator.process_index}")
            atomic_write_json(done, score_start_model(self, config, context["features"], accelerator))
        accelerator.wait_for_everyone()
        return json.loads(done.read_text())


def score_start_model(fold: StartModelFold, config, features: FeatureFile, accelerator) -> dict:
    """The fold results of the start model: its validation score (as selection sees it) and its test scores."""
    device = accelerator.device
    eval_average = config.test_averaging == "avg_input"
    val_set = _datasets(config, [fold.subject], "val", eval_average)
    test_set = _datasets(config, [fold.subject], "test", eval_average)
    galleries = selection_galleries(config, val_set)
    model, _ = load_retrieval_model(fold.start.model_dir)
    model.to(device)
    validation = None
    if galleries:
        validation = validation_scores(
            model, val_set, features.features["training"], galleries, config.kway, config.topk,
            config.train_batch_size, device,
        )[config.selection_metric]  # fmt: skip
    test_scores = evaluate_split(
        model, test_set, features.features["test"], config.kway, config.topk, config.mc_trials, config.seed,
        config.train_batch_size, device,
    )[subject_number(fold.subject)]  # fmt: skip
    return {
        "subject": fold.subject,
        "protocol": fold.protocol,
        "train_subjects": [],
        "selection": {"rule": "none: the start model, not fine-tuned", "epoch": 0, "validation_score": validation},
        "test": flatten_scores(test_scores),
        "chance": {key: score.chance for key, score in test_scores.items()},
        "n_test_queries": int(len(test_scores["top1"].per_query)),
        "n_train_samples": 0,
        "n_validation_queries": len(val_set),
        "n_validation_galleries": len(galleries),
        "initial_weights_sha256": fold.start.sha256,
        "selected_weights_sha256": state_fingerprint(model),
        "train_seconds": 0.0,
        "steps": 0,
        "num_processes": accelerator.num_processes,
        **fold.record(),
    }


def inter_run_config(run_dir: Path) -> dict:
    """The saved options of ``--finetune_from``, checked to be a ``train-retrieval --protocol inter`` run."""
    path = run_dir / CONFIG_NAME
    if not path.is_file():
        raise TtdnetError(
            f"--finetune_from {run_dir}: no {CONFIG_NAME}, so it is not a run folder of `ttdnet train-retrieval`; "
            "give the output_dir of a --protocol inter run"
        )
    try:
        saved = read_saved_config(path, "train-retrieval")
    except RunFolderError as error:
        raise TtdnetError(
            f"--finetune_from {run_dir}: {path} was not written by `ttdnet train-retrieval`; give the output_dir "
            "of a --protocol inter run"
        ) from error
    if saved.get("protocol") != "inter":
        raise TtdnetError(
            f"--finetune_from {run_dir} is a --protocol {saved.get('protocol')} run; fine-tuning starts from the "
            "folds of a --protocol inter (leave-one-subject-out) run: give the output_dir of one"
        )
    return saved


def check_start_options(saved: dict, config, run_dir: Path) -> None:
    """Refuse options of :data:`START_MODEL_OPTIONS` that differ from the inter run's."""
    # Every option may differ as far as changed_options is concerned: it only lists the differences here.
    differences = changed_options(saved, config, set(saved), f"--finetune_from {run_dir}", "fine-tuned")
    conflicts = {key: pair for key, pair in differences.items() if key in START_MODEL_OPTIONS}
    if conflicts:
        listed = "; ".join(f"{key}: {old!r} -> {new!r}" for key, (old, new) in sorted(conflicts.items()))
        raise TtdnetError(
            f"--finetune_from {run_dir}: the start models were trained with other options ({listed}); the "
            f"architecture, window and validation split come from the inter run: use its values (see "
            f"{run_dir / CONFIG_NAME})"
        )


def load_start_model(
    run_dir: Path, saved: dict, subject: str, config, features: FeatureFile, data: ThingsEEG2Dataset
) -> StartModel:
    """Check the inter fold of ``subject`` against ``data`` (its training split) and ``features``.

    See the module docstring for the checks; each failure is a :class:`~ttdnet.errors.TtdnetError` naming the fix.
    """
    fold_dir = run_dir / "inter" / subject
    done = fold_dir / "fold_results.json"
    if not done.is_file():
        raise TtdnetError(
            f"--finetune_from {run_dir} has no finished inter fold for {subject} (no {done}): finish it with "
            f"`ttdnet train-retrieval --config {run_dir / CONFIG_NAME} --eval_subjects {subject_number(subject)} "
            "--resume_from_checkpoint latest`, or leave the subject out of --eval_subjects"
        )
    inter_result = json.loads(done.read_text())
    model_dir = fold_dir / "model"
    model, _ = load_retrieval_model(model_dir)
    sha256 = state_fingerprint(model)
    if sha256 != inter_result["selected_weights_sha256"]:
        raise TtdnetError(
            f"{model_dir} does not hold the weights {done} records (its selected_weights_sha256); the fold was "
            f"changed after it finished: rerun it, or give another --finetune_from"
        )
    subjects = subject_order(saved.get("subjects"), [inter_result["subject"], *inter_result["train_subjects"]])
    if len(subjects) != model.config["n_subjects"]:
        raise TtdnetError(
            f"{model_dir} has {model.config['n_subjects']} subject rows but its run {run_dir} had subjects "
            f"{subjects}; the fold does not belong to that run: give another --finetune_from"
        )
    model.encoder.signal.check_matches(
        data.ch_names, data.n_times, data.sfreq, f"the data of {subject} in {config.dataset_root} (start model "
        f"{model_dir})",
    )  # fmt: skip
    trained_on = (model.config["n_layers"], model.config["feature_dim"])
    if (features.n_layers, features.dim) != trained_on:
        raise TtdnetError(
            f"--features {config.features} has {features.n_layers} layers of width {features.dim}, but the start "
            f"model {model_dir} was trained on {trained_on[0]} of width {trained_on[1]}; use the inter run's "
            f"feature file ({saved.get('features')})"
        )
    mean, std = feature_statistics(features.features["training"], np.unique(data.image_indices))
    if not (torch.allclose(mean, model.feature_mean, rtol=1e-4, atol=1e-6)
            and torch.allclose(std, model.feature_std, rtol=1e-4, atol=1e-6)):  # fmt: skip
        raise TtdnetError(
            f"--features {config.features} are not the features the start model {model_dir} was trained with "
            f"(their training-split statistics differ from those stored with it); use the inter run's feature "
            f"file ({saved.get('features')})"
        )
    return StartModel(
        model_dir=model_dir,
        sha256=sha256,
        subject_index={subject_number(s): i for i, s in enumerate(subjects)},
        inter_epochs=int(saved["num_train_epochs"]),
        selected_epoch=int(inter_result["selection"]["epoch"]),
    )


def finetune_folds(config, targets: list[str], output_dir: Path, features: FeatureFile) -> list[Fold]:
    """Per target subject: the start model (ratio 0), then one fine-tuning fold per ratio, ascending.

    Raises
    ------
    TtdnetError
        No ``--finetune_from``, a repeated ratio, or a start model that does not fit (see the module docstring).
    """
    if config.finetune_from is None:
        raise TtdnetError(
            "--protocol finetune needs --finetune_from RUN_DIR: the output_dir of a finished --protocol inter run"
        )
    ratios = sorted(config.subject_training_ratio)
    if not ratios or len(set(ratios)) != len(ratios):
        raise TtdnetError(
            f"--subject_training_ratio {config.subject_training_ratio}: give each fraction once (e.g. 0.1 0.5 1.0)"
        )
    run_dir = Path(config.finetune_from)
    saved = inter_run_config(run_dir)
    check_start_options(saved, config, run_dir)
    folds: list[Fold] = []
    for subject in targets:
        split = _datasets(config, [subject], "train", config.train_average_repetitions)
        start = load_start_model(run_dir, saved, subject, config, features, split)
        concepts = np.unique(split.metadata.concept_indices(split.partition)[split.image_indices])
        folds.append(StartModelFold(subject, output_dir, start))
        folds += [
            FinetuneFold(subject, ratio, output_dir, start, concept_subset(concepts, ratio, config.split_seed))
            for ratio in ratios
        ]
    return folds


def start_model_record(config, folds: list[Fold]) -> dict:
    """Where the start models came from, for the protocol record of ``results.json``."""
    models = {fold.subject: fold.start for fold in folds if isinstance(fold, StartModelFold)}
    return {
        "finetune_from": str(config.finetune_from),
        "subject_training_ratios": sorted(config.subject_training_ratio),
        "fine_tuned_on": (
            "that fraction of the target subject's training concepts (whole concepts, a permutation seeded by "
            f"split_seed={config.split_seed}, nested across ratios), never its validation concepts; ratio 0 is "
            "the start model, not fine-tuned"
        ),
        "models": {
            subject: {
                "path": str(start.model_dir),
                "sha256": start.sha256,
                "inter_epochs": start.inter_epochs,
                "inter_selected_epoch": start.selected_epoch,
            }
            for subject, start in models.items()
        },
    }
