"""``ttdnet info DATASET_ROOT``: load a THINGS-EEG2 root through the data layer and summarise it."""

import argparse
import dataclasses
import json
from pathlib import Path
from typing import ClassVar

from ttdnet.command import Command
from ttdnet.config import ConfigParser


@dataclasses.dataclass
class InfoConfig:
    """Options of ``ttdnet info`` (the dataset root is a positional argument)."""

    RENAMED_OPTIONS: ClassVar[dict[str, str]] = {
        "cache_dir": "--cache_dir is the model-download cache in every command; the float32 EEG cache is "
        "--eeg_cache_dir",
    }

    json: bool = dataclasses.field(default=False, metadata={"help": "print one JSON object instead of text"})
    eeg_dir: str | None = dataclasses.field(
        default=None, metadata={"help": "folder of sub-XX/ folders, when not under DATASET_ROOT"}
    )
    image_dir: str | None = dataclasses.field(
        default=None, metadata={"help": "image-set folder (image_metadata.npy, training_images/, test_images/)"}
    )
    eeg_cache_dir: str | None = dataclasses.field(
        default=None,
        metadata={
            "help": "float32 EEG cache root of the data layer; none: $TTDNET_CACHE_DIR, else "
            "$XDG_CACHE_HOME/ttdnet or ~/.cache/ttdnet"
        },
    )


def add_arguments(parser: ConfigParser) -> None:
    parser.add_argument(
        "dataset_root", help="THINGS-EEG2 root (as written by `ttdnet simulate`, or the official data)"
    )


def summarize_dataset(root: str, config: InfoConfig) -> dict:
    """Load every EEG file and the image metadata of a dataset and describe them.

    Every file is read and validated (and converted into the float32 cache on first use).

    Returns
    -------
    dict
        ``eeg_dir``, ``image_dir``, ``subjects`` (per subject and partition: shape, container, variant),
        ``ch_names``, ``times`` (first, last, n, sfreq, onset index) and ``images`` (per partition: rows,
        concepts, files present and missing).
    """
    from tqdm.auto import tqdm

    from ttdnet.data.cache import load_cached_eeg
    from ttdnet.data.image_metadata import read_image_metadata
    from ttdnet.data.things_eeg2 import PARTITIONS, ThingsEEG2FormatError, ThingsEEG2Layout

    layout = ThingsEEG2Layout.discover(root, eeg_dir=config.eeg_dir, image_dir=config.image_dir, require_images=False)
    subjects: dict[str, dict] = {}
    reference = None
    jobs = [(subject, partition) for subject in layout.subjects for partition in PARTITIONS]
    for subject, partition in tqdm(jobs, desc="reading EEG files", unit="file", disable=config.json):
        path = layout.eeg_file(subject, partition)
        if not path.is_file():
            subjects.setdefault(subject, {})[partition] = {"missing": str(path)}
            continue
        cached = load_cached_eeg(path, config.eeg_cache_dir)
        if reference is None:
            reference = cached
        elif cached.ch_names != reference.ch_names or cached.times.shape != reference.times.shape:
            raise ThingsEEG2FormatError(
                f"{path}: channels or time axis differ from {reference.source}; a dataset must be consistent"
            )
        subjects.setdefault(subject, {})[partition] = {
            "shape": list(cached.data.shape),
            "container": cached.container,
            "variant": cached.variant,
            "file": str(path),
        }
    summary: dict = {
        "eeg_dir": str(layout.eeg_dir),
        "image_dir": str(layout.image_dir) if layout.image_dir else None,
        "subjects": subjects,
    }
    if reference is not None:
        times = reference.times
        onset = [i for i, t in enumerate(times) if abs(t) < 0.5 / reference.sfreq]
        summary["ch_names"] = list(reference.ch_names)
        summary["times"] = {
            "first_s": float(times[0]),
            "last_s": float(times[-1]),
            "n_times": len(times),
            "sfreq_hz": reference.sfreq,
            "onset_index": onset[0] if onset else None,
        }
    if layout.image_dir is not None:
        metadata = read_image_metadata(layout.image_dir)
        images = {}
        for partition in PARTITIONS:
            paths = metadata.relative_paths(partition)
            missing = [p for p in paths if not (layout.image_dir / p).is_file()]
            images[partition] = {
                "rows": len(paths),
                "concepts": len(metadata.unique_concepts(partition)),
                "files_present": len(paths) - len(missing),
                "files_missing": missing[:10],
            }
            for subject, partitions in subjects.items():
                shape = partitions.get(partition, {}).get("shape")
                if shape is not None and shape[0] != len(paths):
                    raise ThingsEEG2FormatError(
                        f"{partitions[partition]['file']}: {shape[0]} image conditions but {metadata.path} lists "
                        f"{len(paths)} {partition} images ({subject})"
                    )
        summary["images"] = images
    return summary


def format_summary(root: str, summary: dict) -> str:
    """Human-readable text of :func:`summarize_dataset`'s result."""
    lines = [f"THINGS-EEG2 dataset: {Path(root)}", f"  EEG folder:  {summary['eeg_dir']}"]
    lines.append(f"  image set:   {summary['image_dir'] or 'not found (EEG only)'}")
    lines.append(f"  subjects ({len(summary['subjects'])}):")
    for subject, partitions in summary["subjects"].items():
        for partition, entry in partitions.items():
            if "missing" in entry:
                lines.append(f"    {subject}  {partition:<8}  MISSING {entry['missing']}")
            else:
                shape = " x ".join(map(str, entry["shape"]))
                lines.append(
                    f"    {subject}  {partition:<8}  {shape}  (conditions x repetitions x channels x times; "
                    f"{entry['container']}, {entry['variant']} format)"
                )
    if "ch_names" in summary:
        lines.append(f"  channels ({len(summary['ch_names'])}): {' '.join(summary['ch_names'])}")
        t = summary["times"]
        lines.append(
            f"  time: {t['first_s']:.3f} ... {t['last_s']:.3f} s, {t['n_times']} samples at {t['sfreq_hz']:g} Hz"
            f" (stimulus onset at index {t['onset_index']})"
        )
    for partition, entry in summary.get("images", {}).items():
        lines.append(
            f"  {partition} images: {entry['rows']} in {entry['concepts']} concepts, "
            f"{entry['files_present']}/{entry['rows']} files present"
            + (f"; missing e.g. {', '.join(entry['files_missing'][:3])}" if entry["files_missing"] else "")
        )
    return "\n".join(lines)


def run(config: InfoConfig, namespace: argparse.Namespace) -> int:
    summary = summarize_dataset(namespace.dataset_root, config)
    print(json.dumps(summary, indent=2) if config.json else format_summary(namespace.dataset_root, summary))
    missing_files = any(entry["files_missing"] for entry in summary.get("images", {}).values())
    missing_eeg = any("missing" in entry for parts in summary["subjects"].values() for entry in parts.values())
    return 1 if missing_files or missing_eeg else 0


COMMAND = Command(
    name="info",
    summary="load a THINGS-EEG2 root and print subjects, splits, shapes, channels, time range and image counts",
    config_class=InfoConfig,
    run=run,
    description=(
        "Load a THINGS-EEG2 root through the data layer (validating every file) and print what it holds. "
        "Exits with status 1 when a file is invalid or missing."
    ),
    add_arguments=add_arguments,
)
