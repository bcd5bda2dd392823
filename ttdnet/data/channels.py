"""THINGS-EEG2 channel sets and the fixed repetition permutations of the official release.

The raw order, the 17-channel posterior subset, the NICE order and the repetition permutation are described
in ``docs/data-format.md``.
"""

import re

import numpy as np


RAW_63_CHANNELS: tuple[str, ...] = tuple(
    "Fp1 F3 F7 FT9 FC5 FC1 C3 T7 TP9 CP5 CP1 Pz P3 P7 O1 Oz O2 P4 P8 TP10 CP6 CP2 Cz C4 T8 FT10 "
    "FC6 FC2 F4 F8 Fp2 AF7 AF3 AFz F1 F5 FT7 FC3 FCz C1 C5 TP7 CP3 P1 P5 PO7 PO3 POz PO4 PO8 P6 "
    "P2 CPz CP4 TP8 C6 C2 FC4 FT8 F6 F2 AF4 AF8".split()
)
"""The 63 EEG channels of the raw recordings, in stored order (Fz, the online reference, is absent)."""

POSTERIOR_17_CHANNELS: tuple[str, ...] = tuple(name for name in RAW_63_CHANNELS if re.match(r"^O *|^P *", name))
"""The 17 occipito-parietal channels of the official preprocessed release, in raw order."""

NICE_63_CHANNELS: tuple[str, ...] = tuple(
    "Fp1 Fp2 AF7 AF3 AFz AF4 AF8 F7 F5 F3 F1 F2 F4 F6 F8 FT9 FT7 FC5 FC3 FC1 FCz FC2 FC4 FC6 FT8 "
    "FT10 T7 C5 C3 C1 Cz C2 C4 C6 T8 TP9 TP7 CP5 CP3 CP1 CPz CP2 CP4 CP6 TP8 TP10 P7 P5 P3 P1 Pz "
    "P2 P4 P6 P8 PO7 PO3 POz PO4 PO8 O1 Oz O2".split()
)
"""The 63 channels reordered front to back, as in the NICE/ATM 250 Hz files."""

OFFICIAL_SHUFFLE_SEED = 20200220
"""Seed of the official preprocessing (repetition selection and the merged-repetition permutation)."""


def repetition_permutation(n_repetitions: int) -> np.ndarray:
    """Permutation the official pipeline applies to the merged repetition axis.

    Equals ``sklearn.utils.shuffle(arange(n), random_state=20200220)``, one permutation shared by
    all images: ``[2, 1, 3, 0]`` for the 4 training repetitions.

    Parameters
    ----------
    n_repetitions : int
        Length of the merged repetition axis (4 for training, 80 for test).

    Returns
    -------
    numpy.ndarray of int, shape (n_repetitions,)
    """
    order = np.arange(n_repetitions)
    np.random.RandomState(OFFICIAL_SHUFFLE_SEED).shuffle(order)
    return order


def make_standard_1005_montage():
    """MNE's standard 10-05 montage (the positions THINGS-EEG2 channel names refer to).

    MNE 1.13 renamed ``standard_1005`` to ``colin27_1005`` (same names and positions); this returns
    whichever the installed MNE provides, without a deprecation warning.

    Returns
    -------
    mne.channels.DigMontage
    """
    import mne

    name = "colin27_1005" if "colin27_1005" in mne.channels.get_builtin_montages() else "standard_1005"
    return mne.channels.make_standard_montage(name)


def with_case_hints(names, known) -> list[str]:
    """``names`` for an error message, each followed by the correctly cased name in ``known`` when it only
    differs by case: ``["pz", "Xx"]`` gives ``["pz (did you mean Pz?)", "Xx"]``."""
    lower = {name.lower(): name for name in known}
    return [f"{name} (did you mean {lower[name.lower()]}?)" if name.lower() in lower else name for name in names]
