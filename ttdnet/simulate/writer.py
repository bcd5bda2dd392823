"""``simulate_dataset``: write a synthetic THINGS-EEG2 dataset in the official on-disk formats.

Layout (that of the official release; described in ``docs/synthetic-data.md``, "What is written")::

    <output_dir>/
      preprocessed_data/sub-XX/preprocessed_eeg_{training,test}.npy
      image_set/image_metadata.npy
      image_set/{training,test}_images/<k>_<concept>/<concept>_<NN><b|s>.jpg
      raw_data/sub-XX/ses-YY/raw_eeg_{training,test}.npy   with --raw: continuous 1000 Hz recordings + stim
      config.yaml         the resolved command configuration
      simulation.json     seed, scale, generative-model parameters, per-subject draws, package versions

The same configuration writes the same bytes in every file (no timestamps, no absolute paths).
"""

import dataclasses
import platform
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

import ttdnet
from ttdnet.config import check_option_ranges, config_to_dict, save_config
from ttdnet.data.channels import POSTERIOR_17_CHANNELS, RAW_63_CHANNELS
from ttdnet.errors import TtdnetError
from ttdnet.io import atomic_np_save, atomic_write_bytes, atomic_write_json
from ttdnet.simulate import epochs, raw
from ttdnet.simulate.eeg_model import EegModel, SubjectModel
from ttdnet.simulate.features import N_FEATURES, image_features
from ttdnet.simulate.images import concept_style, encode_jpeg, render_image
from ttdnet.simulate.layout import ImageEntry, build_entries, image_metadata
from ttdnet.simulate.names import concept_names, stable_seed
from ttdnet.simulate.staging import GENERATOR, staged_directory
from ttdnet.versions import package_versions


FORMAT_VERSION = 1
SNR_DEFINITION = (
    "snr = RMS of the image-driven evoked signal / expected RMS of the single-trial noise, both in volts before "
    "baseline correction and whitening, on the 17 posterior channels at 100 Hz; the signal RMS is over all "
    "training and test images of this dataset and the samples 0 ... 0.79 s; the noise RMS over an epoch, "
    "with session noise levels at their mean square of 1"
)
WHITENING = (
    "W = S^(-1/2) per subject, S the Ledoit-Wolf covariance (standardised channels, rescaled) of "
    f"{epochs.N_WHITENING_TRIALS} simulated noise-only epochs, baseline-corrected and pooled over time; "
    "x'(t) = W x(t) on every epoch of both partitions"
)
VERSIONED_PACKAGES = ("numpy", "scipy", "mne", "pillow", "scikit-learn")
IMAGE_WRITER_THREADS = 4
MAX_PENDING_WRITES = 256


@dataclasses.dataclass(frozen=True)
class SimulationSummary:
    """What :func:`simulate_dataset` wrote; ``str()`` is a readable report."""

    output_dir: Path
    n_subjects: int
    n_train_concepts: int
    n_train_images: int
    n_test_images: int
    train_shape: tuple[int, ...]
    test_shape: tuple[int, ...]
    ch_names: tuple[str, ...]
    n_files: int
    total_bytes: int
    seconds: float

    def __str__(self) -> str:
        subjects = f"sub-01 … sub-{self.n_subjects:02d}" if self.n_subjects > 1 else "sub-01"
        return "\n".join(
            [
                f"Synthetic THINGS-EEG2 dataset written to {self.output_dir}",
                f"  subjects      {self.n_subjects} ({subjects}), {len(self.ch_names)} channels",
                f"  training EEG  {self.train_shape} per subject (images, repetitions, channels, times)",
                f"  test EEG      {self.test_shape} per subject",
                f"  images        {self.n_train_images} training ({self.n_train_concepts} concepts), "
                f"{self.n_test_images} test",
                f"  files         {self.n_files}, {self.total_bytes / 1e6:.1f} MB",
                f"  took          {self.seconds:.1f} s",
            ]
        )


def _validate(config: Any) -> None:
    """The checks a config built in code (not parsed) also needs: its ranges, then what no range can say."""
    check_option_ranges(config)
    if config.n_chans not in (17, 63):
        raise TtdnetError(f"n_chans is {config.n_chans}; choose 17 (posterior, official) or 63 (all, raw order)")
    if config.raw and (config.train_repetitions % 2 or config.test_repetitions % 4):
        raise TtdnetError(
            f"--raw needs train_repetitions divisible by 2 (got {config.train_repetitions}) and test_repetitions "
            f"by 4 (got {config.test_repetitions}): each training image is split over 2 sessions, each test image "
            "over 4"
        )


def _render_partition(
    root: Path,
    folder: str,
    entries: list[ImageEntry],
    seed: int,
    size: int,
    writers: ThreadPoolExecutor,
    progress: tqdm,
) -> np.ndarray:
    """Render every image of a partition and queue its file write; return the features, shape (n_images, N_FEATURES).

    Files are written by ``writers`` threads, so each write's ``fsync`` overlaps the next renders.
    """
    features = np.empty((len(entries), N_FEATURES))
    styles = {}
    pending = []
    for row, entry in enumerate(entries):
        if entry.concept not in styles:
            styles[entry.concept] = concept_style(seed, entry.concept)
        image = render_image(seed, entry.concept, entry.number, size, styles[entry.concept])
        pending.append(
            writers.submit(atomic_write_bytes, root / folder / entry.folder / entry.file, encode_jpeg(image))
        )
        features[row] = image_features(image)
        progress.update()
        if len(pending) >= MAX_PENDING_WRITES:
            pending.pop(0).result()
    for write in pending:
        write.result()
    return features


def official_eeg_file(data: np.ndarray, ch_names: list[str]) -> dict[str, Any]:
    """The dict of a preprocessed EEG file: data, channel names and the official time axis."""
    return {"preprocessed_eeg_data": data, "ch_names": list(ch_names), "times": epochs.TIMES.copy()}


def _subject_record(subject: SubjectModel) -> dict[str, Any]:
    names = [component.name for component in subject.model.parameters.components]
    return {
        "latencies_s": dict(zip(names, subject.latencies_s.tolist())),
        "alpha_frequency_hz": float(subject.alpha_frequency_hz),
        "session_noise_scales": subject.session_noise_scales.tolist(),
        "session_signal_gains": subject.session_signal_gains.tolist(),
        "image_gain": float(subject.image_gain),
        "common_gain": float(subject.common_gain),
    }


def _write_subject(
    model: EegModel,
    number: int,
    all_features: np.ndarray,
    train_features: np.ndarray,
    test_features: np.ndarray,
    channel_names: list[str],
    config: Any,
    root: Path,
    progress: tqdm,
) -> SubjectModel:
    """Simulate and write both EEG files of subject ``number``; return its calibrated model."""
    channels = [RAW_63_CHANNELS.index(name) for name in channel_names]
    subject = model.subject(number)
    subject.calibrate(all_features, config.snr)
    whitener = epochs.mvnn_whitener(subject, channels, config.seed)
    session_rng = np.random.default_rng(stable_seed(config.seed, "session-split", number))
    sessions = {
        "training": epochs.training_sessions(
            session_rng, config.n_train_concepts, config.images_per_concept, config.train_repetitions
        ),
        "test": epochs.test_sessions(len(test_features), config.test_repetitions),
    }
    features = {"training": train_features, "test": test_features}
    if config.raw:
        _write_raw_subject(subject, features, sessions, config.seed, root / "raw_data" / f"sub-{number:02d}")
    for partition in ("training", "test"):
        data = epochs.simulate_partition(
            subject,
            features[partition],
            epochs.stored_order(sessions[partition]),
            channels,
            whitener,
            config.seed,
            partition,
            on_chunk=progress.update,
        )
        path = root / "preprocessed_data" / f"sub-{number:02d}" / f"preprocessed_eeg_{partition}.npy"
        atomic_np_save(path, official_eeg_file(data, channel_names), allow_pickle=True)
        del data
    return subject


def _write_raw_subject(
    subject: SubjectModel, features: dict[str, np.ndarray], sessions: dict[str, np.ndarray], seed: int, folder: Path
) -> None:
    """Write the subject's ``ses-YY/raw_eeg_{training,test}.npy`` files (continuous 1000 Hz recordings).

    ``sessions[partition]`` holds the session of every merged repetition, shape (n_images, n_repetitions):
    the count of each session in an image's row is how often that session shows the image.
    """
    target_rng = np.random.default_rng(stable_seed(seed, "target-image"))
    all_features = np.concatenate(list(features.values()))
    target_features = all_features.mean(axis=0) + all_features.std(axis=0) * target_rng.standard_normal(
        all_features.shape[1]
    )
    for partition in ("training", "test"):
        for session in range(subject.model.parameters.n_sessions):
            counts = (sessions[partition] == session).sum(axis=1)
            recording = raw.simulate_raw_session(
                subject, features[partition], counts, session, target_features, seed, partition
            )
            atomic_np_save(
                folder / f"ses-{session + 1:02d}" / f"raw_eeg_{partition}.npy", recording, allow_pickle=True
            )


def _versions() -> dict[str, str]:
    return {"python": platform.python_version(), "ttdnet": ttdnet.__version__, **package_versions(VERSIONED_PACKAGES)}


def simulate_dataset(config: Any) -> SimulationSummary:
    """Write a synthetic THINGS-EEG2 dataset.

    Parameters
    ----------
    config : ttdnet.commands.simulate.SimulateConfig
        Scale, channels, SNR, image size, seed, destination and ``overwrite``.

    Returns
    -------
    SimulationSummary

    Raises
    ------
    TtdnetError
        For an invalid value, or an ``output_dir`` that is not empty and not a previous synthetic dataset
        (or is one, without ``overwrite``).
    """
    _validate(config)
    started = time.perf_counter()
    destination = Path(config.output_dir)
    train_names, test_names = concept_names(config.seed, config.n_train_concepts, config.n_test_images)
    train_entries, test_entries = build_entries(train_names, test_names, config.images_per_concept, config.seed)
    channel_names = list(POSTERIOR_17_CHANNELS if config.n_chans == 17 else RAW_63_CHANNELS)

    with staged_directory(destination, config.overwrite) as staging:
        image_root = staging / "image_set"
        n_images = len(train_entries) + len(test_entries)
        with (
            tqdm(total=n_images, desc="images", unit="image", disable=None) as bar,
            ThreadPoolExecutor(IMAGE_WRITER_THREADS) as writers,
        ):
            train_features = _render_partition(
                image_root, "training_images", train_entries, config.seed, config.image_size, writers, bar
            )
            test_features = _render_partition(
                image_root, "test_images", test_entries, config.seed, config.image_size, writers, bar
            )
        atomic_np_save(
            image_root / "image_metadata.npy", image_metadata(train_entries, test_entries), allow_pickle=True
        )

        model = EegModel(config.seed)
        all_features = np.concatenate([train_features, test_features])
        n_chunks = -(-len(train_entries) // epochs.CHUNK_IMAGES) + -(-len(test_entries) // epochs.CHUNK_IMAGES)
        subject_records = {}
        with tqdm(total=config.n_subjects * n_chunks, desc="EEG", unit="chunk", disable=None) as bar:
            for number in range(1, config.n_subjects + 1):
                subject = _write_subject(
                    model, number, all_features, train_features, test_features, channel_names, config, staging, bar
                )
                subject_records[f"sub-{number:02d}"] = _subject_record(subject)

        save_config(config, staging / "config.yaml", command="simulate")
        scale = {key: value for key, value in config_to_dict(config).items() if key not in ("output_dir", "overwrite")}
        atomic_write_json(
            staging / "simulation.json",
            {
                "generator": GENERATOR,
                "format_version": FORMAT_VERSION,
                "seed": config.seed,
                "scale": scale,
                "ch_names": channel_names,
                "snr": config.snr,
                "snr_definition": SNR_DEFINITION,
                "whitening": WHITENING,
                "repetition_order": "official: merged session order permuted by repetition_permutation(R)",
                "model": dataclasses.asdict(model.parameters),
                "subjects": subject_records,
                "versions": _versions(),
            },
        )
        files = [path for path in staging.rglob("*") if path.is_file()]
        n_files, total_bytes = len(files), sum(path.stat().st_size for path in files)

    return SimulationSummary(
        output_dir=destination,
        n_subjects=config.n_subjects,
        n_train_concepts=config.n_train_concepts,
        n_train_images=len(train_entries),
        n_test_images=len(test_entries),
        train_shape=(len(train_entries), config.train_repetitions, len(channel_names), len(epochs.TIMES)),
        test_shape=(len(test_entries), config.test_repetitions, len(channel_names), len(epochs.TIMES)),
        ch_names=tuple(channel_names),
        n_files=n_files,
        total_bytes=total_bytes,
        seconds=time.perf_counter() - started,
    )
