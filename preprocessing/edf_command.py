"""``ttdnet preprocess edf``: EDF/BDF/BrainVision recordings -> memory-mappable windows for encoder pretraining."""

import argparse
import dataclasses
from typing import ClassVar, Literal

from ttdnet.command import Command
from ttdnet.preprocessing.common import CHANNELS_HELP


@dataclasses.dataclass
class PreprocessEdfConfig:
    """Options of ``ttdnet preprocess edf``. The defaults produce windows that match the default THINGS-EEG2
    preprocessing (17 channels, 100 Hz, 1 s = 100 samples, whitened)."""

    OPTION_RANGES: ClassVar[dict[str, str]] = {
        "sfreq": "(0, inf)",
        "l_freq": "(0, inf)",
        "h_freq": "(0, inf)",
        "window_seconds": "(0, inf)",
        "stride_seconds": "(0, inf)",
        "baseline_seconds": "[0, inf)",
        "shard_windows": "[1, inf)",
        "max_interpolated_fraction": "[0, 1]",
    }

    input_dir: str = dataclasses.field(
        default="data/eegmmidb",
        metadata={"help": "folder searched recursively for .edf, .bdf and .vhdr recordings (e.g. PhysioNet EEGMMIDB)"},
    )
    output_dir: str = dataclasses.field(
        default="data/pretrain-windows", metadata={"help": "writes index.json and shard-NNNNN.npy here"}
    )
    channels: str = dataclasses.field(default="posterior17", metadata={"help": CHANNELS_HELP})
    missing_channels: Literal["skip", "interpolate", "error"] = dataclasses.field(
        default="skip",
        metadata={
            "help": "a recording lacking some of the channels: skip it (listed in the summary), interpolate them "
            "by spherical splines from standard 10-05 positions, or stop with an error"
        },
    )
    max_interpolated_fraction: float = dataclasses.field(
        default=0.25,
        metadata={
            "help": "with --missing_channels interpolate: refuse (list as failed) a recording that lacks more than "
            "this fraction of the --channels, whose output would be too much made up from neighbours; 1 accepts "
            "any number"
        },
    )
    sfreq: float = dataclasses.field(default=100.0, metadata={"help": "target sampling rate in Hz (the model's)"})
    l_freq: float | None = dataclasses.field(
        default=0.5, metadata={"help": "high-pass edge in Hz (MNE FIR, zero phase) before resampling; None: off"}
    )
    h_freq: float | None = dataclasses.field(
        default=None,
        metadata={"help": "low-pass edge in Hz before resampling; None: only the resampler's anti-alias filter"},
    )
    window_seconds: float = dataclasses.field(
        default=1.0, metadata={"help": "window length in seconds (THINGS-EEG2 epochs: 1.0 s = 100 samples at 100 Hz)"}
    )
    stride_seconds: float | None = dataclasses.field(
        default=None, metadata={"help": "step between window starts in seconds; None: window_seconds (no overlap)"}
    )
    normalisation: Literal["whiten", "zscore", "none"] = dataclasses.field(
        default="whiten",
        metadata={
            "help": "per recording: whiten by the inverse square root of its Ledoit-Wolf shrinkage channel "
            "covariance (like THINGS-EEG2 MVNN), z-score each channel, or none (volts)"
        },
    )
    baseline_seconds: float | None = dataclasses.field(
        default=0.2,
        metadata={
            "help": "subtract each window's per-channel mean over its first N seconds (THINGS-EEG2 epochs are "
            "baseline-corrected over -0.2..0 s); None: off"
        },
    )
    shard_windows: int = dataclasses.field(
        default=8192, metadata={"help": "windows per shard file (recordings are never split across shards)"}
    )
    overwrite: bool = dataclasses.field(
        default=False, metadata={"help": "delete an existing corpus in output_dir and start again (else: resume)"}
    )


def run(config: PreprocessEdfConfig, namespace: argparse.Namespace) -> int:
    from ttdnet.preprocessing.edf_corpus import preprocess_edf

    preprocess_edf(config)
    return 0


COMMAND = Command(
    name="preprocess edf",
    summary="cut EDF/BDF/BrainVision recordings into normalised windows (shards + index) for Stage A pretraining",
    config_class=PreprocessEdfConfig,
    run=run,
    description=(
        "Reads every .edf/.bdf/.vhdr under --input_dir with MNE, standardises channel names (PhysioNet 'Fc5.' and "
        "TUH 'EEG FP1-REF' styles included), picks the target channels by name, filters, resamples, normalises "
        "and cuts fixed-length windows into float32 shards with an index.json that records ch_names, sfreq and "
        "n_times. Unreadable files are listed and skipped (exit status 1 when no recording gives a window); rerunning "
        "resumes. See docs/preprocessing.md."
    ),
)
