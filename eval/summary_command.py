"""``ttdnet evaluate-summary``: mean ± SD over subjects of several ``ttdnet evaluate`` runs, with protocol checks.

Cheap to import: the summary modules load inside :func:`run`.
"""

import argparse
import dataclasses

from ttdnet.command import Command
from ttdnet.config import ConfigParser


@dataclasses.dataclass
class SummaryConfig:
    """Options of ``ttdnet evaluate-summary``."""

    runs: list[str] = dataclasses.field(
        default_factory=list,
        metadata={
            "help": "evaluation folders (the --output_dir of each subject's `ttdnet evaluate`) or their "
            "metrics.json files; usually given as positional arguments, which replace this list"
        },
    )
    labels: list[str] | None = dataclasses.field(
        default=None,
        metadata={
            "help": "one subject label per run, in the order of the runs; none: the sub-XX in the manifest, "
            "reconstructions or ground-truth path, else the evaluation folder's name"
        },
    )
    output_dir: str = dataclasses.field(
        default="outputs/evaluate-summary",
        metadata={"help": "where summary.json, summary.md, summary.html and config.yaml go"},
    )
    allow_mismatch: bool = dataclasses.field(
        default=False,
        metadata={
            "help": "summarise runs whose settings, weights or metrics differ, listing every difference as a "
            "warning in the outputs (otherwise such a difference is an error)"
        },
    )


def add_arguments(parser: ConfigParser) -> None:
    parser.add_argument(
        "run_dirs",
        nargs="*",
        metavar="RUN",
        help="evaluation folder or metrics.json of one subject (give the runs before the options)",
    )


def run(config: SummaryConfig, namespace: argparse.Namespace) -> int:
    from ttdnet.config import config_to_dict

    from .summary import summarise
    from .summary_report import SUMMARY_OUTPUTS, mean_sd_text, subjects_text, write_summary

    if namespace.run_dirs:
        config = dataclasses.replace(config, runs=list(namespace.run_dirs))
    SUMMARY_OUTPUTS.check(config.output_dir)
    document = summarise(config.runs, config.labels, config.allow_mismatch)
    document["config"] = config_to_dict(config)
    paths = write_summary(config.output_dir, document, config)
    rows = [
        (entry["name"], mean_sd_text(entry), subjects_text(entry, document["n_subjects"]))
        for key, entry in document["metrics"].items()
        if not key.endswith("_shuffled")
    ]
    width = max(len(name) for name, _, _ in rows)
    print(f"{'metric'.ljust(width)}  mean ± sd (ddof 1) over subjects  [subjects]")
    print("\n".join(f"{name.ljust(width)}  {value}  [{count}]" for name, value, count in rows))
    for warning in document["warnings"]:
        print(f"warning: {warning}")
    print(f"wrote {paths['summary']}, {paths['markdown']}, {paths['html']}")
    return 0


COMMAND = Command(
    name="evaluate-summary",
    summary="mean ± SD over subjects of several `ttdnet evaluate` runs, with protocol checks and reports",
    config_class=SummaryConfig,
    run=run,
    add_arguments=add_arguments,
    description=(
        "Combine the metrics.json of several `ttdnet evaluate` runs (one per subject) into one table: mean ± SD "
        "(ddof 1) over subjects, per-subject values, and checks that every run used the same settings and "
        "weights. Example: ttdnet evaluate-summary outputs/evaluate/sub-01 outputs/evaluate/sub-02 "
        "--output_dir outputs/evaluate-summary. See docs/evaluation-summary.md."
    ),
)
