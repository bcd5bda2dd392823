"""Stage A training data: THINGS-EEG2 single repetitions and EDF window corpora, checked against the encoder."""

from torch.utils.data import ConcatDataset, Dataset

from ttdnet.data import ThingsEEG2Dataset
from ttdnet.data.eeg_windows import EEGWindowCorpus, EEGWindowDataset, split_by_recording
from ttdnet.errors import TtdnetError


class SignalOnly(Dataset):
    """A THINGS-EEG2 dataset reduced to its EEG tensors, shape (n_chans, n_times), to mix with window corpora."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        return self.dataset[index].eeg


def build_datasets(config, signal) -> tuple[ConcatDataset, ConcatDataset]:
    """Training and validation windows, every source checked against the encoder's signal contract.

    Parameters
    ----------
    config : ttdnet.stages.pretrain.PretrainConfig
    signal : ttdnet.models.SignalSpec
        The encoder's input contract.

    THINGS-EEG2 gives single-repetition training EEG, with validation on held-out training concepts; each EDF
    window corpus gives its windows, with validation on held-out recordings. Channels are picked by the
    encoder's names; a source whose channels, rate or window differ is refused with every difference named.
    """
    if config.dataset_root is None and not config.edf_windows:
        raise TtdnetError("no training data: give --dataset_root (THINGS-EEG2) and/or --edf_windows (EDF corpora)")
    train_parts, val_parts = [], []
    if config.dataset_root is not None:
        common = {
            "subjects": config.subjects,
            "channels": list(signal.ch_names) if signal.ch_names else None,
            "tmin": config.tmin,
            "tmax": config.tmax,
            "average_repetitions": False,
            "val_fraction": config.val_fraction,
            "split_seed": config.split_seed,
            "cache_dir": config.eeg_cache_dir,
        }
        train = ThingsEEG2Dataset(config.dataset_root, split="train", **common)
        signal.check_matches(train.ch_names, train.n_times, train.sfreq, f"THINGS-EEG2 data in {config.dataset_root}")
        train_parts.append(SignalOnly(train))
        val_parts.append(SignalOnly(ThingsEEG2Dataset(config.dataset_root, split="val", **common)))
    for root in config.edf_windows or []:
        corpus = EEGWindowCorpus(root)
        corpus.check_compatible(list(signal.ch_names or corpus.ch_names), signal.sfreq, signal.n_times)
        train_windows, val_windows = split_by_recording(corpus, config.val_fraction, config.split_seed)
        train_parts.append(EEGWindowDataset(corpus, train_windows))
        val_parts.append(EEGWindowDataset(corpus, val_windows))
    return ConcatDataset(train_parts), ConcatDataset(val_parts)


class IndexedWindows(Dataset):
    """``(index, window)`` pairs of a window dataset, so validation can give each window a fixed mask."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        return index, self.dataset[index]
