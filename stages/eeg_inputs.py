"""EEG to generate images from, checked against what the conditioner was trained on.

Accepted sources:

* a **THINGS-EEG2 root** (``--subject`` picks the subject): the test split, one trial per test image, its
  repetitions averaged (or one trial per repetition), ids = the test concept folders (``00001_aircraft_carrier``,
  the names ``ttdnet evaluate`` pairs by), ground truth = the stimulus image;
* one **preprocessed file** (``.../sub-XX/preprocessed_eeg_test.npy``, official or NICE), with ids and ground truth
  when the image set is found beside it;
* a plain **array** ``.npy`` or ``.npz`` (key ``eeg``, or its only array) of shape ``(n, n_chans, n_times)`` with
  a sidecar JSON of the same stem: ``ch_names`` (list), ``sfreq``, ``tmin`` (seconds of the first sample), and
  optionally ``ids`` (one per trial) and ``ground_truth`` (image paths, relative to the JSON's folder);
* a **folder** of such arrays (sorted by name).

Channels are picked by name; the rate, the window start and the length must match the conditioner's. Every
mismatch, a wrong rank, an empty array or a non-finite value is an error that names the file.
"""

import dataclasses
import json
import re
from pathlib import Path

import numpy as np

from ttdnet.errors import TtdnetError


THINGS_FILE = re.compile(r"^preprocessed_eeg_(test|training)\.npy$")


class EEGInputError(TtdnetError):
    """An EEG input cannot be used with this conditioner."""


@dataclasses.dataclass
class EEGTrials:
    """Trials to generate from.

    Attributes
    ----------
    eeg : numpy.ndarray of float32, shape (n_trials, n_chans, n_times)
        In the conditioner's channel order and window.
    ids : list of str
        Unique trial ids (file names of the images are ``<id>_s<k>.png``).
    ground_truth : list of str or None
        Absolute path of each trial's stimulus image, where known.
    sources : list of str
        Where each trial came from (file and index).
    """

    eeg: np.ndarray
    ids: list[str]
    ground_truth: list[str | None]
    sources: list[str]


@dataclasses.dataclass(frozen=True)
class Expected:
    """What the conditioner takes: channel names, rate, window start (None: the data's first sample), length."""

    ch_names: tuple[str, ...]
    sfreq: float
    n_times: int
    tmin: float | None


def _select(data: np.ndarray, ch_names, times: np.ndarray, sfreq: float, expected: Expected, source: str):
    """``data (..., n_chans_file, n_times_file)`` cut to the expected channels and window.

    Every problem (missing channels, rate, window) is listed in one :class:`EEGInputError`.
    """
    from ttdnet.data.selection import SelectionError, time_window

    problems = []
    missing = [name for name in expected.ch_names if name not in ch_names]
    if missing:
        problems.append(f"channels {missing} are missing (it has {list(ch_names)})")
    if abs(sfreq - expected.sfreq) > 1e-6 * expected.sfreq:
        problems.append(f"sampling rate {sfreq:g} Hz, the conditioner expects {expected.sfreq:g} Hz")
    window = None
    if not problems:
        tmin = times[0] if expected.tmin is None else expected.tmin
        try:
            window = time_window(times, sfreq, tmin, tmin + expected.n_times / sfreq)
        except SelectionError as error:
            problems.append(f"window {tmin:g} s + {expected.n_times} samples: {error}")
        if window is not None and window.stop - window.start != expected.n_times:
            problems.append(
                f"{window.stop - window.start} samples in the window, the conditioner expects {expected.n_times}"
            )
    if problems:
        raise EEGInputError(f"{source} does not fit the conditioner: " + "; ".join(problems))
    index = [list(ch_names).index(name) for name in expected.ch_names]
    return np.ascontiguousarray(data[..., index, window], dtype=np.float32)


def _check_values(eeg: np.ndarray, source: str) -> None:
    if eeg.size == 0 or eeg.shape[0] == 0:
        raise EEGInputError(f"{source} holds no trials")
    bad = ~np.isfinite(eeg.reshape(eeg.shape[0], -1)).all(axis=1)
    if bad.any():
        raise EEGInputError(f"{source}: trial {int(np.flatnonzero(bad)[0])} has NaN or infinite values")


def things_trials(root: Path, subject: str | None, average: bool, expected: Expected) -> EEGTrials:
    """The test split of a THINGS-EEG2 root, one subject."""
    from ttdnet.data import ThingsEEG2Dataset, ThingsEEG2Layout

    layout = ThingsEEG2Layout.discover(root)
    if subject is None and len(layout.subjects) != 1:
        raise EEGInputError(f"{root} holds subjects {layout.subjects}: choose one with --subject")
    tmin = expected.tmin
    dataset = ThingsEEG2Dataset(root, split="test", subjects=[subject] if subject else None,
                                channels=list(expected.ch_names), tmin=tmin,
                                tmax=None if tmin is None else tmin + expected.n_times / expected.sfreq,
                                average_repetitions=average)  # fmt: skip
    source = f"THINGS-EEG2 test data in {root}"
    if dataset.n_times != expected.n_times or abs(dataset.sfreq - expected.sfreq) > 1e-6 * expected.sfreq:
        raise EEGInputError(f"{source} does not fit the conditioner: {dataset.n_times} samples at {dataset.sfreq:g} "
                            f"Hz, it expects {expected.n_times} at {expected.sfreq:g} Hz")  # fmt: skip
    paths = dataset.metadata.relative_paths("test")
    samples = [dataset[i] for i in range(len(dataset))]
    eeg = np.stack([sample.eeg.numpy() for sample in samples])
    _check_values(eeg, source)
    ids = []
    for sample in samples:
        concept = Path(paths[sample.image_index]).parent.name
        ids.append(concept if average else f"{concept}_r{sample.repetition}")
    truth = [str(dataset.image_dir / paths[sample.image_index]) for sample in samples]
    where = [f"{dataset.subject_names[0]} test image {s.image_index}" for s in samples]
    return EEGTrials(eeg, ids, truth, where)


def things_file_trials(path: Path, average: bool, expected: Expected) -> EEGTrials:
    """One preprocessed file; ids and ground truth from the image set beside it, else by row."""
    from ttdnet.data import locate_image_set, read_image_metadata
    from ttdnet.data.preprocessed_eeg import read_preprocessed_eeg

    contents = read_preprocessed_eeg(path)
    data = _select(contents.data, contents.ch_names, contents.times, contents.sfreq, expected, str(path))
    partition = THINGS_FILE.match(path.name).group(1)
    metadata, image_dir = None, None
    for candidate in (path.parent.parent, path.parent.parent.parent):
        try:
            image_dir = locate_image_set(candidate)
            metadata = read_image_metadata(image_dir)
            break
        except TtdnetError:
            continue
    rows = data.mean(axis=1) if average else data.reshape(-1, *data.shape[2:])
    _check_values(rows, str(path))
    n_reps = data.shape[1]
    trials = []
    for i in range(len(rows)):
        row, rep = (i, None) if average else divmod(i, n_reps)
        if metadata is not None and metadata.n_rows(partition) == data.shape[0]:
            relative = metadata.relative_paths(partition)[row]
            key = Path(relative).parent.name if partition == "test" else Path(relative).stem
            truth = str(image_dir / relative)
        else:
            key, truth = f"{path.stem}_{row:05d}", None
        trials.append(
            (key if rep is None else f"{key}_r{rep}", truth, f"{path}#{row}" + ("" if rep is None else f"/{rep}"))
        )
    return EEGTrials(rows, [t[0] for t in trials], [t[1] for t in trials], [t[2] for t in trials])


def array_trials(path: Path, expected: Expected) -> EEGTrials:
    """A plain ``.npy``/``.npz`` array with its sidecar JSON."""
    sidecar = path.with_suffix(".json")
    if not sidecar.is_file():
        raise EEGInputError(f"{path}: no sidecar {sidecar.name} (ch_names, sfreq, tmin; optional ids, ground_truth)")
    try:
        meta = json.loads(sidecar.read_text(encoding="utf-8"))
        ch_names, sfreq, tmin = list(meta["ch_names"]), float(meta["sfreq"]), float(meta["tmin"])
    except (ValueError, KeyError, TypeError) as error:
        raise EEGInputError(f"{sidecar}: needs ch_names (list), sfreq and tmin ({error})") from None
    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as archive:
                keys = list(archive.keys())
                if "eeg" not in keys and len(keys) != 1:
                    raise EEGInputError(f"{path}: an .npz needs an array named 'eeg' or exactly one array, has {keys}")
                data = archive["eeg" if "eeg" in keys else keys[0]]
        else:
            data = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise EEGInputError(f"{path}: not a readable numpy array ({error})") from None
    if data.ndim != 3:
        raise EEGInputError(f"{path}: EEG must be (n_trials, n_chans, n_times), got shape {data.shape}")
    if data.shape[1] != len(ch_names):
        raise EEGInputError(f"{path}: {data.shape[1]} channels but {sidecar.name} names {len(ch_names)}")
    _check_values(data, str(path))
    times = tmin + np.arange(data.shape[2]) / sfreq
    eeg = _select(data, ch_names, times, sfreq, expected, str(path))
    ids = [str(i) for i in meta.get("ids") or [f"{path.stem}_{i:05d}" for i in range(len(eeg))]]
    truth = meta.get("ground_truth") or [None] * len(eeg)
    if len(ids) != len(eeg) or len(truth) != len(eeg):
        raise EEGInputError(f"{sidecar}: ids / ground_truth must have one entry per trial ({len(eeg)})")
    truth = [None if t is None else str(Path(t) if Path(t).is_absolute() else sidecar.parent / t) for t in truth]
    return EEGTrials(eeg, ids, truth, [f"{path}#{i}" for i in range(len(eeg))])


def load_eeg_trials(path: str, expected: Expected, subject: str | None = None, average: bool = True) -> EEGTrials:
    """Trials from any accepted source (see the module docstring); ids must be unique."""
    from ttdnet.data import ThingsEEG2Layout

    source = Path(path)
    if not source.exists():
        raise EEGInputError(f"--eeg {source} does not exist")
    if source.is_dir():
        try:
            ThingsEEG2Layout.discover(source)
            trials = things_trials(source, subject, average, expected)
        except EEGInputError:
            raise
        except TtdnetError:
            files = sorted(p for p in source.iterdir() if p.suffix in (".npy", ".npz"))
            if not files:
                raise EEGInputError(f"{source}: neither a THINGS-EEG2 root nor a folder of .npy/.npz arrays") from None
            parts = [array_trials(file, expected) for file in files]
            trials = EEGTrials(
                np.concatenate([p.eeg for p in parts]),
                [i for p in parts for i in p.ids],
                [t for p in parts for t in p.ground_truth],
                [s for p in parts for s in p.sources],
            )
    elif THINGS_FILE.match(source.name):
        trials = things_file_trials(source, average, expected)
    elif source.suffix in (".npy", ".npz"):
        trials = array_trials(source, expected)
    else:
        raise EEGInputError(f"--eeg {source}: expected a THINGS-EEG2 root or file, a .npy/.npz array, or a folder")
    duplicates = sorted({i for i in trials.ids if trials.ids.count(i) > 1})
    if duplicates:
        raise EEGInputError(f"--eeg {source}: trial ids appear more than once: {duplicates[:5]}")
    return trials
