"""THINGS-EEG2 data layer: formats, validation, the float32 cache and the PyTorch dataset.

Names are imported on first use (PEP 562), so light submodules such as :mod:`ttdnet.data.channels` do not
pull in torch; ``from ttdnet.data import ThingsEEG2Dataset`` works as usual.
"""

import importlib


_EXPORTS = {
    "AVERAGED": "dataset",
    "EEGSample": "dataset",
    "ThingsEEG2Dataset": "dataset",
    "CachedEEG": "cache",
    "load_cached_eeg": "cache",
    "SelectionError": "selection",
    "channel_indices": "selection",
    "split_training_concepts": "selection",
    "time_window": "selection",
    "ImageMetadata": "image_metadata",
    "read_image_metadata": "image_metadata",
    "PreprocessedEEG": "preprocessed_eeg",
    "read_preprocessed_eeg": "preprocessed_eeg",
    "ThingsEEG2FormatError": "things_eeg2",
    "ThingsEEG2Layout": "things_eeg2",
    "locate_image_set": "things_eeg2",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'ttdnet.data' has no attribute {name!r}")
    return getattr(importlib.import_module(f"ttdnet.data.{_EXPORTS[name]}"), name)
