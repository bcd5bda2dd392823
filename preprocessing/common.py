"""Helpers shared by the preprocessing commands: channel sets by name, channel-name standardisation,
provenance (package versions, file checksums, peak memory)."""

import functools
import re
import resource
import sys
from collections.abc import Sequence
from pathlib import Path

from ttdnet.data.channels import NICE_63_CHANNELS, POSTERIOR_17_CHANNELS, RAW_63_CHANNELS, with_case_hints
from ttdnet.errors import TtdnetError
from ttdnet.hashing import sha256_file
from ttdnet.versions import package_versions as installed_versions
from ttdnet.versions import runtime_versions


CHANNEL_SETS: dict[str, tuple[str, ...]] = {
    "posterior17": POSTERIOR_17_CHANNELS,
    "raw63": RAW_63_CHANNELS,
    "nice63": NICE_63_CHANNELS,
}
CHANNEL_SET_ALIASES = {"17": "posterior17", "63": "raw63"}
CHANNELS_HELP = (
    "channel set: 'posterior17' (or '17': the 17 occipito-parietal channels of the official release, raw order), "
    "'raw63' (or '63': all 63, raw order), 'nice63' (all 63 in the NICE/ATM front-to-back order), or an explicit "
    "comma-separated list of names such as 'O1,Oz,O2'; the output keeps this order"
)
PACKAGES = ("ttdnet", "numpy", "scipy", "mne", "scikit-learn", "edfio", "pybv", "tqdm")


class PreprocessingError(TtdnetError):
    """Bad preprocessing input or options; the message names the file, the value and the fix."""


@functools.lru_cache(maxsize=1)
def _standard_names_by_lower() -> dict[str, str]:
    from ttdnet.data.channels import make_standard_1005_montage

    return {name.lower(): name for name in make_standard_1005_montage().ch_names}


def resolve_channels(spec: str) -> tuple[str, ...]:
    """The channel names a ``--channels`` value stands for.

    Parameters
    ----------
    spec : str
        A set name (``posterior17``, ``raw63``, ``nice63``, ``17``, ``63``) or comma/space separated names.

    Returns
    -------
    tuple of str
        Names in output order, spelled as in MNE's standard 10-05 montage.

    Raises
    ------
    PreprocessingError
        Empty list, duplicates, or names outside the 10-05 system.
    """
    key = CHANNEL_SET_ALIASES.get(spec.strip(), spec.strip())
    if key in CHANNEL_SETS:
        return CHANNEL_SETS[key]
    names = [name for name in re.split(r"[,\s]+", spec) if name]
    if not names:
        raise PreprocessingError(f"--channels {spec!r} names no channel; {CHANNELS_HELP}")
    known = _standard_names_by_lower()
    unknown = [name for name in names if name.lower() not in known]
    if unknown:
        raise PreprocessingError(
            f"--channels {spec!r}: {unknown} are not channel names of the standard 10-05 system and not one of the "
            f"sets {sorted(CHANNEL_SETS)}"
        )
    canonical = [known[name.lower()] for name in names]
    duplicates = sorted({name for name in canonical if canonical.count(name) > 1})
    if duplicates:
        raise PreprocessingError(f"--channels {spec!r} lists {duplicates} more than once")
    return tuple(canonical)


def pick_by_name(available: Sequence[str], wanted: Sequence[str], source: str) -> list[int]:
    """Indices of ``wanted`` channels in ``available`` (exact names), in ``wanted`` order.

    Raises
    ------
    PreprocessingError
        Listing every missing name (with a case-insensitive suggestion) and the file.
    """
    position = {name: i for i, name in enumerate(available)}
    missing = [name for name in wanted if name not in position]
    if missing:
        raise PreprocessingError(
            f"{source}: channels {', '.join(with_case_hints(missing, available))} are not in the file, which has "
            f"{list(available)}. "
            "Choose another --channels set or list the channels explicitly."
        )
    return [position[name] for name in wanted]


_TUH_ALIASES = {"t3": "T7", "t4": "T8", "t5": "P7", "t6": "P8"}


def standardise_channel_name(name: str) -> str | None:
    """The 10-05 spelling of an EDF channel label, or None for a non-EEG or unknown label.

    Handles the PhysioNet EEGMMIDB dotted labels (``Fc5.`` -> ``FC5``, ``Cz..`` -> ``Cz``, ``Fpz.`` ->
    ``Fpz``), TUH labels (``EEG FP1-REF`` -> ``Fp1``, ``EEG T3-LE`` -> ``T7``; old 10-20 names T3/T4/T5/T6
    map to T7/T8/P7/P8) and case differences.
    """
    text = name.strip()
    text = re.sub(r"^(EEG|eeg)\s+", "", text)
    text = re.sub(r"-(REF|LE|AVG|Ref|ref)$", "", text)
    text = text.strip(". ")
    if not text:
        return None
    lowered = text.lower()
    if lowered in _TUH_ALIASES:
        return _TUH_ALIASES[lowered]
    return _standard_names_by_lower().get(lowered)


def package_versions() -> dict[str, str | None]:
    """Installed versions of the packages that shape the output, plus Python and the platform."""
    return {**runtime_versions(), **installed_versions(PACKAGES, missing=None)}


def describe_file(path: Path, root: Path, checksum: bool) -> dict:
    """``{"path", "size_bytes", "sha256"}`` of an input file, the path relative to ``root`` when inside it."""
    try:
        shown = str(path.relative_to(root))
    except ValueError:
        shown = str(path)
    return {"path": shown, "size_bytes": path.stat().st_size, "sha256": sha256_file(path) if checksum else None}


def peak_rss_bytes() -> int:
    """Peak resident set size of this process so far (``getrusage``; Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)
