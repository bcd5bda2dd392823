"""The training loop, evaluation and reports behind ``ttdnet train-retrieval`` (see ``train_retrieval.py``)."""

import hashlib
import logging
import math
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from ttdnet.data import ThingsEEG2Dataset
from ttdnet.data.things_eeg2 import subject_name, subject_number
from ttdnet.errors import TtdnetError
from ttdnet.eval.retrieval import retrieval_scores
from ttdnet.io import atomic_write_json, atomic_write_text
from ttdnet.stages.retrieval_features import FeatureFile, read_feature_file
from ttdnet.stages.retrieval_model import (
    RetrievalModel,
    gaussian_smooth,
    info_nce,
    mmd_rbf,
    mmd_weight,
    save_retrieval_model,
)
from ttdnet.stages.training_utils import (
    BestOnValidation,
    MetricsCSV,
    init_trackers,
    resolve_checkpoint,
    save_checkpoint,
    seed_micro_step,
    tracker_setup,
)


logger = logging.getLogger(__name__)


# ------------------------------------------------------------------------------------------------ pieces


def state_fingerprint(module: torch.nn.Module) -> str:
    """SHA-256 over every parameter and buffer (name, shape, bytes): equal iff the weights are identical."""
    digest = hashlib.sha256()
    for key, value in sorted(module.state_dict().items()):
        digest.update(key.encode())
        digest.update(str(tuple(value.shape)).encode())
        digest.update(value.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def feature_statistics(features: torch.Tensor, rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-layer, per-dimension mean and std of ``features[rows]`` (float32 ``(n_layers, dim)`` each).

    Dimensions with no spread (zero padding) get std 1, so they stay 0 after standardisation.
    """
    selected = features[torch.as_tensor(rows)].float()
    mean = selected.mean(dim=0)
    std = selected.std(dim=0)
    std = torch.where(std > 1e-6, std, torch.ones_like(std))
    return mean, std


@torch.no_grad()
def embed_queries(model: RetrievalModel, dataset: ThingsEEG2Dataset, batch_size: int, device) -> tuple:
    """EEG embeddings of every (subject, image) of ``dataset``, averaging repetition embeddings if it has several.

    Returns
    -------
    embeddings : torch.Tensor, shape (n_items, proj_dim)
        L2-normalised (re-normalised after averaging).
    subjects : numpy.ndarray of int, shape (n_items,)
    rows : numpy.ndarray of int, shape (n_items,)
        Image row of each item.
    """
    sums: dict[tuple[int, int], torch.Tensor] = {}
    counts: dict[tuple[int, int], int] = {}
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False)
    for batch in loader:
        z = model.encode_eeg(batch.eeg.to(device)).float().cpu()
        for vector, subject, row in zip(z, batch.subject.tolist(), batch.image_index.tolist()):
            key = (subject, row)
            sums[key] = sums[key] + vector if key in sums else vector.clone()
            counts[key] = counts.get(key, 0) + 1
    keys = sorted(sums)
    embeddings = torch.stack([sums[key] / counts[key] for key in keys])
    embeddings = torch.nn.functional.normalize(embeddings, dim=-1)
    return embeddings, np.array([k[0] for k in keys]), np.array([k[1] for k in keys])


@torch.no_grad()
def evaluate_split(
    model: RetrievalModel,
    dataset: ThingsEEG2Dataset,
    image_features: torch.Tensor,
    ks: list[int],
    ts: list[int],
    mc_trials: int,
    seed: int,
    batch_size: int,
    device,
) -> dict[int, dict]:
    """Zero-shot scores per subject: queries = the subject's EEG of each image, gallery = those images.

    The gallery is encoded in ``eval()`` mode, so the router uses its global prior only (no subject input).

    Returns
    -------
    dict
        ``{subject: {key: RetrievalScore}}`` from :func:`ttdnet.eval.retrieval.retrieval_scores`.
    """
    was_training = model.training
    model.eval()
    queries, subjects, rows = embed_queries(model, dataset, batch_size, device)
    out = {}
    for subject in np.unique(subjects):
        mine = subjects == subject
        gallery_rows = rows[mine]
        gallery = []
        for start in range(0, len(gallery_rows), batch_size):
            chunk = image_features[torch.as_tensor(gallery_rows[start : start + batch_size])].to(device)
            gallery.append(model.encode_image(chunk).float().cpu())
        gallery = torch.cat(gallery)
        similarity = (queries[mine] @ gallery.T).numpy()
        out[int(subject)] = retrieval_scores(similarity, ks=ks, ts=ts, mc_trials=mc_trials, seed=seed)
    model.train(was_training)
    return out


def mean_over_subjects(scores: dict[int, dict], key: str) -> float:
    """Mean of ``key`` over subjects (raises a clear error if the key was not computed)."""
    missing = [s for s, by_key in scores.items() if key not in by_key]
    if missing:
        available = sorted(next(iter(scores.values())))
        raise TtdnetError(
            f"selection metric {key!r} was not computed (gallery too small for it?); available: {available}. "
            "Set --selection_metric to one of them."
        )
    return float(np.mean([by_key[key].value for by_key in scores.values()]))


def flatten_scores(scores: dict) -> dict:
    """``{key: value}`` plus ``{key}_ci95`` lists for Monte-Carlo keys."""
    flat = {}
    for key, score in scores.items():
        flat[key] = score.value
        if score.ci95 is not None:
            flat[f"{key}_ci95"] = [float(score.ci95[0]), float(score.ci95[1])]
    return flat


# --------------------------------------------------------------------------------------------- one fold


class Fold:
    """One model: its training subjects, its evaluation subject and its folder."""

    def __init__(self, protocol: str, subject: str, train_subjects: list[str], root: Path):
        self.protocol, self.subject, self.train_subjects = protocol, subject, train_subjects
        self.dir = root / protocol / subject


def make_folds(config, all_subjects: list[str], output_dir: Path) -> list[Fold]:
    evaluated = [subject_name(s) for s in config.eval_subjects] if config.eval_subjects else all_subjects
    unknown = [s for s in evaluated if s not in all_subjects]
    if unknown:
        raise TtdnetError(f"--eval_subjects {unknown} are not among the subjects {all_subjects}")
    folds = []
    for subject in evaluated:
        if config.protocol == "intra":
            folds.append(Fold("intra", subject, [subject], output_dir))
        else:
            others = [s for s in all_subjects if s != subject]
            if not others:
                raise TtdnetError("the inter (leave-one-subject-out) protocol needs at least two subjects")
            folds.append(Fold("inter", subject, others, output_dir))
    return folds


def build_model(config, signal: dict, n_layers: int, dim: int, n_subjects: int, mean, std, data_source: str):
    """A freshly initialised retrieval model (the caller seeds torch first)."""
    from ttdnet.models import InceptSADEncoder, SignalSpec
    from ttdnet.models.registry import build_encoder

    if config.encoder_pretrained is not None:
        if config.encoder != "inceptsad":
            raise TtdnetError("--encoder_pretrained loads a Stage A InceptSAD folder; use it with --encoder inceptsad")
        if not (Path(config.encoder_pretrained) / "config.json").is_file():
            raise TtdnetError(
                f"--encoder_pretrained {config.encoder_pretrained}: no config.json (a save_pretrained dir)"
            )
        encoder = InceptSADEncoder.from_pretrained(config.encoder_pretrained)
        names = [c["ch_name"] for c in signal["chs_info"]]
        encoder.signal.check_matches(names, signal["n_times"], signal["sfreq"], data_source)
    else:
        try:
            encoder = build_encoder(config.encoder, signal, config.encoder_size)
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
        shared_head=config.shared_head,
        learn_temperature=config.learn_temperature,
        init_temperature=config.init_temperature,
        feature_mean=mean,
        feature_std=std,
    )
    if config.freeze_encoder:
        model.encoder.requires_grad_(False)
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
        cache_dir=config.cache_dir,
    )


def train_fold(fold: Fold, config, accelerator, best: BestOnValidation, context: dict) -> dict:
    """Train, select and test one fold; return its results (also written to ``fold.dir/fold_results.json``)."""
    from accelerate.utils import set_seed
    from diffusers.optimization import get_scheduler
    from tqdm.auto import tqdm

    features: FeatureFile = context["features"]
    subject_index = context["subject_index"]
    device = accelerator.device
    eval_average = config.test_averaging == "avg_input"
    with accelerator.main_process_first():
        train_set = _datasets(config, fold.train_subjects, "train", config.train_average_repetitions)
        val_set = _datasets(config, fold.train_subjects, "val", eval_average)
        test_set = _datasets(config, [fold.subject], "test", eval_average)
    if len(val_set) == 0 and config.model_selection == "validation":
        raise TtdnetError("the validation split is empty: raise --val_fraction or use --model_selection last")
    signal = {
        "chs_info": [{"ch_name": n} for n in train_set.ch_names],
        "n_times": train_set.n_times,
        "sfreq": train_set.sfreq,
    }
    train_rows = np.unique(train_set.image_indices)
    mean, std = feature_statistics(features.features["training"], train_rows)

    # Fresh, seeded initialisation for every fold (D9): the same seed gives the same initial weights.
    set_seed(config.seed)
    model = build_model(
        config,
        signal,
        features.n_layers,
        features.dim,
        len(subject_index),
        mean,
        std,
        f"THINGS-EEG2 data in {config.dataset_root}",
    )
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
    steps_per_epoch = len(train_loader)
    max_steps = config.num_train_epochs * steps_per_epoch
    scheduler = get_scheduler(
        config.lr_scheduler,
        optimizer,
        num_warmup_steps=config.lr_warmup_steps * accelerator.num_processes,
        num_training_steps=max_steps * accelerator.num_processes,
    )
    accelerator.free_memory()
    model, optimizer, train_loader, scheduler = accelerator.prepare(model, optimizer, train_loader, scheduler)
    best.reset()
    steps_per_epoch = len(train_loader)
    max_steps = config.num_train_epochs * steps_per_epoch
    unwrapped: RetrievalModel = accelerator.unwrap_model(model)

    global_step = 0
    resume = None
    if config.resume_from_checkpoint == "latest":
        resume = resolve_checkpoint(fold.dir, "latest")
    elif (
        config.resume_from_checkpoint is not None
        and Path(config.resume_from_checkpoint).resolve().parent == fold.dir.resolve()
    ):
        resume = resolve_checkpoint(fold.dir, config.resume_from_checkpoint)
    if resume is not None:
        global_step, checkpoint = resume
        accelerator.print(f"[{fold.subject}] Resuming from {checkpoint} (step {global_step})")
        accelerator.load_state(str(checkpoint))
    first_epoch = global_step // steps_per_epoch
    skip_batches = global_step % steps_per_epoch
    metrics = (
        MetricsCSV(
            fold.dir / "metrics.csv",
            [
                "epoch",
                "split",
                "loss",
                "infonce",
                "mmd",
                "mmd_weight",
                "lr",
                "logit_scale",
                "top1",
                "top5",
                "selection_score",
            ],
            resume_step=global_step,
        )
        if accelerator.is_main_process
        else None
    )
    features_train = features.features["training"].to(device)
    features_test = features.features["test"]
    lookup = torch.full((max(subject_index) + 1,), -1, dtype=torch.long, device=device)
    for number, index in subject_index.items():
        lookup[number] = index
    prefix = f"{fold.protocol}/{fold.subject}"
    progress = tqdm(
        total=max_steps, initial=global_step, desc=f"{prefix} steps", disable=not accelerator.is_local_main_process
    )
    started = time.perf_counter()
    model.train()
    if config.freeze_encoder:
        unwrapped.encoder.eval()
    for epoch in range(first_epoch, config.num_train_epochs):
        train_loader.set_epoch(epoch)
        loader = (
            accelerator.skip_first_batches(train_loader, skip_batches)
            if epoch == first_epoch and skip_batches
            else train_loader
        )
        weight = mmd_weight(epoch + 1, config.mmd_epochs, config.mmd_weight_start, config.mmd_weight_end)
        for batch in loader:
            seed_micro_step(config.seed, global_step, 0, accelerator.process_index)
            eeg = gaussian_smooth(batch.eeg, config.smooth_prob, config.smooth_kernel, config.smooth_sigma)
            image = features_train[batch.image_index.to(device)]
            z_eeg, z_image, logit_scale = model(eeg, image, lookup[batch.subject.to(device)])
            contrastive = info_nce(z_eeg.float(), z_image.float(), logit_scale.float())
            mmd = mmd_rbf(z_eeg.float(), z_image.float()) if weight > 0 else contrastive.new_zeros(())
            loss = weight * mmd + (1 - weight) * contrastive
            accelerator.backward(loss)
            accelerator.clip_grad_norm_(params, config.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
            if config.learn_temperature:
                with torch.no_grad():
                    unwrapped.logit_scale.clamp_(0, math.log(100.0))
            global_step += 1
            values = accelerator.gather(torch.stack([loss.detach(), contrastive.detach(), mmd.detach()]).float()[None])
            loss_value, nce_value, mmd_value = values.mean(dim=0).tolist()
            if not math.isfinite(loss_value):
                raise FloatingPointError(
                    f"[{prefix}] loss is {loss_value} at step {global_step}; lower --learning_rate"
                )
            lr = scheduler.get_last_lr()[0]
            progress.update(1)
            progress.set_postfix(loss=f"{loss_value:.4f}", epoch=epoch + 1)
            accelerator.log(
                {
                    f"{prefix}/train/loss": loss_value,
                    f"{prefix}/train/infonce": nce_value,
                    f"{prefix}/train/mmd": mmd_value,
                    f"{prefix}/train/lr": lr,
                },
                step=global_step,
            )
            if metrics:
                metrics.log(
                    global_step,
                    {
                        "epoch": epoch + 1,
                        "split": "train",
                        "loss": loss_value,
                        "infonce": nce_value,
                        "mmd": mmd_value,
                        "mmd_weight": weight,
                        "lr": lr,
                        "logit_scale": float(unwrapped.logit_scale.detach()),
                    },
                )
            end_of_epoch = global_step % steps_per_epoch == 0
            if end_of_epoch and ((epoch + 1) % config.validation_epochs == 0 or epoch + 1 == config.num_train_epochs):
                validate(
                    fold,
                    config,
                    unwrapped,
                    best,
                    val_set,
                    features_train,
                    epoch + 1,
                    global_step,
                    metrics,
                    accelerator,
                    test_set,
                    features_test,
                )
            if global_step % config.checkpointing_steps == 0 and accelerator.is_main_process:
                save_checkpoint(accelerator, fold.dir, global_step, config.checkpoints_total_limit)
            accelerator.wait_for_everyone()
    progress.close()
    seconds = time.perf_counter() - started

    # The test set is scored once, with the selected weights.
    last_weights = {key: value.detach().cpu().clone() for key, value in unwrapped.state_dict().items()}
    if config.model_selection == "validation":
        if not best.weights:
            raise TtdnetError(f"[{prefix}] no validation ran; lower --validation_epochs")
        unwrapped.load_state_dict(best.weights)
        selected = {
            "rule": f"best validation {config.selection_metric} (held-out training concepts)",
            "epoch": best.at,
            "validation_score": best.value,
        }
    else:
        selected = {"rule": "last epoch", "epoch": config.num_train_epochs, "validation_score": None}
    test_scores = evaluate_split(
        unwrapped,
        test_set,
        features_test,
        config.kway,
        config.topk,
        config.mc_trials,
        config.seed,
        config.train_batch_size,
        device,
    )[subject_number(fold.subject)]
    provenance = {"fold": prefix, "selected": selected, "feature_file": str(features.path)}
    result = {
        "subject": fold.subject,
        "protocol": fold.protocol,
        "train_subjects": fold.train_subjects,
        "selection": selected,
        "test": flatten_scores(test_scores),
        "chance": {key: score.chance for key, score in test_scores.items()},
        "n_test_queries": int(len(test_scores["top1"].per_query)),
        "n_train_samples": len(train_set),
        "n_validation_queries": len(val_set),
        "initial_weights_sha256": init_fingerprint,
        "selected_weights_sha256": state_fingerprint(unwrapped),
        "train_seconds": round(seconds, 2),
        "steps": global_step,
    }
    if accelerator.is_main_process:
        save_retrieval_model(unwrapped, fold.dir / "model", provenance)
        current = {key: value.detach().clone() for key, value in unwrapped.state_dict().items()}
        unwrapped.load_state_dict(last_weights)
        save_retrieval_model(unwrapped, fold.dir / "model-last", {**provenance, "selected": {"rule": "last epoch"}})
        unwrapped.load_state_dict(current)
        atomic_write_json(fold.dir / "fold_results.json", result)
    accelerator.wait_for_everyone()
    return result


def validate(
    fold, config, model, best, val_set, features_train, epoch, step, metrics, accelerator, test_set, features_test
) -> None:
    """Score the validation split, update the selection; optionally log a labelled test curve (never selects)."""
    prefix = f"{fold.protocol}/{fold.subject}"
    scores = evaluate_split(
        model,
        val_set,
        features_train,
        config.kway,
        config.topk,
        0,
        config.seed,
        config.train_batch_size,
        accelerator.device,
    )
    score = mean_over_subjects(scores, config.selection_metric)
    top1, top5 = mean_over_subjects(scores, "top1"), mean_over_subjects(scores, "top5") if 5 in config.topk else None
    accelerator.log({f"{prefix}/val/{config.selection_metric}": score, f"{prefix}/val/top1": top1}, step=step)
    if metrics:
        metrics.log(step, {"epoch": epoch, "split": "val", "top1": top1, "top5": top5, "selection_score": score})
    if config.model_selection == "validation" and best.update(score, epoch, model):
        logger.info(f"[{prefix}] epoch {epoch}: validation {config.selection_metric} {score:.4f} (best so far)")
    if config.log_test_curves:
        # Logged for inspection only, under its own label; nothing here feeds back into `best`.
        curve = evaluate_split(
            model,
            test_set,
            features_test,
            config.kway,
            config.topk,
            0,
            config.seed,
            config.train_batch_size,
            accelerator.device,
        )
        values = next(iter(curve.values()))
        accelerator.log({f"{prefix}/test_curve_not_for_selection/top1": values["top1"].value}, step=step)
        if metrics:
            metrics.log(
                step,
                {
                    "epoch": epoch,
                    "split": "test_curve (not used for selection)",
                    "top1": values["top1"].value,
                    "top5": values["top5"].value if "top5" in values else None,
                },
            )


# ------------------------------------------------------------------------------------------------ reports


def protocol_record(config, features: FeatureFile, dataset: ThingsEEG2Dataset) -> dict:
    """Everything that defines the numbers (``metrics.md`` §3 reporting), written next to them."""
    settings = features.settings
    return {
        "protocol": "intra-subject" if config.protocol == "intra" else "inter-subject (leave-one-subject-out)",
        "channels": f"{dataset.n_chans} ({', '.join(dataset.ch_names)})",
        "sfreq_hz": dataset.sfreq,
        "window_s": [float(dataset.times[0]), float(dataset.times[-1] + 1 / dataset.sfreq)],
        "n_times": dataset.n_times,
        "train_averaging": "mean of repetitions" if config.train_average_repetitions else "single repetitions",
        "test_averaging": config.test_averaging,
        "mvnn_fit_partition": "as in the data files (not recorded by them; see their preprocessing provenance)",
        "image_feature_space": {
            "backbone": settings.get("backbone", "user-supplied"),
            "weights": settings.get("weights", "unknown"),
            "layers": features.layer_names,
            "pooling": settings.get("pooling"),
            "normalized": features.normalized,
            "file": str(features.path),
        },
        "layer_mode": config.layer_mode,
        "gallery": f"the {len(features.paths['test'])} test stimulus images (not concept centres)",
        "model_selection": (
            f"best validation {config.selection_metric} on held-out training concepts "
            f"(val_fraction={config.val_fraction}, split_seed={config.split_seed}); test scored once"
            if config.model_selection == "validation"
            else "last epoch; test scored once"
        ),
        "encoder": config.encoder + (f" from {config.encoder_pretrained}" if config.encoder_pretrained else ""),
        "epochs": config.num_train_epochs,
        "seed": config.seed,
        "kway": "exact expectation over all distractor sets; *_mc = seeded Monte-Carlo with 95% CI",
    }


def summarise(folds: list[dict]) -> dict:
    """Mean and sample sd over subjects of every scalar test metric."""
    keys = [key for key, value in folds[0]["test"].items() if isinstance(value, float)]
    summary = {}
    for key in keys:
        values = np.array([fold["test"][key] for fold in folds])
        summary[key] = {"mean": float(values.mean()), "sd": float(values.std(ddof=1)) if len(values) > 1 else 0.0}
    return summary


def write_reports(output_dir: Path, record: dict, folds: list[dict], summary: dict, config) -> None:
    """``results.json``, ``results.csv`` (one row per subject) and ``results.md``."""
    import pandas as pd

    atomic_write_json(output_dir / "results.json", {"protocol": record, "subjects": folds, "summary": summary})
    keys = [key for key in folds[0]["test"] if isinstance(folds[0]["test"][key], float)]
    rows = [
        {"subject": f["subject"], "selected_epoch": f["selection"]["epoch"], **{k: f["test"][k] for k in keys}}
        for f in folds
    ]
    atomic_write_text(output_dir / "results.csv", pd.DataFrame(rows).to_csv(index=False))
    shown = [
        k for k in ("top1", "top5", "top1_2way", "top1_4way", "top1_10way", "top1_50way", "top1_100way") if k in keys
    ]
    lines = ["# Zero-shot EEG-to-image retrieval", "", "Protocol (applies to every number below):", ""]
    for name, value in record.items():
        lines.append(f"- **{name}**: {value}")
    lines += ["", "| subject | selected epoch | " + " | ".join(shown) + " |", "|---" * (len(shown) + 2) + "|"]
    for fold in folds:
        cells = [f"{100 * fold['test'][k]:.1f}" for k in shown]
        lines.append(f"| {fold['subject']} | {fold['selection']['epoch']} | " + " | ".join(cells) + " |")
    lines.append(
        "| **mean ± sd** | | "
        + " | ".join(f"{100 * summary[k]['mean']:.1f} ± {100 * summary[k]['sd']:.1f}" for k in shown)
        + " |"
    )
    chance = folds[0]["chance"]
    lines += ["", "Values in %. Chance: " + ", ".join(f"{k} {100 * chance[k]:.1f}" for k in shown) + "."]
    atomic_write_text(output_dir / "results.md", "\n".join(lines) + "\n")


# -------------------------------------------------------------------------------------------------- entry


def train(config) -> dict:
    """Run every fold of ``config.protocol``; return ``{"protocol", "subjects", "summary"}`` (also written)."""
    from accelerate import Accelerator
    from accelerate.utils import DataLoaderConfiguration, ProjectConfiguration

    from ttdnet.config import config_to_dict, save_config
    from ttdnet.data import ThingsEEG2Layout

    logging.basicConfig(format="%(asctime)s - %(levelname)s - %(name)s - %(message)s", level=logging.INFO)
    if config.dataset_root is None:
        raise TtdnetError("no data: give --dataset_root (a THINGS-EEG2 root)")
    if config.features is None:
        raise TtdnetError("no image features: give --features FILE (made by `ttdnet features`)")
    features = read_feature_file(config.features)
    output_dir = Path(config.output_dir)
    layout = ThingsEEG2Layout.discover(config.dataset_root)
    all_subjects = [subject_name(s) for s in config.subjects] if config.subjects else layout.subjects
    probe = _datasets(config, all_subjects[:1], "test", True)
    for split in ("training", "test"):
        features.check_paths(split, probe.metadata.relative_paths(split))
    folds = make_folds(config, all_subjects, output_dir)
    subject_index = {subject_number(s): i for i, s in enumerate(all_subjects)}

    accelerator = Accelerator(
        mixed_precision=config.mixed_precision,
        log_with=tracker_setup(config.report_to),
        project_config=ProjectConfiguration(
            project_dir=str(output_dir), logging_dir=str(output_dir / config.logging_dir)
        ),
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True, data_seed=config.seed),
    )
    best = BestOnValidation(mode="max")
    accelerator.register_for_checkpointing(best)
    if accelerator.is_main_process:
        output_dir.mkdir(parents=True, exist_ok=True)
        save_config(config, output_dir / "config.yaml", command="train-retrieval")
        init_trackers(accelerator, "ttdnet-retrieval", config_to_dict(config))
    context = {"features": features, "subject_index": subject_index}
    results = []
    import json

    for fold in folds:
        done = fold.dir / "fold_results.json"
        if config.resume_from_checkpoint is not None and done.is_file():
            accelerator.print(f"[{fold.protocol}/{fold.subject}] finished earlier; reusing {done}")
            results.append(json.loads(done.read_text()))
            continue
        results.append(train_fold(fold, config, accelerator, best, context))
    record = protocol_record(config, features, probe)
    summary = summarise(results)
    if accelerator.is_main_process:
        write_reports(output_dir, record, results, summary, config)
    accelerator.end_training()
    return {"protocol": record, "subjects": results, "summary": summary}
