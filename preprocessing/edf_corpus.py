"""The ``ttdnet preprocess edf`` driver: every recording under a folder into one window corpus, resumably.

Recordings are found recursively, processed one by one (:func:`ttdnet.preprocessing.edf.process_recording`) and
appended to :class:`ttdnet.data.eeg_window_writer.EEGWindowWriter` shards; unusable ones are recorded in the index as
``skipped`` (a deliberate option, e.g. ``--missing_channels skip``) or ``failed`` (to be fixed). A run after which
the corpus holds no window is an error.
"""

import time
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from ttdnet.config import check_option_ranges, config_to_dict, save_config
from ttdnet.data.eeg_window_writer import EEGWindowWriter
from ttdnet.data.eeg_windows import INDEX_NAME
from ttdnet.preprocessing.common import PreprocessingError, package_versions, resolve_channels
from ttdnet.preprocessing.edf import BadRecording, SkipRecording, process_recording, window_samples


COMMAND_NAME = "preprocess edf"
EXTENSIONS = (".edf", ".bdf", ".vhdr")


def find_recordings(input_dir: Path) -> list[Path]:
    """Every EDF/BDF/BrainVision header under ``input_dir``, sorted."""
    if not input_dir.is_dir():
        raise PreprocessingError(f"--input_dir {input_dir} does not exist")
    found = sorted(path for path in input_dir.rglob("*") if path.suffix.lower() in EXTENSIONS and path.is_file())
    if not found:
        raise PreprocessingError(f"{input_dir}: no .edf, .bdf or .vhdr files found (searched recursively)")
    return found


def normalisation_record(config) -> dict[str, Any]:
    """The normalisation entry of the index (part of the input contract)."""
    descriptions = {
        "whiten": "per recording, x(t) -> Sigma^(-1/2) x(t), Sigma = Ledoit-Wolf shrinkage covariance of the "
        "standardised channels rescaled back (the MVNN recipe, observations = all samples of the filtered, resampled "
        "recording outside BAD annotations); output is dimensionless with ~unit variance per channel and "
        "decorrelated channels, like THINGS-EEG2 MVNN data",
        "zscore": "per recording and channel, (x - mean) / std over all samples outside BAD annotations; "
        "dimensionless, unit variance",
        "none": "no normalisation; volts",
    }
    return {
        "method": config.normalisation,
        "description": descriptions[config.normalisation],
        "baseline_seconds": config.baseline_seconds,
    }


def filter_record(config) -> dict[str, Any]:
    """The filter entry of the index (part of the input contract)."""
    return {
        "l_freq": config.l_freq,
        "h_freq": config.h_freq,
        "design": "mne.io.Raw.filter defaults (FIR, firwin, zero phase), at the original rate",
        "resampling": "mne.io.Raw.resample (FFT)",
    }


def preprocess_edf(config) -> dict[str, Any]:
    """Build or resume a window corpus from every recording under ``config.input_dir``.

    Parameters
    ----------
    config : PreprocessEdfConfig

    Returns
    -------
    dict
        Summary: ``written`` (recordings added this run), ``windows`` (total in the corpus), ``skipped`` and
        ``failed`` (lists of ``{"path", "reason"}`` in the corpus), ``already_done`` (recordings skipped as done).

    Raises
    ------
    PreprocessingError
        Options out of range or inconsistent; no recording found; after the run, a corpus without any window
        (every recording failed or was skipped: the count and the first reasons, the full list being in the index).
    """
    check_option_ranges(config)
    ch_names = resolve_channels(config.channels)
    n_times, _ = window_samples(config)
    input_dir = Path(config.input_dir)
    output_dir = Path(config.output_dir)
    recordings = find_recordings(input_dir)
    if config.overwrite and (output_dir / INDEX_NAME).is_file():
        for path in [output_dir / INDEX_NAME, *output_dir.glob("shard-*.npy")]:
            path.unlink()
    output_dir.mkdir(parents=True, exist_ok=True)
    writer = EEGWindowWriter(
        output_dir,
        ch_names=ch_names,
        sfreq=config.sfreq,
        n_times=n_times,
        window_seconds=config.window_seconds,
        normalisation=normalisation_record(config),
        filter=filter_record(config),
        extra={"config": config_to_dict(config), "packages": package_versions(), "input_dir": str(input_dir)},
    )
    save_config(config, output_dir / "config.yaml", COMMAND_NAME)
    done = writer.done_sources
    buffer: list[np.ndarray] = []
    buffered_sources: list[dict[str, Any]] = []
    written = already = 0
    started = time.time()

    def flush():
        if buffer:
            writer.write_shard(np.concatenate(buffer), list(buffered_sources))
            buffer.clear()
            buffered_sources.clear()

    for path in tqdm(recordings, desc="recordings", unit="file"):
        key = str(path.relative_to(input_dir))
        if key in done:
            already += 1
            continue
        try:
            windows, record = process_recording(path, ch_names, config)
        except SkipRecording as reason:
            writer.record_problem("skipped", key, str(reason))
            tqdm.write(f"skipped {path}: {reason}")
            continue
        except BadRecording as reason:
            writer.record_problem("failed", key, str(reason))
            tqdm.write(f"FAILED {path}: {reason}")
            continue
        buffer.append(windows)
        buffered_sources.append({"path": key, "size_bytes": path.stat().st_size, **record})
        written += 1
        if sum(len(block) for block in buffer) >= config.shard_windows:
            flush()
    flush()
    writer.save_index()
    summary = {
        "written": written,
        "already_done": already,
        "windows": writer.n_windows,
        "shards": len(writer.index["shards"]),
        "skipped": list(writer.index["skipped"]),
        "failed": list(writer.index["failed"]),
        "seconds": round(time.time() - started, 1),
    }
    if summary["windows"] == 0:
        raise PreprocessingError(_nothing_written(summary, len(recordings), input_dir, output_dir))
    print(_summary_text(summary, writer.index["shards"], output_dir, ch_names, config, n_times))
    return summary


def _nothing_written(summary, n_recordings: int, input_dir: Path, output_dir: Path) -> str:
    """The one-line error of a run after which the corpus holds no window: counts, the first reasons, the fix."""
    problems = summary["failed"] + summary["skipped"]
    shown = "; ".join(f"{entry['path']}: {_shortened(entry['reason'])}" for entry in problems[:3])
    more = f"; and {len(problems) - 3} more" if len(problems) > 3 else ""
    return (
        f"{input_dir}: none of the {n_recordings} recordings gave a window ({len(summary['failed'])} failed, "
        f"{len(summary['skipped'])} skipped): {shown}{more}. Every reason is listed under 'failed' and 'skipped' in "
        f"{output_dir / INDEX_NAME}; fix the recordings or the options and rerun"
    )


def _shortened(reason: str, limit: int = 300) -> str:
    return reason if len(reason) <= limit else reason[: limit - 3] + "..."


def _summary_text(summary, shards: list[dict], output_dir: Path, ch_names, config, n_times: int) -> str:
    """The report printed at the end: corpus size, this run's counts, interpolations, every problem by name."""
    lines = [
        f"{output_dir}: {summary['windows']} windows of {len(ch_names)} channels x {n_times} samples at "
        f"{config.sfreq:g} Hz in {summary['shards']} shards",
        f"  this run: {summary['written']} recordings added, {summary['already_done']} already done, "
        f"{len(summary['skipped'])} skipped, {len(summary['failed'])} failed ({summary['seconds']} s)",
    ]
    sources = [source for shard in shards for source in shard["sources"]]
    counts = {source["path"]: len(source.get("missing_channels") or []) for source in sources}
    interpolated = {path: count for path, count in counts.items() if count}
    if interpolated:
        most = max(interpolated, key=interpolated.get)
        low, high = min(interpolated.values()), interpolated[most]
        spread = f"{high}" if low == high else f"{low} to {high}"
        lines.append(
            f"  interpolated: {len(interpolated)} of {len(sources)} recordings, {spread} of {len(ch_names)} channels "
            f"each (most: {most}); per recording in {output_dir / INDEX_NAME} (n_interpolated, missing_channels)"
        )
    for kind in ("skipped", "failed"):
        for entry in summary[kind]:
            lines.append(f"  {kind}: {entry['path']}: {entry['reason']}")
    if summary["failed"]:
        lines.append(
            f"  {len(summary['failed'])} recordings failed and were not written; fix or replace them and rerun to add "
            "them (resumes)."
        )
    return "\n".join(lines)
