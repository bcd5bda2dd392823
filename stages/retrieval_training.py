"""The folds, the loss and the driver behind ``ttdnet train-retrieval`` (options in ``train_retrieval.py``).

Each fold trains a freshly initialised model (the same seed for every fold) with the shared training loop
(:mod:`ttdnet.stages.training_loop`) in its own folder, ``output_dir/<protocol>/<subject>``; the folds of
``finetune`` start from an inter run's models instead (:mod:`ttdnet.stages.retrieval_finetune`). The loss is
computed on the global batch across processes (:mod:`ttdnet.stages.contrastive`). Validation and the final
test run on the main process only, once; every process receives the validation score, and the others read
the fold's results from disk.
"""

import json
import logging
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ttdnet.data import ThingsEEG2Dataset
from ttdnet.data.things_eeg2 import subject_name, subject_number
from ttdnet.errors import TtdnetError
from ttdnet.io import atomic_write_json
from ttdnet.models.fingerprint import state_fingerprint
from ttdnet.stages.accelerator_setup import on_main_process
from ttdnet.stages.checkpoints import CHECKPOINT_PATTERN, CheckpointError
from ttdnet.stages.contrastive import gather_batch, info_nce, mmd_rbf, mmd_weight
from ttdnet.stages.feature_file import FeatureFile, read_feature_file
from ttdnet.stages.retrieval_augment import gaussian_kernel, gaussian_smooth
from ttdnet.stages.retrieval_eval import (
    check_selection_metric,
    check_test_gallery,
    evaluate_split,
    validation_galleries,
    validation_scores,
)
from ttdnet.stages.retrieval_model import RetrievalModel
from ttdnet.stages.retrieval_persistence import save_retrieval_model
from ttdnet.stages.retrieval_reports import protocol_record, summarise, summarise_by_ratio, write_reports
from ttdnet.stages.selection import BestOnValidation
from ttdnet.stages.training_loop import TrainingLoop, freeze


logger = logging.getLogger(__name__)

METRIC_COLUMNS = ("infonce", "mmd", "mmd_weight", "logit_scale", "top1", "top5", "selection_score")


def feature_statistics(features: torch.Tensor, rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-layer, per-dimension mean and std of ``features[rows]`` (float32 ``(n_layers, dim)`` each).

    Dimensions with no spread (zero padding) get std 1, so they stay 0 after standardisation.
    """
    selected = features[torch.as_tensor(rows)].float()
    mean = selected.mean(dim=0)
    std = selected.std(dim=0)
    std = torch.where(std > 1e-6, std, torch.ones_like(std))
    return mean, std


def flatten_scores(scores: dict) -> dict:
    """``{key: value}`` plus ``{key}_ci95`` lists for Monte-Carlo keys."""
    flat = {}
    for key, score in scores.items():
        flat[key] = score.value
        if score.ci95 is not None:
            flat[f"{key}_ci95"] = [float(score.ci95[0]), float(score.ci95[1])]
    return flat


class Fold:
    """One model: its training subjects, its evaluation subject, its folder ``root/<protocol>/<subject>[/<name>]``
    and ``subject_index`` (subject number -> row of the router's subject-bias table).

    The methods are what a protocol may change: the training samples, the start model, extra fields of
    ``fold_results.json`` and how the fold runs (:mod:`ttdnet.stages.retrieval_finetune` overrides them).
    """

    def __init__(
        self,
        protocol: str,
        subject: str,
        train_subjects: list[str],
        root: Path,
        subject_index: dict[int, int],
        name: str | None = None,
    ):
        self.protocol, self.subject, self.train_subjects = protocol, subject, train_subjects
        self.subject_index = subject_index
        self.dir = root / protocol / subject if name is None else root / protocol / subject / name
        self.prefix = f"{protocol}/{subject}" if name is None else f"{protocol}/{subject}/{name}"

    def training_subset(self, train_set: ThingsEEG2Dataset) -> Dataset:
        """The samples this fold trains on (all of ``train_set``)."""
        return train_set

    def start_model(self, config, signal: dict, features: FeatureFile, mean, std) -> RetrievalModel:
        """A freshly initialised model (the caller seeds torch first: the same weights for every fold)."""
        return build_model(
            config, signal, features.n_layers, features.dim, len(self.subject_index), mean, std,
            f"THINGS-EEG2 data in {config.dataset_root}",
        )  # fmt: skip

    def record(self) -> dict:
        """Extra JSON-ready fields of ``fold_results.json`` (none)."""
        return {}

    def run(self, config, accelerator, best: BestOnValidation, context: dict) -> dict:
        """Train, select and test the fold (:func:`train_fold`); return its results."""
        return train_fold(self, config, accelerator, best, context)


def subject_order(subjects: list | None, available: list[str]) -> list[str]:
    """The subjects of a run, in the order that numbers the router's subject rows: as given, else sorted."""
    return [subject_name(s) for s in subjects] if subjects else sorted(available)


def make_folds(config, all_subjects: list[str], output_dir: Path, features: FeatureFile) -> list[Fold]:
    """The folds of ``config.protocol`` for ``--eval_subjects`` (checked; nothing is written)."""
    evaluated = [subject_name(s) for s in config.eval_subjects] if config.eval_subjects else all_subjects
    unknown = [s for s in evaluated if s not in all_subjects]
    if unknown:
        raise TtdnetError(f"--eval_subjects {unknown} are not among the subjects {all_subjects}")
    if config.finetune_from is not None and config.protocol != "finetune":
        raise TtdnetError(
            f"--finetune_from is read by --protocol finetune only (this run is {config.protocol}); "
            "add --protocol finetune or drop --finetune_from"
        )
    if config.protocol == "finetune":
        from ttdnet.stages.retrieval_finetune import finetune_folds

        return finetune_folds(config, evaluated, output_dir, features)
    subject_index = {subject_number(s): i for i, s in enumerate(all_subjects)}
    folds = []
    for subject in evaluated:
        if config.protocol == "intra":
            folds.append(Fold("intra", subject, [subject], output_dir, subject_index))
        else:
            others = [s for s in all_subjects if s != subject]
            if not others:
                raise TtdnetError("the inter (leave-one-subject-out) protocol needs at least two subjects")
            folds.append(Fold("inter", subject, others, output_dir, subject_index))
    return folds


def fold_resume_requests(request: str | None, folds: list[Fold]) -> dict[str, str | None]:
    """``--resume_from_checkpoint`` for each fold (by prefix).

    ``latest`` (or None) applies to every fold. A checkpoint path applies to the fold whose folder holds it;
    every other fold resumes as with ``latest``. A bare ``checkpoint-N`` name is accepted when the run has one
    fold. Anything else is an error: a typo must never retrain a fold from scratch.
    """
    if request is None or request == "latest":
        return {fold.prefix: request for fold in folds}
    path = Path(request)
    if CHECKPOINT_PATTERN.match(request) and not path.exists():
        if len(folds) == 1:
            return {folds[0].prefix: request}
        raise CheckpointError(
            f"--resume_from_checkpoint {request}: this run has {len(folds)} folds; give the path of a fold's "
            f"checkpoint (e.g. {folds[0].dir / request}) or latest"
        )
    for fold in folds:
        if path.parent.resolve() == fold.dir.resolve():
            return {other.prefix: (request if other is fold else "latest") for other in folds}
    raise CheckpointError(
        f"--resume_from_checkpoint {request} is not a checkpoint of any fold of this run; folds keep theirs in "
        f"{', '.join(str(fold.dir) for fold in folds)} (or give latest)"
    )


def build_model(config, signal: dict, n_layers: int, dim: int, n_subjects: int, mean, std, data_source: str):
    """A freshly initialised retrieval model (the caller seeds torch first); a frozen encoder is :func:`freeze`-d."""
    from ttdnet.models import SignalSpec
    from ttdnet.models.registry import build_encoder, build_pretrained_encoder

    try:
        if config.encoder_pretrained is not None:
            encoder = build_pretrained_encoder(config.encoder, config.encoder_pretrained, signal, data_source)
        else:
            encoder = build_encoder(config.encoder, signal, config.encoder_preset)
    except KeyError as error:
        raise TtdnetError(str(error)) from error
    SignalSpec.infer(**signal)
    model = RetrievalModel(
        encoder,
        config.encoder,
        n_layers=n_layers,
        feature_dim=dim,
        n_subjects=n_subjects,
        proj_dim=config.proj_dim,
        image_hidden_dim=config.image_hidden_dim,
        layer_mode=config.layer_mode,
        single_layer=config.single_layer,
        router_init_logits=config.router_init_logits,
        router_subject_dropout=config.router_subject_dropout,
        router_layer_dropout=config.router_layer_dropout,
        router_temperature=config.router_temperature,
        image_activation=config.image_activation,
        shared_head=config.shared_head,
        learn_temperature=config.learn_temperature,
        init_temperature=config.init_temperature,
        feature_mean=mean,
        feature_std=std,
    )
    if config.freeze_encoder:
        freeze(model.encoder)
    return model


def _datasets(config, subjects: list[str], split: str, average: bool) -> ThingsEEG2Dataset:
    return ThingsEEG2Dataset(
        config.dataset_root,
        split=split,
        subjects=subjects,
        channels=config.channels,
        tmin=config.tmin,
        tmax=config.tmax,
        average_repetitions=average,
        val_fraction=config.val_fraction,
        split_seed=config.split_seed,
        cache_dir=config.eeg_cache_dir,
    )


def selection_galleries(config, val_set: ThingsEEG2Dataset) -> list[np.ndarray]:
    """The validation galleries of a fold, checked to yield ``--selection_metric``.

    With ``--model_selection last`` validation is only logged, so a split too small to rank gives no galleries.
    """
    try:
        galleries = validation_galleries(val_set)
    except TtdnetError:
        if config.model_selection == "validation":
            raise
        return []
    check_selection_metric(config.selection_metric, galleries, config.kway, config.topk)
    return galleries


def train_fold(fold: Fold, config, accelerator, best: BestOnValidation, context: dict) -> dict:
    """Train, select and test one fold; return its results (also written to ``fold.dir/fold_results.json``)."""
    from accelerate.utils import set_seed

    features: FeatureFile = context["features"]
    subject_index = fold.subject_index
    device = accelerator.device
    eval_average = config.test_averaging == "avg_input"
    with accelerator.main_process_first():
        split_set = _datasets(config, fold.train_subjects, "train", config.train_average_repetitions)
        val_set = _datasets(config, fold.train_subjects, "val", eval_average)
        test_set = _datasets(config, [fold.subject], "test", eval_average)
    train_set = fold.training_subset(split_set)
    galleries = selection_galleries(config, val_set)
    signal = {
        "chs_info": [{"ch_name": n} for n in split_set.ch_names],
        "n_times": split_set.n_times,
        "sfreq": split_set.sfreq,
    }
    mean, std = feature_statistics(features.features["training"], np.unique(split_set.image_indices))

    set_seed(config.seed)  # the same fresh initialisation for every fold
    model = fold.start_model(config, signal, features, mean, std)
    init_fingerprint = state_fingerprint(model)
    train_loader = DataLoader(
        train_set,
        batch_size=config.train_batch_size,
        shuffle=True,
        drop_last=len(train_set) >= config.train_batch_size,
        num_workers=config.dataloader_num_workers,
    )
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=config.adam_weight_decay)
    best.reset()
    loop = TrainingLoop(
        accelerator,
        config,
        fold.dir,
        model=model,
        optimizer=optimizer,
        train_loader=train_loader,
        best=best,
        name=f"{fold.prefix} steps",
        metric_columns=METRIC_COLUMNS,
        log_prefix=f"{fold.prefix}/",
        step_offset=context["step_offset"],
    )
    loop.resume(context["resume_requests"][fold.prefix])
    unwrapped: RetrievalModel = loop.unwrapped_model
    features_train = features.features["training"].to(device)
    features_test = features.features["test"]
    lookup = torch.full((max(subject_index) + 1,), -1, dtype=torch.long, device=device)
    for number, index in subject_index.items():
        lookup[number] = index

    def compute_loss(batch, epoch):
        weight = mmd_weight(epoch + 1, config.mmd_epochs, config.mmd_weight_start, config.mmd_weight_end)
        eeg = gaussian_smooth(batch.eeg, config.smooth_prob, config.smooth_kernel, config.smooth_sigma)
        z_eeg, z_image, logit_scale = loop.model(
            eeg, features_train[batch.image_index.to(device)], lookup[batch.subject.to(device)]
        )
        z_eeg, z_image = gather_batch(z_eeg.float()), gather_batch(z_image.float())
        image_ids = gather_batch(batch.image_index.to(device))
        contrastive = info_nce(z_eeg, z_image, logit_scale.float(), image_ids)
        mmd = mmd_rbf(z_eeg, z_image) if weight > 0 else contrastive.new_zeros(())
        terms = {"infonce": contrastive, "mmd": mmd, "mmd_weight": mmd.new_tensor(weight), "logit_scale": logit_scale}
        return weight * mmd + (1 - weight) * contrastive, terms

    def clamp_temperature():
        if config.learn_temperature:
            with torch.no_grad():
                unwrapped.logit_scale.clamp_(0, np.log(100.0))

    def score_validation(step):
        logger.info(f"{fold.prefix}: validation at step {step} on process {accelerator.process_index}")
        values = validation_scores(
            unwrapped, val_set, features_train, galleries, config.kway, config.topk, config.train_batch_size, device
        )
        out = {f"val/{key}": values[key] for key in ("top1", "top5") if key in values}
        out["val/selection_score"] = values[config.selection_metric]
        if config.log_test_curves:  # logged under its own label, for inspection only; never read by the selection
            curve = evaluate_split(
                unwrapped, test_set, features_test, [], config.topk, 0, config.seed, config.train_batch_size, device
            )[subject_number(fold.subject)]
            out |= {
                f"test_curve_not_for_selection/{key}": curve[key].value for key in ("top1", "top5") if key in curve
            }
        return values[config.selection_metric], out

    def validate(step, epoch):  # on the main process; every process receives the score
        return on_main_process(accelerator, lambda: score_validation(step))

    result = loop.run(
        compute_loss,
        validate=validate if galleries else None,
        validation_epochs=config.validation_epochs,
        after_optimizer_step=clamp_temperature,
        divergence_hint=f"[{fold.prefix}] lower --learning_rate",
    )
    selected_weights = loop.selected_weights()
    if selected_weights is None:
        selected = {"rule": "last epoch", "epoch": loop.plan.num_epochs, "validation_score": None}
    else:
        selected = {
            "rule": f"best validation {config.selection_metric} (held-out training concepts)",
            "epoch": best.epoch,
            "validation_score": best.value,
        }
    done = fold.dir / "fold_results.json"
    if accelerator.is_main_process:  # the test set is scored once, with the selected weights
        last_weights = {key: value.detach().cpu().clone() for key, value in unwrapped.state_dict().items()}
        if selected_weights is not None:
            unwrapped.load_state_dict(selected_weights)
        logger.info(f"{fold.prefix}: scoring the test set once, on process {accelerator.process_index}")
        test_scores = evaluate_split(
            unwrapped, test_set, features_test, config.kway, config.topk, config.mc_trials, config.seed,
            config.train_batch_size, device,
        )[subject_number(fold.subject)]  # fmt: skip
        provenance = {"fold": fold.prefix, "selected": selected, "feature_file": str(features.path)}
        fold_result = {
            "subject": fold.subject,
            "protocol": fold.protocol,
            "train_subjects": fold.train_subjects,
            "selection": selected,
            "test": flatten_scores(test_scores),
            "chance": {key: score.chance for key, score in test_scores.items()},
            "n_test_queries": int(len(test_scores["top1"].per_query)),
            "n_train_samples": len(train_set),
            "n_validation_queries": len(val_set),
            "n_validation_galleries": len(galleries),
            "initial_weights_sha256": init_fingerprint,
            "selected_weights_sha256": state_fingerprint(unwrapped),
            "train_seconds": result.seconds,
            "steps": result.final_step,
            "num_processes": accelerator.num_processes,
            "total_batch_size": loop.plan.total_batch_size,
            **fold.record(),
        }
        save_retrieval_model(unwrapped, fold.dir / "model", provenance)
        unwrapped.load_state_dict(last_weights)
        save_retrieval_model(unwrapped, fold.dir / "model-last", {**provenance, "selected": {"rule": "last epoch"}})
        atomic_write_json(done, fold_result)
    accelerator.wait_for_everyone()
    return json.loads(done.read_text())


def train(config) -> dict:
    """Run every fold of ``config.protocol``; return ``{"protocol", "subjects", "summary"}`` (also written)."""
    from accelerate.utils import set_seed

    from ttdnet.config import config_to_dict
    from ttdnet.data import ThingsEEG2Layout
    from ttdnet.stages.accelerator_setup import create_accelerator
    from ttdnet.stages.run_folder import MAY_CHANGE_ON_RESUME, open_run_folder
    from ttdnet.stages.training_logs import init_trackers

    logging.basicConfig(format="%(asctime)s - %(levelname)s - %(name)s - %(message)s", level=logging.INFO)
    if config.dataset_root is None:
        raise TtdnetError("no data: give --dataset_root (a THINGS-EEG2 root)")
    if config.features is None:
        raise TtdnetError("no image features: give --features FILE (made by `ttdnet features`)")
    features = read_feature_file(config.features)
    output_dir = Path(config.output_dir)
    layout = ThingsEEG2Layout.discover(config.dataset_root)
    all_subjects = subject_order(config.subjects, layout.subjects)
    probe = _datasets(config, all_subjects[:1], "test", True)
    for split in ("training", "test"):
        features.check_paths(split, probe.metadata.relative_paths(split))
    not_computed = check_test_gallery(config.kway, config.topk, len(features.paths["test"]))
    folds = make_folds(config, all_subjects, output_dir, features)
    resume_requests = fold_resume_requests(config.resume_from_checkpoint, folds)

    if config.smooth_prob > 0:
        gaussian_kernel(config.smooth_kernel, config.smooth_sigma)  # an even kernel size is an error, now
    for fold in folds:  # check every fold's validation split before anything is written
        selection_galleries(
            config, _datasets(config, fold.train_subjects, "val", config.test_averaging == "avg_input")
        )
    may_change = MAY_CHANGE_ON_RESUME | {"eval_subjects", "log_test_curves", "subject_training_ratio"}
    run = open_run_folder(config, "train-retrieval", may_change)
    accelerator = create_accelerator(config)
    run.commit(accelerator, config)
    set_seed(config.seed)
    best = BestOnValidation(mode="max")
    accelerator.register_for_checkpointing(best)
    if accelerator.is_main_process:
        init_trackers(accelerator, "ttdnet-retrieval", config_to_dict(config))
    context = {"features": features, "resume_requests": resume_requests}
    results, step_offset = [], 0
    for fold in folds:
        done = fold.dir / "fold_results.json"
        explicit = resume_requests[fold.prefix] not in (None, "latest")
        if config.resume_from_checkpoint is not None and done.is_file() and not explicit:
            if accelerator.is_main_process:
                logger.info(f"[{fold.prefix}] finished earlier; reusing {done}")
            result = json.loads(done.read_text())
        else:
            result = fold.run(config, accelerator, best, {**context, "step_offset": step_offset})
        results.append(result)
        step_offset += result["steps"]  # trackers see one growing step across folds
    record = {**protocol_record(config, features, probe), **not_computed}
    if config.protocol == "finetune":
        from ttdnet.stages.retrieval_finetune import start_model_record

        record["start_models"] = start_model_record(config, folds)
    record["infonce_negatives"] = (
        f"the global batch ({config.train_batch_size} per process x {accelerator.num_processes} process(es)); "
        "pairs that hold the same image are masked out"
    )
    summary = summarise_by_ratio(results) if config.protocol == "finetune" else summarise(results)
    if accelerator.is_main_process:
        write_reports(output_dir, record, results, summary, config)
    accelerator.end_training()
    return {"protocol": record, "subjects": results, "summary": summary}
