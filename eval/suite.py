"""Run the selected metrics over a :class:`~ttdnet.eval.pairing.PairedSet`.

Ground-truth features are computed once and reused for every sample set; each backbone runs once per
image and feeds every metric that uses it (:mod:`~ttdnet.eval.scoring`). With S samples per trial every
score is computed per sample set (sample s of every trial against all N ground truths); the reported value
is the mean over sample sets, and the sample-0 value is reported beside it (:mod:`~ttdnet.eval.metric_entries`).
The max over samples is never reported.
"""

import dataclasses

import torch
from tqdm.auto import tqdm

from . import identification as ident
from .feature_backbone import Backbone
from .images import ImageStore, ResizeSpec
from .metric_entries import MetricResult, aggregate
from .metrics import GROUPS
from .pairing import PairedSet
from .scoring import ScoringPlan, SuiteSettings, score_ground_truth, score_sample_set


@dataclasses.dataclass
class SuiteResult:
    """Everything :func:`run_suite` computed."""

    trial_ids: list[str]
    sample_ids: list[str]
    metrics: dict[str, MetricResult]
    backbones: dict[str, dict]
    settings: SuiteSettings
    derangement: list[int]


def _batches(n: int, size: int) -> list[list[int]]:
    return [list(range(start, min(start + size, n))) for start in range(0, n, size)]


class _Progress:
    def __init__(self, enabled: bool, total: int):
        self.bar = tqdm(total=total, desc="evaluate", unit="batch", disable=not enabled)

    def step(self, label: str) -> None:
        self.bar.set_postfix_str(label, refresh=False)
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()


def run_suite(
    pairs: PairedSet,
    groups: list[str],
    backbones: dict[str, Backbone],
    settings: SuiteSettings,
) -> SuiteResult:
    """Compute the selected metric groups.

    Parameters
    ----------
    pairs : PairedSet
        N trials, S sample sets.
    groups : list of str
        Metric groups (see :data:`ttdnet.eval.metrics.GROUPS`).
    backbones : dict
        Backbone name to :class:`Backbone` for every backbone the groups need.
    settings : SuiteSettings

    Returns
    -------
    SuiteResult
    """
    device = torch.device(settings.device)
    n, n_sets = pairs.n_trials, pairs.n_samples
    needed = sorted({GROUPS[g].backbone for g in groups if GROUPS[g].backbone})
    missing = [name for name in needed if name not in backbones]
    if missing:
        raise ValueError(f"backbones missing for the selected metrics: {missing}")
    for name in needed:
        backbones[name].to(device)
    plan = ScoringPlan(
        settings=settings,
        groups=set(groups),
        backbones={name: backbones[name] for name in needed},
        derangement=ident.derangement(n, settings.seed),
        batches=_batches(n, settings.batch_size),
        ttd_resize=ResizeSpec(settings.eval_size, "bilinear", antialias=True),
        device=device,
    )

    # One progress unit per batch: ground truth once, then each sample set.
    progress = _Progress(settings.progress, len(plan.batches) * (1 + n_sets))
    truth = score_ground_truth(plan, ImageStore(pairs.gt_paths), lambda: progress.step("ground truth"))
    per_set = []
    for s, paths in enumerate(pairs.rec_paths):
        label = f"sample {s}"
        per_set.append(score_sample_set(plan, truth, ImageStore(paths), lambda label=label: progress.step(label)))
    progress.close()

    return SuiteResult(
        trial_ids=pairs.trial_ids,
        sample_ids=pairs.sample_ids,
        metrics=aggregate(per_set, plan, n),
        backbones={
            name: backbone.info | {"preprocessing": backbone.preprocess_settings()}
            for name, backbone in plan.backbones.items()
        },
        settings=settings,
        derangement=[int(i) for i in plan.derangement],
    )
