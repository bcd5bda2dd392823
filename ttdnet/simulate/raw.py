"""Continuous raw recordings in the published ``raw_eeg_{training,test}.npy`` format (``docs/data-format.md``).

For one subject and session, :func:`simulate_raw_session` lays out the RSVP presentation sequence (every image
of the session shown as often as the session design says, a few extra repeats and target trials, onsets every
200 ms), then draws continuous background EEG at 1000 Hz and adds the evoked response of each presentation at
its onset (responses of neighbouring presentations overlap, as in RSVP). The result is the dict the official
``source_to_raw.py`` saves: 63 EEG rows in volts plus a ``stim`` row holding the condition number (or 99999 for
targets) at each onset sample. ``ttdnet preprocess things-eeg2`` turns these files into the official
preprocessed format.

Noise is drawn in independent blocks of :data:`NOISE_BLOCK_SECONDS` joined by an equal-power cross-fade
(``cos``/``sin`` weights, so the variance stays constant), which bounds memory for full-size sessions.
"""

import numpy as np

from ttdnet.data.channels import RAW_63_CHANNELS
from ttdnet.simulate.eeg_model import SubjectModel
from ttdnet.simulate.names import stable_seed


RAW_SFREQ = 1000
SOA_SAMPLES = 200
"""Stimulus onset asynchrony: 200 ms at 1 kHz (5 Hz RSVP)."""
LEAD_SAMPLES = 2000
TAIL_SAMPLES = 2001
"""Margins before the first and after the last onset, in samples. An epoch of ``tmin ... tmax`` needs
``-tmin * 1000`` samples before its onset and ``tmax * 1000 + 1`` from it on (``tmax`` is inclusive): 200 and 801 for
the official -0.2 ... 0.8 s, 200 and 1001 for the NICE/ATM -0.2 ... 1.0 s. The 2 s margins leave room for epochs up
to -2.0 ... 2.0 s."""
RESPONSE_SECONDS = 0.8
TARGET_CODE = 99999
EXTRA_REPEAT_FRACTION = 0.01
TARGET_FRACTION = 0.005
NOISE_BLOCK_SECONDS = 120.0
CROSSFADE_SECONDS = 1.0
EVOKED_CHUNK = 256


def presentation_sequence(counts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Shuffled condition codes of one session: image ``i`` (code ``i + 1``) shown ``counts[i]`` times, plus
    extra repeats of random shown images and target trials (:data:`TARGET_CODE`).

    Parameters
    ----------
    counts : numpy.ndarray of int, shape (n_images,)
        Presentations of each image in this session (0 for images of other sessions).
    rng : numpy.random.Generator

    Returns
    -------
    numpy.ndarray of int, shape (n_presentations,)
    """
    shown = np.flatnonzero(counts)
    codes = np.repeat(np.arange(1, len(counts) + 1), counts)
    n_extra = int(round(EXTRA_REPEAT_FRACTION * len(codes)))
    n_targets = max(1, int(round(TARGET_FRACTION * len(codes))))
    extras = rng.choice(shown, size=n_extra, replace=True) + 1
    return rng.permutation(np.concatenate([codes, extras, np.full(n_targets, TARGET_CODE)]))


def _continuous_noise(subject: SubjectModel, rng: np.random.Generator, n_samples: int) -> np.ndarray:
    """Background EEG of shape (63, n_samples) from cross-faded independent blocks.

    Each block draws ``fade`` samples more than it keeps; that continuation is faded out over the first
    ``fade`` samples of the next block while the next block fades in.
    """
    block = int(NOISE_BLOCK_SECONDS * RAW_SFREQ)
    fade = int(CROSSFADE_SECONDS * RAW_SFREQ)
    channels = list(range(len(RAW_63_CHANNELS)))
    fade_out, fade_in = np.cos(np.linspace(0.0, np.pi / 2, fade)), np.sin(np.linspace(0.0, np.pi / 2, fade))
    output = np.empty((len(channels), n_samples))
    continuation = None
    for start in range(0, n_samples, block):
        keep = min(block, n_samples - start)
        segment = subject.noise(rng, 1, keep + fade, RAW_SFREQ, channels)[0]
        if continuation is not None:
            segment[:, :fade] = continuation * fade_out + segment[:, :fade] * fade_in
        output[:, start : start + keep] = segment[:, :keep]
        continuation = segment[:, keep:]
    return output


def simulate_raw_session(
    subject: SubjectModel,
    features: np.ndarray,
    counts: np.ndarray,
    session: int,
    target_features: np.ndarray,
    seed: int,
    partition: str,
) -> dict:
    """One session's continuous recording as the official raw dict.

    Parameters
    ----------
    subject : SubjectModel
        Calibrated subject model.
    features : numpy.ndarray, shape (n_images, N_FEATURES)
        Features of every image of the partition, in condition order.
    counts : numpy.ndarray of int, shape (n_images,)
        Presentations of each image in this session.
    session : int
        0-based session index (selects the session's signal gain and noise level).
    target_features : numpy.ndarray, shape (N_FEATURES,)
        Features of the target image.
    seed : int
        Dataset seed.
    partition : {"training", "test"}

    Returns
    -------
    dict
        ``raw_eeg_data`` float64 (64, n_samples) (63 EEG rows in volts, then ``stim``), ``ch_names``,
        ``ch_types``, ``sfreq`` (1000), ``highpass`` (0.01), ``lowpass`` (100).
    """
    rng = np.random.default_rng(stable_seed(seed, "raw", subject.subject_number, partition, session))
    sequence = presentation_sequence(counts, rng)
    onsets = LEAD_SAMPLES + SOA_SAMPLES * np.arange(len(sequence))
    n_samples = int(onsets[-1]) + TAIL_SAMPLES
    eeg = _continuous_noise(subject, rng, n_samples) * subject.session_noise_scales[session]
    response_times = np.arange(int(RESPONSE_SECONDS * RAW_SFREQ)) / RAW_SFREQ
    channels = list(range(len(RAW_63_CHANNELS)))
    all_features = np.concatenate([features, target_features[None]])
    image_of = np.where(sequence == TARGET_CODE, len(features), sequence - 1)
    gain = subject.session_signal_gains[session]
    for start in range(0, len(sequence), EVOKED_CHUNK):
        stop = min(start + EVOKED_CHUNK, len(sequence))
        responses = subject.evoked(all_features[image_of[start:stop]], response_times, channels) * gain
        for onset, response in zip(onsets[start:stop], responses):
            eeg[:, onset : onset + response.shape[1]] += response
    stim = np.zeros(n_samples)
    stim[onsets] = sequence
    return {
        "raw_eeg_data": np.concatenate([eeg, stim[None]]),
        "ch_names": [*RAW_63_CHANNELS, "stim"],
        "ch_types": ["eeg"] * len(RAW_63_CHANNELS) + ["stim"],
        "sfreq": RAW_SFREQ,
        "highpass": 0.01,
        "lowpass": 100,
    }
