"""Readers of THINGS-EEG2 raw recordings: the published ``raw_eeg_*.npy`` dicts and the BrainVision source.

Both give a :class:`Recording`: the picked channels in volts and the events in ``mne.find_events`` layout, the
event code being the image condition (or the target code).
"""

import dataclasses
from pathlib import Path

import numpy as np

from ttdnet.data.safe_pickle import load_pickled_container
from ttdnet.preprocessing.common import PreprocessingError, pick_by_name


RAW_KEYS = ("raw_eeg_data", "ch_names", "ch_types", "sfreq", "highpass", "lowpass")


@dataclasses.dataclass
class Recording:
    """One session and partition of raw EEG, channels already picked.

    Attributes
    ----------
    eeg : numpy.ndarray of float64, shape (n_chans, n_samples)
        Volts.
    ch_names : list of str, length n_chans
    sfreq : float
    events : numpy.ndarray of int64, shape (n_events, 3)
        ``mne.find_events`` layout: sample, previous value, code (image condition or the target code).
    files : list of pathlib.Path
        Input files it came from.
    """

    eeg: np.ndarray
    ch_names: list[str]
    sfreq: float
    events: np.ndarray
    files: list[Path]


def _find_events(stim: np.ndarray, sfreq: float) -> np.ndarray:
    """``mne.find_events`` with its defaults on one stim row of shape (n_samples,); returns (n_events, 3) int64."""
    import mne

    info = mne.create_info(["stim"], sfreq, ["stim"])
    raw = mne.io.RawArray(stim[np.newaxis], info, verbose="error")
    return mne.find_events(raw, stim_channel="stim", verbose="error").astype(np.int64)


def _check_finite(eeg: np.ndarray, ch_names: list[str], sfreq: float, source: str) -> None:
    for row, name in enumerate(ch_names):
        finite = np.isfinite(eeg[row])
        if not finite.all():
            first = int(np.argmin(finite))
            raise PreprocessingError(
                f"{source}: channel {name} has a non-finite value ({eeg[row, first]}) at sample {first} "
                f"({first / sfreq:.3f} s); the recording is corrupt - re-download it or exclude the channel "
                "with --channels"
            )


def load_raw_npy(path: Path, ch_names: tuple[str, ...]) -> Recording:
    """Read one ``raw_eeg_{training,test}.npy`` dict, find its events and keep ``ch_names``.

    Parameters
    ----------
    path : pathlib.Path
    ch_names : tuple of str
        Channels to keep, in output order.

    Returns
    -------
    Recording
        ``eeg`` of shape (len(ch_names), n_samples).

    Raises
    ------
    PreprocessingError
        Wrong keys or shapes, no ``stim`` row, missing channels, non-finite samples.
    ttdnet.data.safe_pickle.ContainerFormatError
        Truncated or corrupt file.
    """
    source = str(path)
    contents = load_pickled_container(path)
    if not isinstance(contents, dict) or not {"raw_eeg_data", "ch_names", "sfreq"} <= set(contents):
        keys = sorted(contents) if isinstance(contents, dict) else type(contents).__name__
        raise PreprocessingError(f"{source}: keys {keys}; a THINGS-EEG2 raw file has {list(RAW_KEYS)}")
    data = contents.pop("raw_eeg_data")
    names = [str(name) for name in contents["ch_names"]]
    sfreq = float(contents["sfreq"])
    if not isinstance(data, np.ndarray) or data.ndim != 2 or data.shape[0] != len(names):
        shape = getattr(data, "shape", None)
        raise PreprocessingError(
            f"{source}: 'raw_eeg_data' has shape {shape}; expected ({len(names)}, n_samples), "
            "one row per ch_names entry"
        )
    if "stim" not in names:
        raise PreprocessingError(f"{source}: no 'stim' row in ch_names {names}; the events channel is required")
    if not np.isfinite(sfreq) or sfreq <= 0:
        raise PreprocessingError(f"{source}: sampling rate {contents['sfreq']!r} is not a positive number")
    rows = pick_by_name(names, ch_names, source)
    events = _find_events(np.asarray(data[names.index("stim")], dtype=np.float64), sfreq)
    eeg = np.array(data[rows], dtype=np.float64)  # a copy, so the full array can be freed now
    del data, contents
    _check_finite(eeg, list(ch_names), sfreq, source)
    return Recording(eeg=eeg, ch_names=list(ch_names), sfreq=sfreq, events=events, files=[path])


def _behavioural_numbers(mat_path: Path, target_code: int) -> np.ndarray:
    """Image number of every trial in a behavioural ``.mat`` file, shape (n_trials,); targets get ``target_code``."""
    from scipy.io import loadmat

    try:
        data = loadmat(mat_path, simplify_cells=True)["data"]
        images = data["images"]
    except (KeyError, TypeError, ValueError, OSError) as error:
        raise PreprocessingError(
            f"{mat_path}: not a THINGS-EEG2 behavioural file (struct 'data' with field 'images'): {error}"
        ) from error
    if isinstance(images, dict):
        numbers = np.atleast_1d(images["tot_img_number"])
    else:
        numbers = np.array([entry["tot_img_number"] for entry in images])
    numbers = numbers.astype(np.int64).ravel()
    numbers[numbers == 0] = target_code  # targets are 0 in the behavioural file, 99999 in the raw files
    return numbers


def load_brainvision(pairs: list[tuple[Path, Path]], ch_names: tuple[str, ...], target_code: int) -> Recording:
    """Read BrainVision parts with MNE and label their stimulus markers from the behavioural files.

    The *k*-th ``Stimulus/`` annotation of a part is paired with its *k*-th behavioural trial; no event is
    dropped on the assumption that it is a "New Segment" marker, since current MNE already removes those.
    Parts are spliced in order, as the official ``source_to_raw.py`` does.

    Parameters
    ----------
    pairs : list of (pathlib.Path, pathlib.Path)
        ``(vhdr, beh .mat)`` of every part, in order.
    ch_names : tuple of str
        Channels to keep, in output order.
    target_code : int
        Event code given to target trials.

    Returns
    -------
    Recording
        ``eeg`` of shape (len(ch_names), total samples), volts.
    """
    import mne

    blocks, events, files, offset, sfreq = [], [], [], 0, None
    for vhdr, mat in pairs:
        try:
            raw = mne.io.read_raw_brainvision(vhdr, preload=False, verbose="error")
        except Exception as error:  # MNE raises many types for broken headers
            raise PreprocessingError(
                f"{vhdr}: cannot be read as BrainVision ({type(error).__name__}: {error})"
            ) from error
        if sfreq is not None and raw.info["sfreq"] != sfreq:
            raise PreprocessingError(
                f"{vhdr}: sampling rate {raw.info['sfreq']} Hz differs from the first part's {sfreq}"
            )
        sfreq = raw.info["sfreq"]
        rows = pick_by_name(raw.ch_names, ch_names, str(vhdr))
        part_events, _ = mne.events_from_annotations(raw, event_id=lambda _: 1, regexp="^Stimulus/", verbose="error")
        numbers = _behavioural_numbers(mat, target_code)
        if len(part_events) != len(numbers):
            raise PreprocessingError(
                f"{vhdr}: {len(part_events)} 'Stimulus/' markers but {mat} lists {len(numbers)} trials; they must "
                "pair 1:1 (is a part missing or truncated?)"
            )
        part_events = part_events.astype(np.int64)
        part_events[:, 0] += offset - raw.first_samp
        part_events[:, 2] = numbers
        try:
            blocks.append(raw.get_data(picks=[raw.ch_names[i] for i in rows]))
        except Exception as error:
            raise PreprocessingError(f"{vhdr}: data unreadable ({type(error).__name__}: {error})") from error
        events.append(part_events)
        files += [vhdr, mat]
        offset += raw.n_times
    eeg = np.concatenate(blocks, axis=1)
    _check_finite(eeg, list(ch_names), float(sfreq), str(pairs[0][0]))
    return Recording(eeg=eeg, ch_names=list(ch_names), sfreq=float(sfreq), events=np.concatenate(events), files=files)
