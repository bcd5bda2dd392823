"""Rerunning ``ttdnet preprocess things-eeg2`` into an output folder that already holds finished subjects.

A subject is finished when its ``provenance.json`` exists (it is written last). Every finished subject of one
output folder must have been made with the options of this run, except those that do not change the EEG files
(``RESULT_INDEPENDENT`` of the config class); otherwise the folder would mix, say, whitening fitted on training
data only with whitening fitted on train + test, while ``config.yaml`` names only one of them.
"""

import json
from pathlib import Path

from ttdnet.config import config_to_dict
from ttdnet.data.things_eeg2 import subject_name
from ttdnet.preprocessing.common import PreprocessingError
from ttdnet.preprocessing.things_eeg2_discovery import SUBJECT_PATTERN, numbered_dirs


PROVENANCE_NAME = "provenance.json"


def option_differences(provenance_path: Path, subject_dir: Path | None, config) -> list[str]:
    """How this run's options differ from those a finished subject was preprocessed with.

    Options in ``RESULT_INDEPENDENT`` of the config class are not compared. ``raw_dir`` is compared as the
    subject's resolved raw folder (another spelling of the same folder is no difference), and only when
    ``subject_dir`` is given.

    Parameters
    ----------
    provenance_path : pathlib.Path
        The subject's ``provenance.json``.
    subject_dir : pathlib.Path, optional
        The subject's raw folder in this run; None when this run does not select the subject.
    config : PreprocessThingsEEG2Config

    Returns
    -------
    list of str
        ``"name: recorded OLD, now NEW"`` per differing option, in field order; empty when they agree.

    Raises
    ------
    PreprocessingError
        The ``provenance.json`` cannot be read.
    """
    try:
        provenance = json.loads(provenance_path.read_text())
        recorded, resolved = dict(provenance["parameters"]), dict(provenance["resolved"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise PreprocessingError(
            f"{provenance_path}: unreadable ({type(error).__name__}: {error}); pass --overwrite to redo the subject"
        ) from error
    current = json.loads(json.dumps(config_to_dict(config)))  # the form it takes in provenance.json
    ignored = set(type(config).RESULT_INDEPENDENT)
    if subject_dir is None:
        ignored.add("raw_dir")
    elif "raw_subject_dir" in resolved:
        recorded["raw_dir"], current["raw_dir"] = resolved["raw_subject_dir"], str(subject_dir.resolve())
    differences = []
    for name, value in current.items():
        if name in ignored or (name in recorded and recorded[name] == value):
            continue
        old = repr(recorded[name]) if name in recorded else "nothing"
        differences.append(f"{name}: recorded {old}, now {value!r}")
    return differences


def finished_subjects(output_root: Path, selected: dict[int, Path], config) -> dict[int, Path]:
    """The selected subjects to skip as done, after checking every finished subject in ``output_root``.

    Parameters
    ----------
    output_root : pathlib.Path
        ``--output_dir``.
    selected : dict of int to pathlib.Path
        Subject number -> raw folder, for the subjects this run processes.
    config : PreprocessThingsEEG2Config

    Returns
    -------
    dict of int to pathlib.Path
        Subject number -> ``provenance.json`` of each selected subject that is finished (none with ``overwrite``).

    Raises
    ------
    PreprocessingError
        A finished subject that this run keeps (a selected one without ``--overwrite``, or one not selected) was
        made with options that differ from this run's; the message names the subject, every option with both
        values, and the fixes.
    """
    finished = {
        number: folder / PROVENANCE_NAME
        for number, folder in numbered_dirs(output_root, SUBJECT_PATTERN).items()
        if (folder / PROVENANCE_NAME).is_file() and not (config.overwrite and number in selected)
    }
    for number, path in finished.items():
        differences = option_differences(path, selected.get(number), config)
        if not differences:
            continue
        if number in selected:
            fix = "Pass --overwrite to redo it with the new options, or choose another --output_dir"
        else:
            fix = (
                "All subjects of one --output_dir share these options: add it to --subjects and pass --overwrite to "
                "redo it, or choose another --output_dir"
            )
        raise PreprocessingError(
            f"{path}: {subject_name(number)} was preprocessed with other options ({'; '.join(differences)}). {fix}"
        )
    return {number: path for number, path in finished.items() if number in selected}
