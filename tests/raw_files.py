"""Writers for the preprocessing tests: THINGS-EEG2 raw files, BrainVision source and
EEGMMIDB-like EDF recordings, all written here with numpy, scipy and MNE, independently of ttdnet."""

from pathlib import Path

import numpy as np

from ttdnet.data.channels import RAW_63_CHANNELS


SFREQ = 1000
SOA = 200  # samples between onsets (200 ms at 1 kHz)
LEAD = 300  # samples before the first onset (>= 200 for the -0.2 s epoch start)
TAIL = 1000  # samples after the last onset (>= 800 for the +0.8 s epoch end)
TARGET = 99999
PHYSIONET_LABELS = (
    "Fc5 Fc3 Fc1 Fcz Fc2 Fc4 Fc6 C5 C3 C1 Cz C2 C4 C6 Cp5 Cp3 Cp1 Cpz Cp2 Cp4 Cp6 Fp1 Fpz Fp2 Af7 Af3 Afz Af4 Af8 "
    "F7 F5 F3 F1 Fz F2 F4 F6 F8 Ft7 Ft8 T7 T8 T9 T10 Tp7 Tp8 P7 P5 P3 P1 Pz P2 P4 P6 P8 Po7 Po3 Poz Po4 Po8 O1 Oz "
    "O2 Iz"
).split()


def dotted(label: str) -> str:
    """PhysioNet EDF label: padded with dots to 4 characters (``Fc5.``, ``Cz..``)."""
    return label + "." * (4 - len(label))


def session_sequence(codes_with_counts: dict[int, int], n_targets: int, rng: np.random.Generator) -> np.ndarray:
    """Shuffled presentation order: each code repeated its count, plus ``n_targets`` targets."""
    sequence = np.concatenate([np.full(count, code) for code, count in codes_with_counts.items()])
    sequence = np.concatenate([sequence, np.full(n_targets, TARGET)])
    return rng.permutation(sequence)


def synth_eeg(sequence: np.ndarray, n_chans: int, rng: np.random.Generator, mixing: np.ndarray) -> np.ndarray:
    """(n_chans, n_samples) volts: spatially correlated noise (~10 uV) plus a per-condition evoked template."""
    n_samples = LEAD + SOA * len(sequence) + TAIL
    noise = mixing @ rng.standard_normal((mixing.shape[1], n_samples)) * 10e-6
    signal = np.zeros((n_chans, n_samples))
    for k, code in enumerate(sequence):
        onset = LEAD + SOA * k
        template = np.random.default_rng(int(code)).standard_normal((n_chans, 1)) * np.hanning(400)[None] * 5e-6
        signal[:, onset : onset + 400] += template
    return noise + signal


def raw_dict(sequence: np.ndarray, rng: np.random.Generator, mixing: np.ndarray) -> dict:
    """The official raw dict (the published keys and types) for one session and partition."""
    eeg = synth_eeg(sequence, len(RAW_63_CHANNELS), rng, mixing)
    stim = np.zeros(eeg.shape[1])
    stim[LEAD + SOA * np.arange(len(sequence))] = sequence
    return {
        "raw_eeg_data": np.vstack([eeg, stim[None]]),
        "ch_names": list(RAW_63_CHANNELS) + ["stim"],
        "ch_types": ["eeg"] * 63 + ["stim"],
        "sfreq": SFREQ,
        "highpass": 0.01,
        "lowpass": 100,
    }


def design(n_train: int, n_test: int, seed: int) -> dict[int, dict[str, np.ndarray]]:
    """Presentation sequences of 4 sessions following THINGS-EEG2's structure.

    Sessions 1/2 and 3/4 each split the training images into halves; each image is shown 2 or 3 times in a
    session; test images 20 or 21 times per session; a few targets everywhere.
    """
    rng = np.random.default_rng(seed)
    sequences: dict[int, dict[str, np.ndarray]] = {}
    for pair in ((1, 2), (3, 4)):
        order = rng.permutation(np.arange(1, n_train + 1))
        halves = (order[: n_train // 2], order[n_train // 2 :])
        for session, half in zip(pair, halves):
            counts = {int(code): int(rng.integers(2, 4)) for code in sorted(half)}
            test_counts = {code: int(rng.integers(20, 22)) for code in range(1, n_test + 1)}
            sequences[session] = {
                "training": session_sequence(counts, 2, rng),
                "test": session_sequence(test_counts, 2, rng),
            }
    return sequences


def write_raw_subject(root: Path, subject: str, n_train: int = 8, n_test: int = 3, seed: int = 0) -> dict:
    """Write ``root/sub-XX/ses-YY/raw_eeg_{training,test}.npy`` with plain ``np.save`` of the dict.

    Returns
    -------
    dict
        ``{session: {partition: raw dict}}`` as written.
    """
    rng = np.random.default_rng(seed + 1000)
    mixing = np.eye(63) + 0.5 * rng.standard_normal((63, 63)) / np.sqrt(63)
    written = {}
    for session, partitions in design(n_train, n_test, seed).items():
        written[session] = {}
        for partition, sequence in partitions.items():
            contents = raw_dict(sequence, rng, mixing)
            path = root / subject / f"ses-{session:02d}" / f"raw_eeg_{partition}.npy"
            path.parent.mkdir(parents=True, exist_ok=True)
            np.save(path, contents, allow_pickle=True)
            written[session][partition] = contents
    return written


def write_physionet_edf(path: Path, sfreq: float, seconds: float, seed: int, labels=PHYSIONET_LABELS) -> np.ndarray:
    """An EEGMMIDB-like EDF+: dotted labels, T0/T1/T2 annotations, written by ``mne.export`` (edfio).

    Returns
    -------
    numpy.ndarray, shape (n_chans, n_samples)
        The data written, volts.
    """
    import mne

    rng = np.random.default_rng(seed)
    n = int(round(sfreq * seconds))
    mixing = np.eye(len(labels)) + 0.3 * rng.standard_normal((len(labels), len(labels))) / 8
    data = mixing @ rng.standard_normal((len(labels), n)) * 20e-6
    data += 30e-6 * np.sin(2 * np.pi * 10 * np.arange(n) / sfreq)[None] * rng.standard_normal((len(labels), 1))
    info = mne.create_info([dotted(label) for label in labels], sfreq, "eeg")
    raw = mne.io.RawArray(data, info, verbose="error")
    onsets = np.arange(0, seconds - 4, 4.0)
    raw.set_annotations(mne.Annotations(onsets, 4.0, [f"T{i % 3}" for i in range(len(onsets))]))
    path.parent.mkdir(parents=True, exist_ok=True)
    mne.export.export_raw(path, raw, fmt="edf", overwrite=True, verbose="error")
    return data
