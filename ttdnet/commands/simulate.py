"""``ttdnet simulate``: write a synthetic THINGS-EEG2 dataset in the official on-disk formats."""

import argparse
import dataclasses
from typing import ClassVar, Literal

from ttdnet.command import Command
from ttdnet.config import SEED_RANGE


@dataclasses.dataclass
class SimulateConfig:
    """Options of ``ttdnet simulate``. The defaults make a small dataset that generates in well under a minute."""

    OPTION_RANGES: ClassVar[dict[str, str]] = {
        "n_subjects": "[1, 99]",  # folder names sub-01 ... sub-99
        "n_train_concepts": "[1, inf)",
        "images_per_concept": "[1, 99]",  # THINGS file numbers _01 ... _99
        "n_test_images": "[1, inf)",
        "train_repetitions": "[1, inf)",
        "test_repetitions": "[1, inf)",
        "snr": "(0, inf)",
        "image_size": "[16, inf)",  # the smallest the procedural images are drawn at
        "seed": SEED_RANGE,
    }

    output_dir: str = dataclasses.field(
        default="data/synthetic-things-eeg2", metadata={"help": "dataset root to write (see the README's data layout)"}
    )
    n_subjects: int = dataclasses.field(
        default=2, metadata={"help": "number of subjects, written as sub-01, sub-02, ..."}
    )
    n_train_concepts: int = dataclasses.field(default=40, metadata={"help": "training concepts (1654 in THINGS-EEG2)"})
    images_per_concept: int = dataclasses.field(
        default=10, metadata={"help": "training images per concept (10 in THINGS-EEG2)"}
    )
    n_test_images: int = dataclasses.field(
        default=20, metadata={"help": "test images, one per test concept (200 in THINGS-EEG2)"}
    )
    train_repetitions: int = dataclasses.field(
        default=4, metadata={"help": "repetitions per training image (4 in THINGS-EEG2)"}
    )
    test_repetitions: int = dataclasses.field(
        default=80, metadata={"help": "repetitions per test image (80 in THINGS-EEG2)"}
    )
    n_chans: Literal[17, 63] = dataclasses.field(
        default=17, metadata={"help": "17 occipito-parietal channels (official release) or all 63, raw order"}
    )
    snr: float = dataclasses.field(
        default=0.3,
        metadata={
            "help": "single-trial signal-to-noise ratio: RMS of the image-driven evoked signal over RMS of the noise"
        },
    )
    image_size: int = dataclasses.field(default=128, metadata={"help": "side of the square JPEG stimuli in pixels"})
    raw: bool = dataclasses.field(
        default=False,
        metadata={
            "help": "also write continuous 1000 Hz raw recordings (raw_data/sub-XX/ses-YY/raw_eeg_*.npy, 4 sessions) "
            "for `ttdnet preprocess things-eeg2`"
        },
    )
    seed: int = dataclasses.field(default=0, metadata={"help": "random seed; the same seed writes the same bytes"})
    overwrite: bool = dataclasses.field(
        default=False, metadata={"help": "replace a previous synthetic dataset in output_dir"}
    )


def run(config: SimulateConfig, namespace: argparse.Namespace) -> int:
    from ttdnet.simulate.writer import simulate_dataset

    summary = simulate_dataset(config)
    print(summary)
    return 0


COMMAND = Command(
    name="simulate",
    summary="write a synthetic THINGS-EEG2 dataset (MNE head-model EEG, procedural images) in the official formats",
    config_class=SimulateConfig,
    run=run,
)
