"""``ttdnet simulate-ceiling``: a THINGS-EEG2-shaped retrieval benchmark whose best possible accuracy is known.

It writes the EEG of :class:`ttdnet.simulate.linear_gaussian.LinearGaussianModel` in the official formats,
``image_metadata.npy`` (no stimulus images: the features come from the model, not from pixels), the image
features as a ``ttdnet features`` file, and ``ceiling.json``: per subject, the Bayes-optimal 200-way
top-1/top-5 (Mahalanobis ranking under the true parameters) on the written test EEG and its expectation over
fresh test sets. Layout::

    <output_dir>/
      preprocessed_data/sub-XX/preprocessed_eeg_{training,test}.npy
      image_set/image_metadata.npy
      features/linear_gaussian.safetensors
      latents.npz         the true latents and nuisance of every image (training_latents, test_nuisance, ...)
      ceiling.json        ceilings per subject, the parameters, the definition
      simulation.json     the generator marker, scale and parameters
      config.yaml         the resolved options (rerun with --config)
"""

import argparse
import dataclasses
import json
import time
from pathlib import Path
from typing import ClassVar, Literal

import numpy as np

from ttdnet.command import Command
from ttdnet.config import SEED_RANGE
from ttdnet.simulate.linear_gaussian import LinearGaussianParameters


CEILING_DEFINITION = (
    "Bayes-optimal ranking of the test gallery for the mean of the test repetitions under the true parameters "
    "(Gaussian likelihood of the query given each gallery image's latent); the features determine the latents "
    "exactly when feature_noise is 0, so no retrieval model that sees the EEG and the features can do better "
    "in expectation (with feature_noise > 0 the number is an upper bound)"
)
FEATURE_FILE = "features/linear_gaussian.safetensors"


@dataclasses.dataclass
class CeilingDataConfig(LinearGaussianParameters):
    """Options of ``ttdnet simulate-ceiling``: scale and destination, then the model's knobs."""

    OPTION_RANGES: ClassVar[dict[str, str]] = {
        "n_subjects": "[1, 99]",  # THINGS folder names: sub-01 ... sub-99
        "n_train_concepts": "[1, inf)",
        "images_per_concept": "[1, 99]",  # THINGS file names: <concept>_01b.jpg ... _99b.jpg
        "n_test_images": "[5, inf)",  # top-5 needs at least five
        "train_repetitions": "[2, inf)",  # the baselines estimate the noise from repetitions
        "test_repetitions": "[1, inf)",
        "ceiling_draws": "[1, inf)",
        "seed": SEED_RANGE,
    }

    output_dir: str = dataclasses.field(default="data/synthetic-ceiling", metadata={"help": "dataset root to write"})
    n_subjects: int = dataclasses.field(default=1, metadata={"help": "subjects, written as sub-01, sub-02, ..."})
    n_train_concepts: int = dataclasses.field(default=1654, metadata={"help": "training concepts (THINGS-EEG2: 1654)"})
    images_per_concept: int = dataclasses.field(default=10, metadata={"help": "training images per concept"})
    n_test_images: int = dataclasses.field(default=200, metadata={"help": "test images, one per test concept"})
    train_repetitions: int = dataclasses.field(default=4, metadata={"help": "repetitions per training image"})
    test_repetitions: int = dataclasses.field(default=80, metadata={"help": "repetitions per test image"})
    n_chans: Literal[17, 63] = dataclasses.field(
        default=17, metadata={"help": "17 occipito-parietal channels (official release) or all 63"}
    )
    ceiling_draws: int = dataclasses.field(
        default=20, metadata={"help": "fresh test sets for the expected ceiling (each of n_test_images images)"}
    )
    seed: int = dataclasses.field(default=0, metadata={"help": "random seed; the same seed writes the same data"})
    overwrite: bool = dataclasses.field(
        default=False, metadata={"help": "replace a previous synthetic dataset in output_dir"}
    )


def parameters_of(config: CeilingDataConfig) -> LinearGaussianParameters:
    """The model knobs of ``config`` (its :class:`LinearGaussianParameters` fields)."""
    names = [field.name for field in dataclasses.fields(LinearGaussianParameters)]
    return LinearGaussianParameters(**{name: getattr(config, name) for name in names})


def write_ceiling_dataset(config: CeilingDataConfig) -> dict:
    """Write the dataset and return the content of ``ceiling.json``.

    Raises
    ------
    TtdnetError
        An invalid value, or an ``output_dir`` that is not empty and not a previous synthetic dataset.
    """
    import torch
    from tqdm.auto import tqdm

    from ttdnet.config import check_option_ranges, config_to_dict, save_config
    from ttdnet.data.channels import POSTERIOR_17_CHANNELS, RAW_63_CHANNELS
    from ttdnet.io import atomic_np_save, atomic_open, atomic_write_json
    from ttdnet.simulate.layout import build_entries, image_metadata
    from ttdnet.simulate.linear_gaussian import LinearGaussianModel, ceiling_scores
    from ttdnet.simulate.names import concept_names, stable_seed
    from ttdnet.simulate.staging import GENERATOR, staged_directory
    from ttdnet.simulate.writer import official_eeg_file
    from ttdnet.stages.feature_file import write_feature_file

    check_option_ranges(config)  # also when called from code, not the command line
    started = time.perf_counter()
    parameters = parameters_of(config)
    channels = list(POSTERIOR_17_CHANNELS if config.n_chans == 17 else RAW_63_CHANNELS)
    model = LinearGaussianModel(config.seed, parameters, channels)
    train_names, test_names = concept_names(config.seed, config.n_train_concepts, config.n_test_images)
    train_entries, test_entries = build_entries(train_names, test_names, config.images_per_concept, config.seed)
    counts = {"training": len(train_entries), "test": len(test_entries)}
    repetitions = {"training": config.train_repetitions, "test": config.test_repetitions}
    latent_rng = np.random.default_rng(stable_seed(config.seed, "ceiling-latents"))
    latents = {split: latent_rng.standard_normal((n, parameters.n_latent)) for split, n in counts.items()}
    nuisance = {split: latent_rng.standard_normal((n, parameters.n_nuisance)) for split, n in counts.items()}
    metadata = image_metadata(train_entries, test_entries)
    paths = {
        split: [
            f"{split}_images/{c}/{f}" for c, f in zip(metadata[f"{key}_img_concepts"], metadata[f"{key}_img_files"])
        ]
        for split, key in (("training", "train"), ("test", "test"))
    }
    subjects = {}
    with staged_directory(config.output_dir, config.overwrite) as staging:
        atomic_np_save(staging / "image_set" / "image_metadata.npy", metadata, allow_pickle=True)
        truth = {f"{split}_latents": latents[split] for split in counts}
        truth.update({f"{split}_nuisance": nuisance[split] for split in counts})
        with atomic_open(staging / "latents.npz", "wb") as handle:
            np.savez(handle, **truth)
        feature_rng = np.random.default_rng(stable_seed(config.seed, "ceiling-feature-noise"))
        write_feature_file(
            staging / FEATURE_FILE,
            {
                split: torch.from_numpy(model.features(feature_rng, latents[split], nuisance[split]))
                for split in counts
            },
            paths,
            layer_names=[f"layer{layer + 1}" for layer in range(parameters.n_layers)],
            layer_dims=[parameters.feature_dim] * parameters.n_layers,
            normalized=False,
            settings={"backbone": "linear-gaussian", "seed": config.seed, **dataclasses.asdict(parameters)},
        )
        chunk = 1024
        n_chunks = config.n_subjects * sum(-(-n // chunk) for n in counts.values())
        with tqdm(total=n_chunks, desc="EEG", unit="chunk", disable=None) as bar:
            for number in range(1, config.n_subjects + 1):
                subject = model.subject(number)
                rng = np.random.default_rng(stable_seed(config.seed, "ceiling-trials", number))
                for split, n in counts.items():
                    unexplained = rng.standard_normal((n, parameters.n_unexplained))
                    data = np.empty((n, repetitions[split], len(channels), subject.n_times))
                    for start in range(0, n, chunk):
                        stop = min(start + chunk, n)
                        block = slice(start, stop)
                        data[block] = subject.trials(
                            rng, latents[split][block], unexplained[block], repetitions[split]
                        )
                        bar.update()
                    path = staging / "preprocessed_data" / f"sub-{number:02d}" / f"preprocessed_eeg_{split}.npy"
                    atomic_np_save(path, official_eeg_file(data, channels), allow_pickle=True)
                    if split == "test":
                        queries = data.mean(axis=1)
                    del data
                scores = subject.ranking_scores(queries, latents["test"], config.test_repetitions)
                expected = subject.expected_ceiling(
                    np.random.default_rng(stable_seed(config.seed, "ceiling-draws", number)),
                    config.n_test_images,
                    config.test_repetitions,
                    config.ceiling_draws,
                )
                subjects[f"sub-{number:02d}"] = {
                    "on_these_files": ceiling_scores(scores),
                    "expected": {key: {"mean": m, "ci95_half_width": h} for key, (m, h) in expected.items()},
                }
        record = {
            "definition": CEILING_DEFINITION,
            "gallery": f"the {config.n_test_images} test images; queries average {config.test_repetitions} "
            "repetitions",
            "expected_over": f"{config.ceiling_draws} fresh test sets of {config.n_test_images} images",
            "subjects": subjects,
            "parameters": dataclasses.asdict(parameters),
        }
        atomic_write_json(staging / "ceiling.json", record)
        scale = {key: value for key, value in config_to_dict(config).items() if key not in ("output_dir", "overwrite")}
        atomic_write_json(
            staging / "simulation.json",
            {"generator": GENERATOR, "regime": "linear-gaussian", "seed": config.seed, "scale": scale,
             "ch_names": channels, "model": dataclasses.asdict(parameters)},
        )  # fmt: skip
        save_config(config, staging / "config.yaml", command="simulate-ceiling")
    record["seconds"] = time.perf_counter() - started
    return record


def format_ceiling(record: dict) -> str:
    """Readable lines: per subject the ceiling on the files and its expectation."""
    lines = ["Bayes-optimal retrieval ceiling (" + record["gallery"] + "):"]
    for subject, values in record["subjects"].items():
        here, expected = values["on_these_files"], values["expected"]
        lines.append(
            f"  {subject}: on these files top-1 {100 * here['top1']:.1f} %, top-5 {100 * here['top5']:.1f} %; "
            f"expected top-1 {100 * expected['top1']['mean']:.1f} ± {100 * expected['top1']['ci95_half_width']:.1f} "
            f"%, top-5 {100 * expected['top5']['mean']:.1f} ± {100 * expected['top5']['ci95_half_width']:.1f} %"
        )
    return "\n".join(lines)


def run(config: CeilingDataConfig, namespace: argparse.Namespace) -> int:
    record = write_ceiling_dataset(config)
    print(f"Linear-Gaussian retrieval benchmark written to {config.output_dir} in {record['seconds']:.0f} s")
    print(f"  features: {Path(config.output_dir) / FEATURE_FILE}")
    print(format_ceiling(record))
    print(json.dumps({"ceiling": record["subjects"]}))
    return 0


COMMAND = Command(
    name="simulate-ceiling",
    summary="write a linear-Gaussian retrieval benchmark (EEG, features) whose best possible accuracy is known",
    config_class=CeilingDataConfig,
    run=run,
    description=(
        "Write EEG in the official THINGS-EEG2 formats, image_metadata.npy and a feature file from a linear-Gaussian "
        "latent model, and ceiling.json with the Bayes-optimal 200-way top-1/top-5 on the written test set and its "
        "expectation. Train on it with `ttdnet train-retrieval --dataset_root DIR --features "
        "DIR/features/linear_gaussian.safetensors`; `python benchmarks/retrieval.py` runs the whole table."
    ),
)
