"""``ttdnet info DATASET_ROOT``: load a THINGS-EEG2 root through the data layer and summarise it."""

import argparse
import dataclasses
import json
from pathlib import Path
from typing import ClassVar

from ttdnet.command import Command
from ttdnet.config import ConfigParser
from ttdnet.errors import ConfigError


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
    eeg_only: bool = dataclasses.field(
        default=False,
        metadata={
            "help": "check the EEG files alone: a root without image_metadata.npy is accepted and no image is "
            "read (without it, a missing image set is an error)"
        },
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
    """Load every EEG file, the image metadata and every image of a dataset, and describe them.

    Every EEG file is read and validated (and converted into the float32 cache on first use), all of them
    must share one channel list and time axis, and every image listed in ``image_metadata.npy`` is decoded.

    Returns
    -------
    dict
        ``eeg_dir``, ``image_dir`` (None with ``--eeg_only``), ``subjects`` (per subject and partition:
        shape, container, variant), ``ch_names``, ``times`` (first, last, n, sfreq, onset index) and
        ``images`` (per partition: rows, concepts, files present and missing).

    Raises
    ------
    ttdnet.errors.TtdnetError
        An invalid EEG file, image or metadata file, a root without ``image_metadata.npy`` (unless
        ``--eeg_only``), or files that disagree with each other.
    """
    from tqdm.auto import tqdm

    from ttdnet.data.cache import check_shared_axes, load_cached_eeg
    from ttdnet.data.image_metadata import check_image_file, read_image_metadata
    from ttdnet.data.things_eeg2 import PARTITIONS, ThingsEEG2FormatError, ThingsEEG2Layout

    if config.eeg_only and config.image_dir is not None:
        raise ConfigError("--eeg_only skips the image set, so --image_dir would be ignored; give one of them")
    layout = ThingsEEG2Layout.discover(root, eeg_dir=config.eeg_dir, image_dir=config.image_dir, require_images=False)
    if layout.image_dir is None and not config.eeg_only:
        raise ThingsEEG2FormatError(
            f"{root}: no image_metadata.npy in this folder or in {Path(root) / 'image_set'}; unpack the THINGS-EEG2 "
            "image set there or give its folder with --image_dir, or pass --eeg_only to check the EEG files alone"
        )
    image_dir = None if config.eeg_only else layout.image_dir
    metadata = read_image_metadata(image_dir) if image_dir is not None else None
    progress = {"disable": True if config.json else None}  # no bar in JSON mode or when stderr is not a terminal
    subjects: dict[str, dict] = {}
    files = []
    jobs = [(subject, partition) for subject in layout.subjects for partition in PARTITIONS]
    for subject, partition in tqdm(jobs, desc="reading EEG files", unit="file", **progress):
        path = layout.eeg_file(subject, partition)
        if not path.is_file():
            subjects.setdefault(subject, {})[partition] = {"missing": str(path)}
            continue
        cached = load_cached_eeg(path, config.eeg_cache_dir)
        check_shared_axes(files[:1] + [cached])
        if metadata is not None and cached.data.shape[0] != metadata.n_rows(partition):
            raise ThingsEEG2FormatError(
                f"{path}: {cached.data.shape[0]} image conditions but {metadata.path} lists "
                f"{metadata.n_rows(partition)} {partition} images ({subject})"
            )
        files.append(cached)
        subjects.setdefault(subject, {})[partition] = {
            "shape": list(cached.data.shape),
            "container": cached.container,
            "variant": cached.variant,
            "file": str(path),
        }
    summary: dict = {
        "eeg_dir": str(layout.eeg_dir),
        "image_dir": str(image_dir) if image_dir is not None else None,
        "subjects": subjects,
    }
    if files:
        reference = files[0]
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
    if metadata is not None:
        images = {}
        for partition in PARTITIONS:
            paths = metadata.relative_paths(partition)
            missing = []
            for relative in tqdm(paths, desc=f"decoding {partition} images", unit="image", **progress):
                if (image_dir / relative).is_file():
                    check_image_file(image_dir / relative)
                else:
                    missing.append(relative)
            images[partition] = {
                "rows": len(paths),
                "concepts": len(metadata.unique_concepts(partition)),
                "files_present": len(paths) - len(missing),
                "files_missing": missing[:10],
            }
        summary["images"] = images
    return summary


def format_summary(root: str, summary: dict) -> str:
    """Human-readable text of :func:`summarize_dataset`'s result."""
    lines = [f"THINGS-EEG2 dataset: {Path(root)}", f"  EEG folder:  {summary['eeg_dir']}"]
    lines.append(f"  image set:   {summary['image_dir'] or 'not checked (--eeg_only)'}")
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
        "Load a THINGS-EEG2 root through the data layer and print what it holds. Every EEG file is validated "
        "(all must share one channel list and time axis) and every listed image is decoded. Exits with status 1 "
        "when a file is invalid or missing, or when image_set/image_metadata.npy is missing without --eeg_only."
    ),
    add_arguments=add_arguments,
)
