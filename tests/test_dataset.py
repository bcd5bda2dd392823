import pickle

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from ttdnet.data.dataset import AVERAGED, ThingsEEG2Dataset
from ttdnet.data.selection import SelectionError, split_training_concepts, time_window
from ttdnet.data.things_eeg2 import ThingsEEG2FormatError


def make(things_root, **kwargs):
    return ThingsEEG2Dataset(things_root["root"], cache_dir=things_root["cache_dir"], **kwargs)


def test_test_split_averages_80_repetitions(things_root):
    dataset = make(things_root, split="test")
    assert len(dataset) == 2 * 4 and dataset.n_chans == 17 and dataset.n_times == 100
    sample = dataset[5]  # sub-02, test image 1
    expected = things_root["eeg"][("sub-02", "test")][1].mean(axis=0)
    np.testing.assert_allclose(sample.eeg.numpy(), expected, rtol=1e-5, atol=1e-6)
    assert (sample.image_index, sample.concept_index, sample.subject, sample.repetition) == (1, 1, 2, AVERAGED)


def test_single_repetitions_and_window_and_channels(things_root):
    dataset = make(
        things_root, split="test", subjects=[1], average_repetitions=False, tmin=0.0, tmax=0.7, channels=["Oz", "Pz"]
    )
    assert len(dataset) == 4 * 80 and dataset.ch_names == ["Oz", "Pz"] and dataset.n_times == 70
    sample = dataset[3 * 80 + 17]
    raw = things_root["eeg"][("sub-01", "test")]
    # Oz is channel 4 and Pz channel 0 of the official 17; 0.0 s is sample 20 and 0.7 s sample 90.
    np.testing.assert_allclose(sample.eeg.numpy(), raw[3, 17][[4, 0], 20:90], rtol=1e-6)
    assert sample.repetition == 17 and sample.image_index == 3
    np.testing.assert_allclose(dataset.times[[0, -1]], [0.0, 0.69], atol=1e-9)


def test_train_and_val_are_disjoint_concepts_covering_training(things_root):
    train = make(things_root, split="train", val_fraction=0.4, split_seed=3)
    val = make(things_root, split="val", val_fraction=0.4, split_seed=3)
    train_concepts = set(train.description["concept_index"])
    val_concepts = set(val.description["concept_index"])
    assert train_concepts.isdisjoint(val_concepts) and train_concepts | val_concepts == set(range(5))
    assert len(val_concepts) == 2
    assert set(train.description["partition"]) == {"training"}
    assert len(train) + len(val) == 2 * 15  # two subjects, every training image once (averaged)


def test_split_is_deterministic_and_seed_dependent():
    first = split_training_concepts(1654, 0.1, seed=0)
    again = split_training_concepts(1654, 0.1, seed=0)
    other = split_training_concepts(1654, 0.1, seed=1)
    np.testing.assert_array_equal(first[1], again[1])
    assert len(first[1]) == 165 and not np.array_equal(first[1], other[1])
    assert np.intersect1d(first[0], first[1]).size == 0 and np.union1d(first[0], first[1]).size == 1654


def test_single_repetition_training_samples(things_root):
    dataset = make(things_root, split="train", val_fraction=0.0, average_repetitions=False, subjects=["sub-02"])
    assert len(dataset) == 15 * 4
    sample = dataset[4 * 7 + 2]
    np.testing.assert_allclose(sample.eeg.numpy(), things_root["eeg"][("sub-02", "training")][7, 2], rtol=1e-6)
    assert (sample.image_index, sample.concept_index, sample.repetition) == (7, 7 // 3, 2)


def test_description_table(things_root):
    table = make(things_root, split="test").description
    assert list(table.columns) == [
        "subject",
        "split",
        "partition",
        "image_index",
        "concept_index",
        "concept",
        "image_path",
        "repetition",
    ]
    assert table.loc[0, "image_path"] == "test_images/00001_antelope/antelope_01s.jpg"
    assert list(table["subject"]) == ["sub-01"] * 4 + ["sub-02"] * 4


def test_dataloader_batches_and_pickling_does_not_copy_arrays(things_root):
    dataset = make(things_root, split="test")
    assert len(pickle.dumps(dataset)) < 200_000  # the 2 x 4 x 80 x 17 x 100 float32 arrays are 4 MB
    clone = pickle.loads(pickle.dumps(dataset))
    torch.testing.assert_close(clone[3].eeg, dataset[3].eeg)
    batch = next(iter(DataLoader(dataset, batch_size=3)))
    assert batch.eeg.shape == (3, 17, 100) and batch.subject.tolist() == [1, 1, 1]


def test_selection_errors(things_root):
    with pytest.raises(SelectionError, match=r"channels \['Fz'\] are not in the data"):
        make(things_root, split="test", channels=["Oz", "Fz"])
    with pytest.raises(SelectionError, match="not on the 100 Hz sample grid"):
        make(things_root, split="test", tmin=0.005)
    with pytest.raises(SelectionError, match="split must be one of"):
        make(things_root, split="validation")


def test_time_window_avoids_float_off_by_one():
    times = np.arange(100) / 100 - 0.2
    assert time_window(times, 100.0, 0.0, 0.5) == slice(20, 70)  # searchsorted would give 71 for 0.5
    assert time_window(times, 100.0, None, 0.8) == slice(0, 100)
    with pytest.raises(SelectionError, match="empty or outside"):
        time_window(times, 100.0, 0.5, 0.5)


def test_mismatched_eeg_and_image_set_is_an_error(things_root):
    from things_files import OFFICIAL_TIMES, write_eeg_file

    from ttdnet.data.channels import POSTERIOR_17_CHANNELS

    path = things_root["root"] / "preprocessed_data" / "sub-02" / "preprocessed_eeg_test.npy"
    write_eeg_file(path, np.zeros((3, 80, 17, 100)), list(POSTERIOR_17_CHANNELS), OFFICIAL_TIMES)
    with pytest.raises(Exception, match="3 image conditions, but .* lists 4 test images"):
        make(things_root, split="test")


def test_missing_channel_error_suggests_the_cased_name(things_root):
    with pytest.raises(SelectionError, match=r"\['oz \(did you mean Oz\?\)'\] are not in the data"):
        make(things_root, split="test", channels=["oz"])


def test_image_indices_follow_the_samples(things_root):
    dataset = make(things_root, split="val", val_fraction=0.4, split_seed=3, average_repetitions=False)
    assert list(dataset.image_indices) == [dataset[i].image_index for i in range(len(dataset))]
    with pytest.raises(ValueError):
        dataset.image_indices[0] = 5


def test_train_split_refuses_a_test_partition_sampled_differently(things_root):
    from things_files import write_eeg_file

    from ttdnet.data.channels import POSTERIOR_17_CHANNELS

    test_file = things_root["root"] / "preprocessed_data" / "sub-02" / "preprocessed_eeg_test.npy"
    data = things_root["eeg"][("sub-02", "test")]
    write_eeg_file(test_file, data, list(POSTERIOR_17_CHANNELS), np.arange(100) / 250 - 0.2)
    with pytest.raises(ThingsEEG2FormatError, match="has times at 250 Hz from -0.2 s") as error:
        make(things_root, split="train", subjects=["sub-02"])  # reads the test file too, although split="train"
    assert str(error.value).startswith(f"{test_file} has times")
    assert "sub-02/preprocessed_eeg_training.npy at 100 Hz from -0.2 s" in str(error.value)
    assert len(make(things_root, split="train", subjects=["sub-01"], val_fraction=0.0)) == 15  # sub-01 is consistent


def test_a_subject_without_the_other_partition_loads(things_root):
    (things_root["root"] / "preprocessed_data" / "sub-01" / "preprocessed_eeg_test.npy").unlink()
    dataset = make(things_root, split="train", subjects=[1], val_fraction=0.0)
    assert len(dataset) == 15 and dataset.sfreq == 100.0
    with pytest.raises(ThingsEEG2FormatError, match="preprocessed_eeg_test.npy: file not found"):
        make(things_root, split="test", subjects=[1])
