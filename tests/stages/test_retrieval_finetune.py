"""``ttdnet train-retrieval --protocol finetune``: an inter fold's model fine-tuned on part of its held-out subject.

The fixture's sub-03 has its channels permuted (the same permutation in training and test), so a model trained on
sub-01 and sub-02 transfers poorly to it and fine-tuning on sub-03's own data has something to learn.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from retrieval_files import options, write_retrieval_dataset
from things_files import OFFICIAL_TIMES, write_eeg_file

from ttdnet.cli import available_commands, build_parser
from ttdnet.config import ConfigError
from ttdnet.errors import TtdnetError


RATIOS = [0.5, 0.25, 1.0]  # given unsorted: the folds come in ascending order
FINETUNE = {"protocol": "finetune", "eval_subjects": ["3"], "subject_training_ratio": RATIOS, "checkpointing_steps": 4,
            "checkpoints_total_limit": 100}  # fmt: skip


def parse(args):
    return build_parser(available_commands()["train-retrieval"]).parse_config(args)[0]


def run_in_process(args):
    from ttdnet.stages.retrieval_training import train

    return train(parse(args))


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("things")
    features = write_retrieval_dataset(root)
    order = np.random.default_rng(5).permutation(17)
    for partition in ("training", "test"):
        path = root / "sub-03" / f"preprocessed_eeg_{partition}.npy"
        contents = np.load(path, allow_pickle=True).item()
        write_eeg_file(path, contents["preprocessed_eeg_data"][:, :, order], contents["ch_names"], OFFICIAL_TIMES)
    return root, features


@pytest.fixture(scope="module")
def inter_run(dataset, tmp_path_factory):
    """The inter fold of sub-03 (trained on sub-01 and sub-02)."""
    root, features = dataset
    out = tmp_path_factory.mktemp("work") / "inter"
    run_in_process(options(root, features, out, protocol="inter", eval_subjects=["3"], num_train_epochs=4))
    return out


@pytest.fixture(scope="module")
def finetuned(dataset, inter_run):
    root, features = dataset
    out = inter_run.parent / "finetune"
    report = run_in_process(options(root, features, out, finetune_from=inter_run, **FINETUNE))
    return out, report


def test_concept_subsets_are_nested_seeded_and_whole_concepts_outside_validation():
    from ttdnet.data.selection import split_training_concepts
    from ttdnet.stages.retrieval_finetune import concept_subset

    train_concepts, val_concepts = split_training_concepts(1654, 0.1, seed=0)
    subsets = {ratio: concept_subset(train_concepts, ratio, seed=0) for ratio in (0.1, 0.25, 0.5, 1.0)}
    assert {ratio: len(s) for ratio, s in subsets.items()} == {0.1: 149, 0.25: 372, 0.5: 744, 1.0: 1489}
    assert np.array_equal(subsets[1.0], train_concepts)
    for small, large in ((0.1, 0.25), (0.25, 0.5), (0.5, 1.0)):
        assert set(subsets[small]) < set(subsets[large])
    assert all(not set(s) & set(val_concepts) for s in subsets.values())
    assert np.array_equal(concept_subset(train_concepts, 0.25, seed=0), subsets[0.25])  # seeded
    assert not np.array_equal(concept_subset(train_concepts, 0.25, seed=1), subsets[0.25])
    assert len(concept_subset(train_concepts, 1e-6, seed=0)) == 1


def test_each_ratio_trains_on_its_nested_concepts_and_validates_on_the_same_held_out_ones(dataset, finetuned):
    from ttdnet.data import ThingsEEG2Dataset

    root, _ = dataset
    out, report = finetuned
    folds = {fold["ratio"]: fold for fold in report["subjects"]}
    val = ThingsEEG2Dataset(root, split="val", subjects=[3], val_fraction=0.2, cache_dir=out.parent / "cache")
    val_concepts = set(val.metadata.concept_indices("training")[val.image_indices])
    assert len(val_concepts) == 6  # 30 training concepts, val_fraction 0.2
    concepts = {ratio: set(folds[ratio]["train_concepts"]) for ratio in (0.25, 0.5, 1.0)}
    assert {ratio: len(c) for ratio, c in concepts.items()} == {0.25: 6, 0.5: 12, 1.0: 24}
    assert concepts[0.25] < concepts[0.5] < concepts[1.0] and not concepts[1.0] & val_concepts
    assert concepts[1.0] | val_concepts == set(range(30))
    for ratio in (0.25, 0.5, 1.0):  # 3 images per concept, averaged over repetitions: one sample each
        assert folds[ratio]["n_train_samples"] == 3 * len(concepts[ratio]) == 3 * folds[ratio]["n_train_concepts"]
        assert folds[ratio]["train_subjects"] == ["sub-03"]
    assert len({fold["n_validation_queries"] for fold in folds.values()}) == 1  # one validation set for all


def test_every_ratio_starts_from_the_inter_model_and_the_reports_list_every_ratio(inter_run, finetuned):
    from ttdnet.models.fingerprint import state_fingerprint
    from ttdnet.stages.retrieval_persistence import load_retrieval_model

    out, report = finetuned
    inter_fold = json.loads((inter_run / "inter" / "sub-03" / "fold_results.json").read_text())
    start, _ = load_retrieval_model(inter_run / "inter" / "sub-03" / "model")
    start_sha = state_fingerprint(start)
    assert start_sha == inter_fold["selected_weights_sha256"]
    folds = report["subjects"]
    assert [(f["protocol"], f["subject"], f["ratio"]) for f in folds] == [
        ("finetune", "sub-03", ratio) for ratio in (0.0, 0.25, 0.5, 1.0)
    ]
    assert all(f["initial_weights_sha256"] == start_sha == f["start_model_sha256"] for f in folds)
    assert folds[0]["selected_weights_sha256"] == start_sha and folds[0]["steps"] == 0
    assert all(f["selected_weights_sha256"] != start_sha and f["steps"] > 0 for f in folds[1:])
    # Ratio 0 is the inter result: the start model scored on the same test set gives the inter fold's numbers.
    assert folds[0]["test"] == inter_fold["test"]
    # Fine-tuning on the target's own data beats the transferred model on the target's validation concepts.
    start_score = folds[0]["selection"]["validation_score"]
    assert start_score < 0.5, "the permuted channels should defeat the transferred model"
    assert folds[-1]["selection"]["validation_score"] > start_score + 0.3
    assert folds[-1]["test"]["top1"] > folds[0]["test"]["top1"]
    assert set(report["summary"]) == {"ratio-0", "ratio-0.25", "ratio-0.5", "ratio-1"}
    assert report["summary"]["ratio-1"]["top1"]["mean"] == folds[-1]["test"]["top1"]
    record = report["protocol"]
    assert record["start_models"]["models"]["sub-03"] == {
        "path": str(inter_run / "inter" / "sub-03" / "model"), "sha256": start_sha, "inter_epochs": 4,
        "inter_selected_epoch": inter_fold["selection"]["epoch"],
    }  # fmt: skip
    assert record["protocol"].startswith("fine-tuned inter-subject") and record["start_models"]["finetune_from"] == (
        str(inter_run)
    )
    csv = (out / "results.csv").read_text().splitlines()
    assert csv[0].startswith("protocol,subject,ratio,selected_epoch,top1")
    assert [line.split(",")[2] for line in csv[1:]] == ["0.0", "0.25", "0.5", "1.0"]
    markdown = (out / "results.md").read_text()
    assert all(f"| sub-03 | {ratio} |" in markdown for ratio in ("0", "0.25", "0.5", "1"))
    assert all(f"| **mean ± sd** | {ratio} |" in markdown for ratio in ("0", "0.25", "0.5", "1"))
    saved, provenance = load_retrieval_model(out / "finetune" / "sub-03" / "ratio-1" / "model")
    assert state_fingerprint(saved) == folds[-1]["selected_weights_sha256"]
    assert provenance["fold"] == "finetune/sub-03/ratio-1"


def test_a_killed_finetune_run_resumes_to_the_same_models(dataset, inter_run, finetuned, tmp_path):
    root, features = dataset
    reference_dir, reference = finetuned
    out = tmp_path / "resumed"
    shutil.copytree(reference_dir, out)
    fold = out / "finetune" / "sub-03" / "ratio-1"
    # As if killed after step 20 of ratio 1.0 (mid-way through epoch 3 of 9 steps each); ratios 0 to 0.5 finished.
    for path in [fold / "fold_results.json", fold / "model", fold / "model-last", out / "results.json"]:
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    for step in range(24, 55, 4):
        shutil.rmtree(fold / f"checkpoint-{step}")
    finished = (out / "finetune" / "sub-03" / "ratio-0.5" / "fold_results.json").read_text()
    args = options(root, features, out, finetune_from=inter_run, resume_from_checkpoint="latest", **FINETUNE)
    resumed = run_in_process(args)["subjects"]
    assert (out / "finetune" / "sub-03" / "ratio-0.5" / "fold_results.json").read_text() == finished  # reused
    assert resumed[-1]["selected_weights_sha256"] == reference["subjects"][-1]["selected_weights_sha256"]
    assert resumed[-1]["test"] == reference["subjects"][-1]["test"]
    reference_metrics = reference_dir / "finetune" / "sub-03" / "ratio-1" / "metrics.csv"
    assert (fold / "metrics.csv").read_text() == reference_metrics.read_text()


def test_two_processes_score_once_and_start_from_the_inter_model(dataset, inter_run, finetuned, tmp_path):
    """A gloo group of 2 CPU processes (``ACCELERATE_USE_CPU=1 torchrun``, as in test_distributed.py)."""
    root, features = dataset
    out = tmp_path / "two"
    args = options(root, features, out, finetune_from=inter_run, **{**FINETUNE, "subject_training_ratio": [0.5, 1.0]})
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "ACCELERATE_USE_CPU": "1"}
    command = [str(Path(sys.executable).parent / "torchrun"), "--standalone", "--nproc_per_node", "2", "-m", "ttdnet",
               "train-retrieval", *args]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    log = result.stdout + result.stderr
    assert log.count("scoring the start model once, on process 0") == 1
    assert log.count("scoring the test set once, on process 0") == 2 and "on process 1" not in log
    folds = json.loads((out / "results.json").read_text())["subjects"]
    one_process = finetuned[1]["subjects"]
    assert [f["ratio"] for f in folds] == [0.0, 0.5, 1.0] and all(f["num_processes"] == 2 for f in folds)
    assert folds[0]["test"] == one_process[0]["test"]  # the start model scores alike on any number of processes
    assert {f["initial_weights_sha256"] for f in folds} == {one_process[0]["initial_weights_sha256"]}
    # Each process takes half of the batches: 12 and 24 concepts x 3 samples, batches of 8, 6 epochs.
    assert [f["steps"] for f in folds] == [0, 6 * ((36 // 8) // 2), 6 * ((72 // 8) // 2)]
    assert folds[2]["selection"]["validation_score"] > folds[0]["selection"]["validation_score"] + 0.3


def write_features_like(features, path, transform):
    from ttdnet.stages.feature_file import read_feature_file, write_feature_file

    loaded = read_feature_file(features)
    tensors, names, dims = transform({k: v.float() for k, v in loaded.features.items()}, loaded.layer_names,
                                     loaded.layer_dims)  # fmt: skip
    return write_feature_file(path, tensors, loaded.paths, names, dims, loaded.normalized, loaded.settings)


def test_bad_starts_are_refused_before_anything_is_written(dataset, inter_run, tmp_path):
    from ttdnet.config import save_config

    root, features = dataset
    out = tmp_path / "run"
    fewer_layers = write_features_like(features, tmp_path / "two.safetensors",
                                       lambda t, names, dims: ({k: v[:, :2] for k, v in t.items()}, names[:2],
                                                               dims[:2]))  # fmt: skip
    rescaled = write_features_like(features, tmp_path / "scaled.safetensors",
                                   lambda t, names, dims: ({k: 2 * v for k, v in t.items()}, names, dims))  # fmt: skip
    intra_dir = tmp_path / "intra-run"
    intra_dir.mkdir()
    save_config(parse(options(root, features, intra_dir)), intra_dir / "config.yaml", command="train-retrieval")
    finetune = {**FINETUNE, "finetune_from": inter_run}
    cases = [
        ({**FINETUNE}, "--protocol finetune needs --finetune_from RUN_DIR"),
        ({"finetune_from": inter_run, "eval_subjects": ["3"]}, "--finetune_from is read by --protocol finetune only"),
        ({**finetune, "finetune_from": tmp_path}, "no config.yaml, so it is not a run folder"),
        ({**finetune, "finetune_from": intra_dir}, "is a --protocol intra run; fine-tuning starts from the folds"),
        ({**finetune, "eval_subjects": ["1"]}, "has no finished inter fold for sub-01"),
        ({**finetune, "proj_dim": 16}, "trained with other options (proj_dim: 8 -> 16)"),
        ({**finetune, "val_fraction": 0.1}, "(val_fraction: 0.2 -> 0.1)"),
        ({**finetune, "channels": ["O1", "O2", "Oz"]}, "does not fit the model: channels differ"),
        ({**finetune, "features": fewer_layers}, "has 2 layers of width"),
        ({**finetune, "features": rescaled}, "are not the features the start model"),
        ({**finetune, "subject_training_ratio": [0.5, 0.5]}, "give each fraction once"),
    ]
    for overrides, message in cases:
        given = {"features": features, **overrides}
        with pytest.raises(TtdnetError) as error:
            run_in_process(options(root, given.pop("features"), out, **given))
        assert message in str(error.value) and "\n" not in str(error.value), (overrides, str(error.value))
        assert not out.exists(), overrides
    with pytest.raises(ConfigError, match=r"'subject_training_ratio' is 0.0; it must be in \(0, 1\]"):
        parse(options(root, features, out, **{**finetune, "subject_training_ratio": [0.0, 1.0]}))
