"""The evaluation as a function: :func:`evaluate` pairs, loads the backbones, scores and writes the reports."""

from collections.abc import Callable
from pathlib import Path

from ttdnet.config import check_option_ranges, config_to_dict
from ttdnet.devices import resolve_device
from ttdnet.errors import TtdnetError

from . import backbones as bb
from .metrics import GROUPS, select_groups
from .outputs import OutputSet
from .pairing import pair_images
from .report import HTML_TITLE, MARKDOWN_TITLE, build_metrics_document, render_html, render_markdown
from .scoring import SuiteSettings
from .suite import run_suite
from .weights import resolve_weights


EVALUATION_OUTPUTS = OutputSet(
    command="evaluate",
    document="metrics.json",
    document_keys=("metrics", "pairing", "ttdnet_version"),
    markdown="report.md",
    markdown_title=MARKDOWN_TITLE,
    html="report.html",
    html_title=HTML_TITLE,
    staging="evaluation",
    what="an evaluation",
)
"""The files of one evaluation; :mod:`~ttdnet.eval.outputs` says how they are written."""


def needed_backbones(groups: list[str]) -> list[str]:
    """Backbone names the metric groups need, sorted."""
    return sorted({GROUPS[group].backbone for group in groups if GROUPS[group].backbone})


def load_backbones(
    config, names: list[str], random_weights: bool = False, hash_files: bool = True
) -> dict[str, bb.Backbone]:
    """Resolve every weight file first (one error listing all that are missing), then build the backbones.

    Parameters
    ----------
    config : EvaluateConfig
        Paths and ids (``weights_dir``, ``*_weights``, ``clip_model``, ``classifier_*``).
    names : list of str
        Backbone names.
    random_weights : bool
        Full-size architectures with random weights (benchmark); nothing is resolved or read.
    hash_files : bool
        Record the SHA-256 of every weight file read.
    """
    overrides = {
        "alexnet": config.alexnet_weights,
        "inception": config.inception_weights,
        "effnet_b1": config.effnet_weights,
        "swav": config.swav_weights,
        "fid_inception": config.fid_inception_weights,
        "classifier": config.classifier_weights,
    }
    resolved = {}
    if not random_weights:
        resolved = resolve_weights(
            names,
            config.weights_dir,
            overrides,
            allow_download=config.download_weights,
            clip_model=config.clip_model,
            cache_dir=config.cache_dir,
            classifier_weights_id=config.classifier_weights_id,
        )
    built = {}
    for name in names:
        weights = resolved.get(name)
        if name == "clip":
            built[name] = bb.build_clip(weights, random_weights, cache_dir=config.cache_dir, hash_files=hash_files)
        elif name == "classifier":
            built[name] = bb.build_classifier(
                weights, config.classifier_arch, config.classifier_weights_id, random_weights, hash_files
            )
        elif name == "lpips":
            built[name] = bb.build_lpips(weights, random_weights, config.lpips_weights, hash_files)[0]
        else:
            built[name] = bb.BUILDERS[name](weights, random_weights, hash_files)
    return built


def suite_settings(config) -> SuiteSettings:
    """The :class:`SuiteSettings` of a config (device default: cuda when available)."""
    device = str(resolve_device(config.device))
    return SuiteSettings(
        eval_size=config.eval_size,
        batch_size=config.batch_size,
        device=device,
        seed=config.seed,
        nway_n=config.nway_n,
        nway_trials=config.nway_trials,
        nway_clip_ns=list(config.nway_clip_ns),
        kid_subsets=config.kid_subsets,
        kid_subset_size=config.kid_subset_size,
        progress=config.progress,
    )


def evaluate(
    config,
    backbones: dict[str, bb.Backbone] | None = None,
    random_weights: bool = False,
    log: Callable[[str], None] = print,
) -> tuple[dict[str, Path], dict]:
    """Run ``ttdnet evaluate``.

    Parameters
    ----------
    config : EvaluateConfig
    backbones : dict, optional
        Backbone name to :class:`~ttdnet.eval.backbones.Backbone`, used instead of loading those weights
        (tests inject small random-weight networks here).
    random_weights : bool
        Build the backbones that are not injected with random weights (benchmarks only; numbers are meaningless).

    Returns
    -------
    paths : dict
        ``metrics``, ``markdown``, ``html``, ``config`` output files.
    document : dict
        The ``metrics.json`` content.
    """
    check_option_ranges(config)  # also when called from code, not the command line
    if not config.ground_truth:
        raise TtdnetError("pass --ground_truth DIR (an image folder or a THINGS-EEG2 root).")
    EVALUATION_OUTPUTS.check(config.output_dir)
    groups = select_groups(config.metrics)
    pairs = pair_images(
        config.ground_truth, config.reconstructions, config.manifest, config.match_by, config.allow_missing
    )
    log(f"paired {pairs.n_trials} trials x {pairs.n_samples} sample(s); metrics: {', '.join(groups)}")
    if pairs.missing_trials:
        log(f"warning: {len(pairs.missing_trials)} ground-truth images have no reconstruction and are not scored")
    injected = dict(backbones or {})
    to_load = [name for name in needed_backbones(groups) if name not in injected]
    loaded = load_backbones(config, to_load, random_weights=random_weights) if to_load else {}
    result = run_suite(pairs, groups, injected | loaded, suite_settings(config))
    document = build_metrics_document(result, pairs, config_to_dict(config) | {"random_weights": random_weights})
    if random_weights:
        document["warning"] = "backbones with random weights: timing run only, the values are meaningless"
    markdown, html = render_markdown(document), render_html(document, pairs, grid_trials=config.grid_trials)
    return EVALUATION_OUTPUTS.write(config.output_dir, document, config, markdown, html), document


__all__ = ["evaluate", "load_backbones", "needed_backbones", "suite_settings"]
