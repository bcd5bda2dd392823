"""Unlabelled EEG recordings (EDF/BDF/BrainVision) to windows for self-supervised pretraining.

Per recording: read with MNE, standardise channel names, pick the target channels by name (missing ones
reported), high-/low-pass (MNE FIR, zero phase) at the original rate, resample, cut fixed windows with
:class:`mne.Epochs` (``reject_by_annotation=True``: windows overlapping a ``BAD...`` annotation are dropped),
normalise, baseline each window. :mod:`ttdnet.preprocessing.edf_corpus` runs this over a folder and writes the
windows to :class:`ttdnet.data.eeg_window_writer.EEGWindowWriter` shards.

**Normalisation (default ``whiten``).** The THINGS-EEG2 data the encoder later sees is MVNN-whitened: its noise
covariance across channels is the identity, so each channel has about unit variance and channels are
decorrelated. An unlabelled recording has no conditions to separate signal from noise, so all of it is treated
as noise: its channel covariance (observations = samples of the filtered, resampled recording outside ``BAD...``
annotations, ``Raw.get_data(reject_by_annotation="omit")``) is estimated with the same Ledoit-Wolf recipe as MVNN
(standardise, ``ledoit_wolf``, rescale) and every sample is multiplied by ``Sigma^(-1/2)``. This is MVNN's
``epochs`` mode with the recording's good samples as one epoch; rejected segments never shape the whitening.
``zscore`` (per-channel standardisation, mean and standard deviation from the same good samples) matches the unit
variance but not the decorrelation.
"""

from pathlib import Path
from typing import Any

import numpy as np

from ttdnet.covariance import whitening_matrix
from ttdnet.preprocessing import mvnn
from ttdnet.preprocessing.common import PreprocessingError, standardise_channel_name


class SkipRecording(Exception):
    """A readable recording that cannot be used (missing channels, too low a rate); the message says why."""


class BadRecording(Exception):
    """A recording that must be fixed before it can be used: corrupt, truncated or unreadable, or lacking more of
    the target channels than ``--max_interpolated_fraction`` allows to interpolate; the message says what failed."""


def _rename_map(ch_names: list[str], source: str) -> dict[str, str]:
    mapping = {}
    seen: dict[str, str] = {}
    for name in ch_names:
        standard = standardise_channel_name(name)
        if standard is None:
            continue
        if standard in seen:
            raise BadRecording(f"channels {seen[standard]!r} and {name!r} both standardise to {standard!r}")
        seen[standard] = name
        mapping[name] = standard
    return mapping


def process_recording(path: Path, ch_names: tuple[str, ...], config) -> tuple[np.ndarray, dict[str, Any]]:
    """Windows of one recording.

    Parameters
    ----------
    path : pathlib.Path
    ch_names : tuple of str
        Target channels in output order (10-05 spelling).
    config : PreprocessEdfConfig

    Returns
    -------
    windows : numpy.ndarray of float32, shape (n_windows, n_chans, n_times)
    record : dict
        ``sfreq_original``, ``n_samples_original``, ``missing_channels``, ``interpolated``, ``n_interpolated``
        (channels interpolated), ``n_windows``.

    Raises
    ------
    SkipRecording
        Missing channels (with ``missing_channels="skip"``), a rate below ``config.sfreq``, a recording shorter
        than one window.
    BadRecording
        MNE cannot read the header or the data, the data holds non-finite values, or more than
        ``config.max_interpolated_fraction`` of ``ch_names`` would be interpolated.
    """
    import mne

    if path.suffix.lower() in (".edf", ".bdf"):
        check_edf_size(path)
    try:
        raw = mne.io.read_raw(path, preload=False, verbose="error")
    except Exception as error:  # MNE raises ValueError, OSError, RuntimeError... for broken files
        raise BadRecording(f"cannot read the header ({type(error).__name__}: {error})") from error
    mapping = _rename_map(list(raw.ch_names), str(path))
    available = set(mapping.values())
    missing = [name for name in ch_names if name not in available]
    if missing and config.missing_channels != "interpolate":
        message = (
            f"lacks channels {missing} (has {sorted(available)}); use --missing_channels interpolate or another "
            "--channels set"
        )
        if config.missing_channels == "error":
            raise PreprocessingError(f"{path}: {message}")
        raise SkipRecording(message)
    if missing and len(missing) == len(ch_names):
        raise SkipRecording(f"has none of the channels {list(ch_names)}; nothing to interpolate from")
    if len(missing) > config.max_interpolated_fraction * len(ch_names):
        raise BadRecording(
            f"lacks {len(missing)} of the {len(ch_names)} target channels ({', '.join(missing)}): interpolating "
            f"{len(missing) / len(ch_names):.0%} of the output is above --max_interpolated_fraction "
            f"{config.max_interpolated_fraction:g}; choose another --channels set, or raise "
            "--max_interpolated_fraction (1 accepts any number)"
        )
    sfreq_original = float(raw.info["sfreq"])
    if sfreq_original < config.sfreq:
        raise SkipRecording(
            f"recorded at {sfreq_original:g} Hz, below the target --sfreq {config.sfreq:g} (upsampling adds nothing)"
        )
    keep = [original for original, standard in mapping.items()]
    try:
        raw.pick(keep)
        raw.load_data(verbose="error")
    except Exception as error:
        raise BadRecording(f"data unreadable, truncated or corrupt ({type(error).__name__}: {error})") from error
    raw.rename_channels(mapping)
    raw.set_channel_types(dict.fromkeys(raw.ch_names, "eeg"), verbose="error")
    data = raw.get_data()
    if not np.isfinite(data).all():
        row, column = np.argwhere(~np.isfinite(data))[0]
        raise BadRecording(f"non-finite value in channel {raw.ch_names[row]} at sample {column}")
    del data
    present = [name for name in ch_names if name in available]
    extra = [name for name in raw.ch_names if name not in ch_names]
    if not missing and extra:
        raw.pick(present)  # with missing channels, the others stay until after the interpolation (neighbours)
    n_samples_original = raw.n_times
    if config.l_freq is not None or config.h_freq is not None:
        raw.filter(config.l_freq, config.h_freq, verbose="error")
    if sfreq_original != config.sfreq:
        raw.resample(config.sfreq, verbose="error")
    if missing:
        from ttdnet.data.channels import make_standard_1005_montage

        info = mne.create_info(missing, config.sfreq, "eeg")
        filler = mne.io.RawArray(np.zeros((len(missing), raw.n_times)), info, verbose="error")
        raw.add_channels([filler], force_update_info=True)
        raw.set_montage(make_standard_1005_montage(), on_missing="ignore", verbose="error")
        raw.info["bads"] = list(missing)
        raw.interpolate_bads(reset_bads=True, verbose="error")
    raw.pick(list(ch_names))
    raw.reorder_channels(list(ch_names))
    n_times, stride = window_samples(config)
    windows = cut_windows(raw, n_times, stride)  # (n_windows, n_chans, n_times) volts
    if windows.shape[0] == 0:
        raise SkipRecording(f"shorter than one {config.window_seconds:g} s window after rejecting bad segments")
    good = raw.get_data(reject_by_annotation="omit", verbose="error")  # (n_chans, n_good_samples) volts
    windows = normalise(windows, good, config.normalisation)
    if config.baseline_seconds is not None:
        n_base = min(n_times, int(round(config.baseline_seconds * config.sfreq)) + 1)
        windows -= windows[:, :, :n_base].mean(axis=2, keepdims=True)
    record = {
        "sfreq_original": sfreq_original,
        "n_samples_original": int(n_samples_original),
        "missing_channels": missing,
        "interpolated": bool(missing),
        "n_interpolated": len(missing),
        "n_windows": int(windows.shape[0]),
    }
    return windows.astype(np.float32), record


def _whole_samples(name: str, seconds: float, sfreq: float) -> int:
    samples = seconds * sfreq
    if abs(samples - round(samples)) > 1e-6 or round(samples) < 1:
        raise PreprocessingError(
            f"--{name} {seconds:g} at --sfreq {sfreq:g} is {samples:g} samples, not a whole number; choose a "
            f"multiple of {1 / sfreq:g} s"
        )
    return int(round(samples))


def window_samples(config) -> tuple[int, int]:
    """Window length and stride in samples at the target rate, after checking the options that combine.

    Returns
    -------
    n_times, stride : int

    Raises
    ------
    PreprocessingError
        A window or stride that is not a whole number of samples, a low-pass edge at or above the target Nyquist
        frequency, a high-pass edge at or above the low-pass edge, or a baseline longer than the window.
    """
    n_times = _whole_samples("window_seconds", config.window_seconds, config.sfreq)
    stride = n_times
    if config.stride_seconds is not None:
        stride = _whole_samples("stride_seconds", config.stride_seconds, config.sfreq)
    if config.h_freq is not None and config.h_freq >= config.sfreq / 2:
        raise PreprocessingError(
            f"--h_freq {config.h_freq:g} must be below the target Nyquist {config.sfreq / 2:g} Hz"
        )
    if config.l_freq is not None and config.h_freq is not None and config.l_freq >= config.h_freq:
        raise PreprocessingError(
            f"--l_freq {config.l_freq:g} must be below --h_freq {config.h_freq:g} (a band-pass needs low < high)"
        )
    if config.baseline_seconds is not None and config.baseline_seconds > config.window_seconds:
        raise PreprocessingError(
            f"--baseline_seconds {config.baseline_seconds:g} is longer than the {config.window_seconds:g} s window; "
            "choose at most --window_seconds, or null for no baseline"
        )
    return n_times, stride


def check_edf_size(path: Path) -> None:
    """Compare an EDF/BDF file's size with what its header promises; MNE reads a truncated file silently.

    Raises
    ------
    BadRecording
        The header is unreadable, or the file holds fewer data records than the header declares.
    """
    with open(path, "rb") as handle:
        fixed = handle.read(256)
        try:
            header_bytes = int(fixed[184:192].decode("ascii").strip())
            n_records = int(fixed[236:244].decode("ascii").strip())
            n_signals = int(fixed[252:256].decode("ascii").strip())
            handle.seek(256 + n_signals * 216)
            per_record = [int(handle.read(8).decode("ascii").strip()) for _ in range(n_signals)]
        except (ValueError, UnicodeDecodeError) as error:
            raise BadRecording(f"not an EDF/BDF file: unreadable header ({error})") from error
    if n_records < 0:
        return  # "-1": record count unknown (file still being written); nothing to compare
    width = 3 if path.suffix.lower() == ".bdf" else 2
    expected = header_bytes + n_records * sum(per_record) * width
    actual = path.stat().st_size
    if actual < expected:
        raise BadRecording(
            f"truncated: {actual} bytes, but the header declares {n_records} data records ({expected} bytes); "
            "re-download or re-export it"
        )


def cut_windows(raw, n_times: int, stride: int) -> np.ndarray:
    """Fixed-length windows of a loaded recording, cut by MNE's epoching with rejection by annotation.

    A window starts every ``stride`` samples from the first; windows overlapping an annotation whose description
    begins with ``BAD`` (case-insensitive) are dropped, as :class:`mne.Epochs` does with
    ``reject_by_annotation=True``.

    Parameters
    ----------
    raw : mne.io.BaseRaw
        Preloaded, only the output channels, in order.
    n_times, stride : int
        Window length and step between window starts, in samples.

    Returns
    -------
    numpy.ndarray of float64, shape (n_windows, n_chans, n_times)
        Volts; ``n_windows`` may be 0.
    """
    import mne

    starts = np.arange(0, raw.n_times - n_times + 1, stride)
    empty = np.empty((0, len(raw.ch_names), n_times))
    if starts.size == 0:
        return empty
    events = np.column_stack([starts + raw.first_samp, np.zeros_like(starts), np.ones_like(starts)])
    epochs = mne.Epochs(
        raw,
        events,
        event_id=None,
        tmin=0.0,
        tmax=(n_times - 1) / raw.info["sfreq"],
        baseline=None,
        proj=False,
        reject_by_annotation=True,
        preload=True,
        verbose="error",
    )
    return epochs.get_data(copy=False) if len(epochs) else empty


def normalise(windows: np.ndarray, fit_samples: np.ndarray, method: str) -> np.ndarray:
    """Normalise one recording's windows with statistics estimated on its good samples.

    Parameters
    ----------
    windows : numpy.ndarray, shape (n_windows, n_chans, n_times)
    fit_samples : numpy.ndarray, shape (n_chans, n_samples)
        The samples the mean, standard deviation or covariance is estimated on (the recording outside ``BAD``
        annotations).
    method : {"whiten", "zscore", "none"}

    Returns
    -------
    numpy.ndarray of float64, shape (n_windows, n_chans, n_times)
    """
    if method == "none":
        return windows
    mean = fit_samples.mean(axis=1, keepdims=True)  # (n_chans, 1)
    if method == "zscore":
        std = fit_samples.std(axis=1, keepdims=True)
        if (std == 0).any():
            raise BadRecording("a channel is flat (zero variance); cannot z-score it")
        return (windows - mean) / std
    if method == "whiten":
        sigma = mvnn.shrinkage_covariances((fit_samples - mean).T[np.newaxis])[0]
        try:
            whitener = whitening_matrix(sigma)
        except ValueError as error:
            raise BadRecording(f"channel covariance is singular ({error})") from error
        return whitener @ (windows - mean)
    raise ValueError(f"unknown normalisation {method!r}")
