"""Pair reconstructions with their ground-truth images, by name or by manifest, never by listing order.

Three ways in, one result (:class:`PairedSet`):

* **Folders, matched by name.** The key of a ground-truth image is its path relative to the ground-truth
  folder without the extension (``match_by="path"``), or its file stem (``match_by="stem"``). A
  reconstruction is ``<key>.<ext>`` (one sample per trial) or ``<key>_s<k>.<ext>`` with ``k`` a
  non-negative integer (sample ``k``), relative to the reconstruction folder.
* **THINGS-EEG2 root as ground truth.** The 200 ``test_images/`` in official test order; the key of a
  trial is its concept folder name (``00001_aircraft_carrier``). Reconstructions are named
  ``00001_aircraft_carrier.png`` or ``00001_aircraft_carrier_s0.png`` ...
* **A manifest** (``manifest.jsonl``, one JSON object per line with ``trial``, ``sample``, ``image`` and
  ``ground_truth``). ``image`` is relative to the manifest's folder, ``ground_truth`` relative to the
  ground-truth folder (or the image-set folder of a THINGS-EEG2 root); absolute paths are accepted.

Every mismatch is an error that lists the offending names: ground-truth images without reconstructions
(unless ``allow_missing``), reconstructions without a ground truth, duplicate keys, and trials whose
sample sets differ.
"""

import dataclasses
import json
import os
import re
from collections import defaultdict
from pathlib import Path
from typing import Literal

from ttdnet.errors import TtdnetError

from .images import IMAGE_EXTENSIONS


SAMPLE_SUFFIX = re.compile(r"^(?P<key>.+)_s(?P<sample>\d+)$")
MANIFEST_NAME = "manifest.jsonl"
MAX_LISTED = 20


@dataclasses.dataclass
class PairedSet:
    """Ground-truth images and their reconstructions, aligned by trial.

    Attributes
    ----------
    trial_ids : list of str
        One id per trial, in evaluation order (THINGS-EEG2 official order, or sorted keys).
    gt_paths : list of pathlib.Path
        ``gt_paths[i]`` is the ground truth of trial ``i``.
    sample_ids : list of str
        Sample ids in order; sample set ``s`` is ``rec_paths[s]``. The first is "sample 0" in the report.
    rec_paths : list of list of pathlib.Path
        ``rec_paths[s][i]`` is sample ``sample_ids[s]`` of trial ``i``; shape ``(S, N)``.
    source : dict
        How the pairing was made (mode, folders, manifest, naming rule), recorded in ``metrics.json``.
    missing_trials : list of str
        Ground-truth trials left out because they had no reconstruction (only with ``allow_missing``).
    """

    trial_ids: list[str]
    gt_paths: list[Path]
    sample_ids: list[str]
    rec_paths: list[list[Path]]
    source: dict
    missing_trials: list[str] = dataclasses.field(default_factory=list)

    @property
    def n_trials(self) -> int:
        return len(self.trial_ids)

    @property
    def n_samples(self) -> int:
        return len(self.sample_ids)


def _listing(names, what: str) -> str:
    names = sorted(names)
    shown = ", ".join(str(name) for name in names[:MAX_LISTED])
    more = f" ... and {len(names) - MAX_LISTED} more" if len(names) > MAX_LISTED else ""
    return f"{len(names)} {what}: {shown}{more}"


def _image_files(root: Path) -> list[Path]:
    return sorted(
        path
        for path in root.rglob("*")
        if path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS and not _hidden(path, root)
    )


def _hidden(path: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def _key(path: Path, root: Path, match_by: str) -> str:
    if match_by == "stem":
        return path.stem
    return path.relative_to(root).with_suffix("").as_posix()


def is_things_root(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a THINGS-EEG2 image-set folder or a dataset root with ``image_set/image_metadata.npy``."""
    path = Path(path)
    return (path / "image_metadata.npy").is_file() or (path / "image_set" / "image_metadata.npy").is_file()


def ground_truth_from_folder(root: str | os.PathLike, match_by: Literal["path", "stem"] = "path") -> dict[str, Path]:
    """Ground-truth images of a plain folder by key.

    Parameters
    ----------
    root : path-like
        Folder searched recursively for image files (hidden files and folders are skipped).
    match_by : {"path", "stem"}
        Key = relative path without extension, or file stem.

    Returns
    -------
    dict
        Key to file, in sorted key order.
    """
    root = Path(root)
    if not root.is_dir():
        raise TtdnetError(f"ground-truth folder {root} does not exist. Pass --ground_truth DIR.")
    by_key: dict[str, list[Path]] = defaultdict(list)
    for path in _image_files(root):
        by_key[_key(path, root, match_by)].append(path)
    if not by_key:
        raise TtdnetError(f"ground-truth folder {root} holds no images ({', '.join(IMAGE_EXTENSIONS)}).")
    duplicates = {key: paths for key, paths in by_key.items() if len(paths) > 1}
    if duplicates:
        detail = "; ".join(
            f"{key}: {', '.join(p.name for p in paths)}" for key, paths in sorted(duplicates.items())[:MAX_LISTED]
        )
        raise TtdnetError(
            f"ground-truth folder {root}: {len(duplicates)} duplicate keys ({detail}). Keys must be unique"
            + (" (match_by=stem: use --match_by path)." if match_by == "stem" else "; remove one of each.")
        )
    return {key: by_key[key][0] for key in sorted(by_key)}


def ground_truth_from_things(root: str | os.PathLike) -> tuple[dict[str, Path], Path]:
    """The THINGS-EEG2 test images by concept folder name, in official test order.

    Parameters
    ----------
    root : path-like
        Dataset root or image-set folder (whatever :func:`ttdnet.data.things_eeg2.locate_image_set` accepts).

    Returns
    -------
    images : dict
        Concept folder name (``00001_aircraft_carrier``) to image file, in metadata order.
    image_dir : pathlib.Path
        The image-set folder.
    """
    from ttdnet.data.image_metadata import read_image_metadata
    from ttdnet.data.things_eeg2 import locate_image_set

    image_dir = Path(locate_image_set(root))
    metadata = read_image_metadata(image_dir)
    images = {}
    for concept, relative in zip(metadata.test_concepts, metadata.test_relative_paths, strict=True):
        path = image_dir / relative
        if not path.is_file():
            raise TtdnetError(
                f"THINGS-EEG2 test image {path} listed in {image_dir / 'image_metadata.npy'} is missing."
            )
        images[str(concept)] = path
    return images, image_dir


def _sample_sort_key(sample: str):
    return (0, int(sample), "") if sample.isdigit() else (1, 0, sample)


def _assemble(
    gt: dict[str, Path],
    recs: dict[str, dict[str, Path]],
    source: dict,
    allow_missing: bool,
    where: str,
) -> PairedSet:
    """Check trial and sample coverage and build the :class:`PairedSet` (trial order = ``gt`` order)."""
    missing = [key for key in gt if key not in recs]
    if missing and not allow_missing:
        raise TtdnetError(
            f"{where}: {_listing(missing, 'ground-truth images have no reconstruction')}. "
            "Add them, or pass --allow_missing to score only the trials that have reconstructions."
        )
    trials = [key for key in gt if key in recs]
    if len(trials) < 2:
        raise TtdnetError(f"{where}: {len(trials)} trial(s) matched; identification metrics need at least 2.")
    sample_sets = {key: frozenset(recs[key]) for key in trials}
    reference = sample_sets[trials[0]]
    uneven = [key for key in trials if sample_sets[key] != reference]
    if uneven:
        detail = "; ".join(f"{key}: {sorted(sample_sets[key], key=_sample_sort_key)}" for key in uneven[:MAX_LISTED])
        raise TtdnetError(
            f"{where}: every trial needs the same samples ({sorted(reference, key=_sample_sort_key)} for "
            f"{trials[0]}), but {len(uneven)} differ: {detail}"
        )
    samples = sorted(reference, key=_sample_sort_key)
    return PairedSet(
        trial_ids=list(trials),
        gt_paths=[gt[key] for key in trials],
        sample_ids=samples,
        rec_paths=[[recs[key][sample] for key in trials] for sample in samples],
        source=source,
        missing_trials=missing,
    )


def pair_by_name(
    gt: dict[str, Path], rec_dir: str | os.PathLike, match_by: str, allow_missing: bool, source: dict
) -> PairedSet:
    """Match the images of ``rec_dir`` to ground-truth keys with the naming rule (see module docstring)."""
    rec_dir = Path(rec_dir)
    if not rec_dir.is_dir():
        raise TtdnetError(f"reconstruction folder {rec_dir} does not exist. Pass --reconstructions DIR.")
    files = _image_files(rec_dir)
    if not files:
        raise TtdnetError(f"reconstruction folder {rec_dir} holds no images ({', '.join(IMAGE_EXTENSIONS)}).")
    recs: dict[str, dict[str, Path]] = defaultdict(dict)
    suffix_styles: dict[str, set[bool]] = defaultdict(set)
    unmatched, ambiguous, duplicates = [], [], []
    for path in files:
        key = _key(path, rec_dir, match_by)
        candidates = []
        if key in gt:
            candidates.append((key, "0", False))
        match = SAMPLE_SUFFIX.match(key)
        if match and match["key"] in gt:
            candidates.append((match["key"], str(int(match["sample"])), True))
        if not candidates:
            unmatched.append(path.relative_to(rec_dir).as_posix())
            continue
        if len(candidates) > 1:
            ambiguous.append(path.relative_to(rec_dir).as_posix())
            continue
        trial, sample, suffixed = candidates[0]
        if sample in recs[trial]:
            duplicates.append(
                f"{recs[trial][sample].relative_to(rec_dir).as_posix()} and {path.relative_to(rec_dir).as_posix()}"
            )
            continue
        recs[trial][sample] = path
        suffix_styles[trial].add(suffixed)
    mixed = [trial for trial, styles in suffix_styles.items() if len(styles) > 1]
    problems = []
    if unmatched:
        problems.append(_listing(unmatched, "reconstructions match no ground-truth image"))
    if ambiguous:
        problems.append(_listing(ambiguous, "reconstructions match two ground-truth keys (as <key> and <key>_s<k>)"))
    if duplicates:
        problems.append(_listing(duplicates, "duplicate reconstructions of one trial and sample"))
    if mixed:
        problems.append(_listing(mixed, "trials mix <key>.<ext> and <key>_s<k>.<ext> names"))
    if problems:
        rule = "a reconstruction of ground truth <key> is named <key>.<ext> or <key>_s<k>.<ext>, with <key> the " + (
            "file stem" if match_by == "stem" else "path relative to the ground-truth folder without extension"
        )
        raise TtdnetError(
            f"cannot pair {rec_dir} with the ground truth: "
            + "; ".join(problems)
            + f". Naming rule: {rule}; or use a {MANIFEST_NAME}."
        )
    return _assemble(gt, recs, source, allow_missing, str(rec_dir))


def read_manifest(path: str | os.PathLike) -> list[dict]:
    """Read and check a ``manifest.jsonl``.

    Parameters
    ----------
    path : path-like
        One JSON object per line with keys ``trial`` (str), ``sample`` (int or str), ``image`` and
        ``ground_truth`` (paths); other keys are allowed and ignored. Blank lines are skipped.

    Returns
    -------
    list of dict
        The rows, with ``trial`` and ``sample`` as str.
    """
    path = Path(path)
    if not path.is_file():
        raise TtdnetError(f"manifest {path} does not exist.")
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise TtdnetError(f"manifest {path}, line {number}: not valid JSON ({error}).") from error
        missing = [key for key in ("trial", "sample", "image", "ground_truth") if key not in row]
        if not isinstance(row, dict) or missing:
            raise TtdnetError(
                f"manifest {path}, line {number}: missing keys {missing}; "
                "each line needs trial, sample, image, ground_truth."
            )
        rows.append({**row, "trial": str(row["trial"]), "sample": str(row["sample"]), "line": number})
    if not rows:
        raise TtdnetError(f"manifest {path} has no rows.")
    return rows


def pair_by_manifest(
    manifest: str | os.PathLike, gt_root: Path, gt: dict[str, Path] | None, allow_missing: bool, source: dict
) -> PairedSet:
    """Pair the rows of a manifest.

    Parameters
    ----------
    manifest : path-like
        The ``manifest.jsonl``.
    gt_root : pathlib.Path
        Folder that relative ``ground_truth`` entries are resolved against.
    gt : dict, optional
        All ground-truth images by key (a folder or THINGS-EEG2 root). When given, every manifest ground
        truth must be one of them, and the trial order and coverage checks follow it. When None, the
        trials are those of the manifest, in the order of first appearance.
    """
    manifest = Path(manifest)
    rows = read_manifest(manifest)
    base = manifest.parent
    recs: dict[str, dict[str, Path]] = defaultdict(dict)
    trial_gt: dict[str, Path] = {}
    problems = []
    for row in rows:
        trial, sample = row["trial"], row["sample"]
        image = Path(row["image"]) if Path(row["image"]).is_absolute() else base / row["image"]
        truth = Path(row["ground_truth"]) if Path(row["ground_truth"]).is_absolute() else gt_root / row["ground_truth"]
        where = f"line {row['line']}"
        if not image.is_file():
            problems.append(f"{where}: image {image} does not exist")
        if not truth.is_file():
            problems.append(f"{where}: ground_truth {truth} does not exist")
        if sample in recs[trial]:
            problems.append(f"{where}: duplicate trial {trial!r} sample {sample!r}")
        recs[trial][sample] = image
        if trial in trial_gt and trial_gt[trial].resolve() != truth.resolve():
            problems.append(f"{where}: trial {trial!r} has two ground truths ({trial_gt[trial]} and {truth})")
        trial_gt.setdefault(trial, truth)
    by_gt = defaultdict(list)
    for trial, truth in trial_gt.items():
        by_gt[truth.resolve()].append(trial)
    problems += [
        f"ground truth {truth} is used by several trials {trials}"
        for truth, trials in by_gt.items()
        if len(trials) > 1
    ]
    if gt is not None:
        known = {path.resolve(): key for key, path in gt.items()}
        order = {}
        for trial, truth in trial_gt.items():
            if truth.resolve() not in known:
                problems.append(
                    f"trial {trial!r}: ground_truth {truth} is not one of the ground-truth images under {gt_root}"
                )
            else:
                order[known[truth.resolve()]] = trial
    if problems:
        raise TtdnetError(
            f"manifest {manifest}: "
            + "; ".join(problems[:MAX_LISTED])
            + (f" ... ({len(problems)} problems)" if len(problems) > MAX_LISTED else "")
        )
    if gt is None:
        return _assemble(dict(trial_gt), recs, source, allow_missing, str(manifest))
    # Trials ordered like the ground truth; ground truths without rows are "missing".
    ordered_gt = {order.get(key, f"<no trial> {key}"): path for key, path in gt.items()}
    return _assemble(ordered_gt, recs, source, allow_missing, str(manifest))


def pair_images(
    ground_truth: str | os.PathLike,
    reconstructions: str | os.PathLike | None = None,
    manifest: str | os.PathLike | None = None,
    match_by: Literal["path", "stem"] = "path",
    allow_missing: bool = False,
) -> PairedSet:
    """Pair reconstructions with ground truth (see the module docstring for the rules).

    Parameters
    ----------
    ground_truth : path-like
        A folder of images, or a THINGS-EEG2 root / image-set folder (detected by ``image_metadata.npy``).
    reconstructions : path-like, optional
        Folder of reconstructions. If it holds a ``manifest.jsonl`` and ``manifest`` is None, that
        manifest is used.
    manifest : path-like, optional
        An explicit manifest; overrides name matching.
    match_by : {"path", "stem"}
        Name-matching key for plain ground-truth folders (a THINGS-EEG2 root always uses concept names).
    allow_missing : bool
        Score only trials that have reconstructions instead of failing on the others.

    Returns
    -------
    PairedSet
    """
    ground_truth = Path(ground_truth)
    if reconstructions is None and manifest is None:
        raise TtdnetError("pass --reconstructions DIR or --manifest FILE.")
    if manifest is None and reconstructions is not None and (Path(reconstructions) / MANIFEST_NAME).is_file():
        manifest = Path(reconstructions) / MANIFEST_NAME
    if is_things_root(ground_truth):
        gt, gt_root = ground_truth_from_things(ground_truth)
        source = {
            "ground_truth": str(ground_truth),
            "ground_truth_kind": "things-eeg2 test_images",
            "trial_id": "test concept folder name",
        }
    else:
        gt, gt_root = ground_truth_from_folder(ground_truth, match_by), ground_truth
        source = {"ground_truth": str(ground_truth), "ground_truth_kind": "folder", "trial_id": f"key ({match_by})"}
    if manifest is not None:
        source.update(
            mode="manifest", manifest=str(manifest), reconstructions=str(reconstructions) if reconstructions else None
        )
        return _refuse_self_pairs(pair_by_manifest(manifest, gt_root, gt, allow_missing, source))
    source.update(
        mode="name",
        reconstructions=str(reconstructions),
        naming_rule="<key>.<ext> or <key>_s<k>.<ext>",
        match_by=match_by,
    )
    return _refuse_self_pairs(
        pair_by_name(
            gt, reconstructions, "path" if source["ground_truth_kind"] != "folder" else match_by, allow_missing, source
        )
    )


def _refuse_self_pairs(pairs: PairedSet) -> PairedSet:
    """``pairs``, unless a reconstruction is its own ground-truth file (which would score perfectly)."""
    same = [
        str(gt) for row in pairs.rec_paths for rec, gt in zip(row, pairs.gt_paths) if rec.resolve() == gt.resolve()
    ]
    if same:
        raise TtdnetError(
            f"{_listing(same, 'reconstruction(s) are the ground-truth file itself')}; pass the folder (or "
            "manifest) of the reconstructions, not the ground truth."
        )
    return pairs
