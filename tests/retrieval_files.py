"""A learnable THINGS-EEG2 fixture for retrieval training: EEG that carries each image's coarse colour layout.

Tests import it as ``from retrieval_files import ...`` (``tests/`` is on pytest's ``pythonpath``).
"""

from pathlib import Path

import numpy as np
from things_files import MORE_NAMES, OFFICIAL_TIMES, TEST_NAMES, TRAIN_NAMES, write_eeg_file, write_image_set

from ttdnet.data.channels import POSTERIOR_17_CHANNELS


def write_subjects(root: Path, seed: int, test_noise_seed: int | None = None) -> None:
    """3 subjects whose EEG carries the image's 2x2 RGB thumbnail (so training has something to learn)."""
    from PIL import Image

    from ttdnet.data import read_image_metadata

    metadata = read_image_metadata(root / "image_set")
    rng = np.random.default_rng(seed)
    mixing = 4 * rng.standard_normal((17, 12))
    for subject in ("sub-01", "sub-02", "sub-03"):
        for partition, n_reps in (("training", 4), ("test", 80)):
            thumbs = []
            for relative in metadata.relative_paths(partition):
                pixels = np.asarray(Image.open(root / "image_set" / relative).convert("RGB"), dtype=np.float64) / 255
                thumbs.append(pixels.reshape(2, 8, 2, 8, 3).mean(axis=(1, 3)).reshape(-1) - 0.5)  # 2x2 RGB
            signal = np.einsum("cf,nf->nc", mixing, np.array(thumbs))[:, None, :, None] * np.sin(np.arange(100) / 7)
            noise = rng.standard_normal((len(thumbs), n_reps, 17, 100))  # always drawn: training data stays equal
            if partition == "test" and test_noise_seed is not None:  # test EEG without any image information
                signal, noise = 0.0, np.random.default_rng(test_noise_seed).standard_normal(noise.shape)
            data = signal + noise
            write_eeg_file(root / subject / f"preprocessed_eeg_{partition}.npy", data, list(POSTERIOR_17_CHANNELS),
                           OFFICIAL_TIMES)  # fmt: skip


TRAIN_CONCEPTS = TRAIN_NAMES + MORE_NAMES[:25]  # 30 concepts x 3 images; 6 held out for validation
TEST_CONCEPTS = TEST_NAMES + MORE_NAMES[25:31]  # 10 test images: top-1 chance 10%


def write_retrieval_dataset(root: Path) -> Path:
    """Images, 3 subjects' EEG and the ``pixels`` feature file under ``root``; returns the feature file."""
    from ttdnet.cli import available_commands, build_parser
    from ttdnet.stages.retrieval_features import run_features

    write_image_set(root / "image_set", train_names=TRAIN_CONCEPTS, test_names=TEST_CONCEPTS, blocks=2)
    write_subjects(root, seed=0)
    command = available_commands()["features"]
    config, _ = build_parser(command).parse_config(["--image_dir", str(root), "--output_dir", str(root / "features")])
    return run_features(config)["output"]


def options(root, features, output_dir, **overrides):
    values = {
        "dataset_root": root,
        "features": features,
        "output_dir": output_dir,
        "eeg_cache_dir": Path(output_dir).parent / "cache",
        "encoder_preset": "tiny",
        "proj_dim": 8,
        "image_hidden_dim": 16,
        "train_batch_size": 8,
        "num_train_epochs": 6,
        "mmd_epochs": 2,
        "val_fraction": 0.2,
        "selection_metric": "top1",
        "kway": [2],
        "topk": [1],
        "mc_trials": 5,
        "learning_rate": 3e-3,
        "report_to": "none",
        "seed": 3,
    }
    values.update(overrides)
    args = []
    for key, value in values.items():
        args += [f"--{key}", *([str(v) for v in value] if isinstance(value, list) else [str(value)])]
    return args
