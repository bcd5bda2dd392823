"""``ttdnet preprocess things-eeg2``: the official THINGS-EEG2 preprocessing, every choice a recorded option."""

import argparse
import dataclasses
from typing import ClassVar, Literal

from ttdnet.command import Command
from ttdnet.config import SEED_RANGE
from ttdnet.data.channels import OFFICIAL_SHUFFLE_SEED
from ttdnet.preprocessing.common import CHANNELS_HELP


@dataclasses.dataclass
class PreprocessThingsEEG2Config:
    """Options of ``ttdnet preprocess things-eeg2``. The defaults reproduce the official release's steps, except
    that the noise covariance is fitted on the training partition only (``--mvnn_fit train+test`` for the
    release's choice)."""

    OPTION_RANGES: ClassVar[dict[str, str]] = {
        "subjects": "[0, inf)",
        "sessions": "[0, inf)",
        "sfreq": "(0, inf)",
        "max_rep_train": "[1, inf)",
        "max_rep_test": "[1, inf)",
        "seed": SEED_RANGE,
        "epoch_chunk": "[1, inf)",
    }
    RESULT_INDEPENDENT: ClassVar[tuple[str, ...]] = ("output_dir", "subjects", "epoch_chunk", "checksums", "overwrite")
    """Options that do not change a subject's EEG files: a finished subject is skipped on a rerun when every other
    option equals the one recorded in its ``provenance.json``."""

    raw_dir: str = dataclasses.field(
        default="data/things-eeg2/raw_data",
        metadata={
            "help": "input folder holding sub-XX/ses-YY/raw_eeg_{training,test}.npy (or its parent with raw_data/); "
            "with --input_format brainvision, the source_data folder holding sub-XX/ses-YY/{eeg,beh}/"
        },
    )
    input_format: Literal["raw-npy", "brainvision"] = dataclasses.field(
        default="raw-npy",
        metadata={
            "help": "raw-npy: the published raw_eeg_*.npy dicts with a stim row; brainvision: the source .vhdr "
            "recordings paired 1:1 with the behavioural .mat trials"
        },
    )
    output_dir: str = dataclasses.field(
        default="data/things-eeg2/preprocessed_data",
        metadata={"help": "writes sub-XX/preprocessed_eeg_{training,test}.npy and sub-XX/provenance.json here"},
    )
    subjects: list[int] | None = dataclasses.field(
        default=None, metadata={"help": "subject numbers to process (default: every sub-XX folder found)"}
    )
    sessions: list[int] | None = dataclasses.field(
        default=None, metadata={"help": "session numbers to use (default: every ses-YY folder; 4 in THINGS-EEG2)"}
    )
    channels: str = dataclasses.field(default="posterior17", metadata={"help": CHANNELS_HELP})
    tmin: float = dataclasses.field(default=-0.2, metadata={"help": "epoch start in seconds relative to image onset"})
    tmax: float = dataclasses.field(default=0.8, metadata={"help": "epoch end in seconds (inclusive, as in MNE)"})
    baseline: bool = dataclasses.field(
        default=True,
        metadata={"help": "subtract each channel's mean over tmin..0 s, at the raw rate before resampling"},
    )
    sfreq: float = dataclasses.field(
        default=100.0, metadata={"help": "output sampling rate in Hz (MNE FFT resampling of the epochs); 250 for NICE"}
    )
    crop_tmin: float | None = dataclasses.field(
        default=None,
        metadata={
            "help": "after whitening, drop samples before this time in seconds (NICE/ATM: 0.0); None keeps the epoch"
        },
    )
    target_code: int = dataclasses.field(
        default=99999, metadata={"help": "event code of the target (Buzz Lightyear) trials, which are removed"}
    )
    max_rep_train: int = dataclasses.field(
        default=2, metadata={"help": "repetitions kept per training image and session (2 officially)"}
    )
    max_rep_test: int = dataclasses.field(
        default=20, metadata={"help": "repetitions kept per test image and session (20 officially)"}
    )
    seed: int = dataclasses.field(
        default=OFFICIAL_SHUFFLE_SEED,
        metadata={"help": "random_state of the repetition selection and the merged-repetition permutation"},
    )
    mvnn_dim: Literal["time", "epochs", "none"] = dataclasses.field(
        default="time",
        metadata={
            "help": "noise covariance per condition: over repetitions at each time point (time, the release), over "
            "time points of each repetition (epochs, NICE/ATM), or no whitening (none)"
        },
    )
    mvnn_fit: Literal["train", "train+test"] = dataclasses.field(
        default="train",
        metadata={
            "help": "partitions the whitening is fitted on, per session: train (no test data seen) or train+test "
            "(equal-weight mean, reproduces the official files)"
        },
    )
    mvnn_backend: Literal["batched", "sklearn"] = dataclasses.field(
        default="batched",
        metadata={
            "help": "batched: vectorised numpy evaluation of StandardScaler + ledoit_wolf; sklearn: one call per "
            "covariance, as the official code (same numbers, much slower)"
        },
    )
    shuffle_repetitions: bool = dataclasses.field(
        default=True,
        metadata={"help": "apply the official fixed permutation to the merged repetition axis (seeded by --seed)"},
    )
    dtype: Literal["float64", "float32"] = dataclasses.field(
        default="float64", metadata={"help": "stored dtype; the official files are float64"}
    )
    epoch_chunk: int = dataclasses.field(
        default=2000, metadata={"help": "epochs extracted at once at the raw rate; bounds peak memory"}
    )
    checksums: bool = dataclasses.field(
        default=True, metadata={"help": "record the SHA-256 of every input and output file in provenance.json"}
    )
    overwrite: bool = dataclasses.field(
        default=False,
        metadata={
            "help": "redo subjects whose provenance.json exists (otherwise such a subject is skipped as done when "
            "recorded with the same options, and an error when not)"
        },
    )


def run(config: PreprocessThingsEEG2Config, namespace: argparse.Namespace) -> int:
    from ttdnet.preprocessing.things_eeg2 import preprocess_things_eeg2

    preprocess_things_eeg2(config)
    return 0


COMMAND = Command(
    name="preprocess things-eeg2",
    summary="preprocess THINGS-EEG2 raw recordings into the official format, with MVNN and provenance",
    config_class=PreprocessThingsEEG2Config,
    run=run,
    description=(
        "Raw THINGS-EEG2 (raw_eeg_*.npy or BrainVision source) -> sub-XX/preprocessed_eeg_{training,test}.npy in "
        "the official format + provenance.json. Steps: channel selection, target removal, epoching, baseline, "
        "resampling, repetition selection, multivariate noise normalisation (fit partition explicit, train-only by "
        "default), session merge and the official repetition permutation. See docs/preprocessing.md."
    ),
)
