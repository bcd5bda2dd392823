"""THINGS-EEG2 data layer: formats, validation, the float32 cache and the PyTorch dataset."""

from ttdnet.data.cache import CachedEEG, load_cached_eeg
from ttdnet.data.dataset import AVERAGED, EEGSample, ThingsEEG2Dataset
from ttdnet.data.selection import SelectionError, channel_indices, split_training_concepts, time_window
from ttdnet.data.things_eeg2 import (
    ImageMetadata,
    PreprocessedEEG,
    ThingsEEG2FormatError,
    ThingsEEG2Layout,
    locate_image_set,
    read_image_metadata,
    read_preprocessed_eeg,
)


__all__ = [
    "AVERAGED",
    "CachedEEG",
    "EEGSample",
    "ImageMetadata",
    "PreprocessedEEG",
    "SelectionError",
    "ThingsEEG2Dataset",
    "ThingsEEG2FormatError",
    "ThingsEEG2Layout",
    "channel_indices",
    "load_cached_eeg",
    "locate_image_set",
    "read_image_metadata",
    "read_preprocessed_eeg",
    "split_training_concepts",
    "time_window",
]
