"""The feature file of ``ttdnet features``: one safetensors file per backbone, written and read with checks.

Tensors:

* ``training``: float16 ``(n_training_images, n_layers, dim)``, rows in ``image_metadata.npy`` order;
* ``test``: float16 ``(n_test_images, n_layers, dim)``.

String metadata (safetensors ``__metadata__``; lists and dicts are JSON):

* ``format`` = ``"ttdnet-image-features"``, ``version`` = ``"1"``;
* ``training_paths``, ``test_paths``: image paths relative to the image-set folder, one per row
  (``training_images/00001_aardvark/aardvark_01b.jpg``);
* ``layer_names``: one name per layer; ``layer_dims``: each layer's true width (narrower layers are
  zero-padded to ``dim`` on the right);
* ``normalized``: ``"true"`` if the vectors were L2-normalised, else ``"false"`` (the normalisation state
  travels with the features and is checked on load);
* ``settings``: the extraction settings (backbone, weights, layers, pooling, preprocessing, ...), compared to
  decide whether a cache can be reused; ``provenance``: library versions (informative only).

Every row must be finite and hold more than one value over its layers' true widths (an all-zero or constant
row carries nothing about its image); both the writer and the reader refuse a file that breaks this, naming
the split and the first bad row.

Any program can write such a file (:func:`write_feature_file`, or ``safetensors.torch.save_file`` with the same
keys), and ``ttdnet train-retrieval --features FILE`` will use it.
"""

import dataclasses
import json
import os
from pathlib import Path

import torch

from ttdnet.errors import TtdnetError


FORMAT = "ttdnet-image-features"
VERSION = "1"
SPLITS = ("training", "test")
ROWS_PER_CHECK = 4096  # rows converted to float32 at a time by :func:`first_bad_row`


class FeatureFileError(TtdnetError):
    """A feature file is missing, malformed, or does not belong to the images it is used with."""


@dataclasses.dataclass
class FeatureFile:
    """Contents of a feature file.

    Attributes
    ----------
    features : dict of str to torch.Tensor
        ``"training"`` and ``"test"``: float16 ``(n_images, n_layers, dim)``.
    paths : dict of str to list of str
        Relative image path of every row, per split.
    layer_names : list of str
    layer_dims : list of int
    normalized : bool
    settings : dict
    provenance : dict
    path : pathlib.Path or None
    """

    features: dict[str, torch.Tensor]
    paths: dict[str, list[str]]
    layer_names: list[str]
    layer_dims: list[int]
    normalized: bool
    settings: dict
    provenance: dict = dataclasses.field(default_factory=dict)
    path: Path | None = None

    @property
    def n_layers(self) -> int:
        return len(self.layer_names)

    @property
    def dim(self) -> int:
        return int(self.features["training"].shape[2])

    def check_paths(self, split: str, expected: list[str]) -> None:
        """Raise :class:`FeatureFileError` unless the rows of ``split`` are exactly the images ``expected``."""
        stored = self.paths[split]
        if stored == list(expected):
            return
        if len(stored) != len(expected):
            detail = f"{len(stored)} rows, the image set has {len(expected)} {split} images"
        else:
            first = next(i for i, (a, b) in enumerate(zip(stored, expected)) if a != b)
            detail = f"row {first} is {stored[first]!r}, the image set has {expected[first]!r}"
        raise FeatureFileError(
            f"{self.path}: the {split} features do not match image_metadata.npy ({detail}). Re-extract them with "
            "`ttdnet features` for this image set."
        )


def first_bad_row(features: torch.Tensor, layer_dims: list[int]) -> tuple[int, str] | None:
    """The first row that is not finite, all zeros or constant, with what is wrong with it.

    Parameters
    ----------
    features : torch.Tensor, shape (n_images, n_layers, dim)
    layer_dims : list of int
        Each layer's true width; the zero padding beyond it counts for finiteness only.

    Returns
    -------
    (int, str) or None
        The row index and a description (``"holds NaN or Inf values"``, ``"is all zeros"``, ``"is constant
        (every value is 0.5)"``), or None when every row is fine.
    """
    valid = torch.arange(features.shape[2]) < torch.tensor(layer_dims)[:, None]  # (n_layers, dim)
    for start in range(0, features.shape[0], ROWS_PER_CHECK):
        block = features[start : start + ROWS_PER_CHECK].float()
        finite = torch.isfinite(block).flatten(1).all(dim=1)
        high = torch.where(valid, block, -torch.inf).flatten(1).amax(dim=1)
        low = torch.where(valid, block, torch.inf).flatten(1).amin(dim=1)
        bad = (~finite | (high == low)).nonzero()
        if len(bad):
            row = int(bad[0])
            if not finite[row]:
                return start + row, "holds NaN or Inf values"
            if high[row] == 0:
                return start + row, "is all zeros"
            return start + row, f"is constant (every value is {float(high[row]):g})"
    return None


def write_feature_file(
    path: str | os.PathLike,
    features: dict[str, torch.Tensor],
    paths: dict[str, list[str]],
    layer_names: list[str],
    layer_dims: list[int],
    normalized: bool,
    settings: dict,
    provenance: dict | None = None,
) -> Path:
    """Write a feature file atomically (temporary file in the same folder, then rename).

    Parameters
    ----------
    path : path-like
    features : dict
        ``"training"`` and ``"test"`` tensors ``(n_images, n_layers, dim)`` (cast to float16; every row must stay
        finite and must not be all zeros or constant, see :func:`first_bad_row`).
    paths, layer_names, layer_dims, normalized, settings, provenance :
        See :class:`FeatureFile`.
    """
    from safetensors.torch import save

    from ttdnet.io import atomic_open

    if len(layer_dims) != len(layer_names):
        raise FeatureFileError(f"feature file {path}: {len(layer_dims)} layer_dims for {len(layer_names)} layers")
    tensors = {}
    for split in SPLITS:
        if split not in features:
            raise FeatureFileError(f"feature file {path}: no {split!r} features given")
        array = features[split]
        if array.ndim != 3 or array.shape[1] != len(layer_names):
            raise FeatureFileError(
                f"{split} features must be (n_images, n_layers={len(layer_names)}, dim), got {tuple(array.shape)}"
            )
        if array.shape[0] != len(paths[split]):
            raise FeatureFileError(f"{split}: {array.shape[0]} feature rows for {len(paths[split])} image paths")
        half = array.detach().to(torch.float16).contiguous().cpu()
        if not torch.isfinite(half).all():
            raise FeatureFileError(
                f"{split} features overflow float16 (|x| > 65504) or are not finite; pick other layers or L2-normalise"
            )
        bad = first_bad_row(half, layer_dims)
        if bad is not None:
            raise FeatureFileError(
                f"feature file {path}: {split} row {bad[0]} ({paths[split][bad[0]]}) {bad[1]}, so it carries nothing "
                "about its image; check the image and the chosen layers"
            )
        tensors[split] = half
    if tensors["training"].shape[1:] != tensors["test"].shape[1:]:
        raise FeatureFileError("training and test features must have the same (n_layers, dim)")
    metadata = {
        "format": FORMAT,
        "version": VERSION,
        "training_paths": json.dumps(list(paths["training"])),
        "test_paths": json.dumps(list(paths["test"])),
        "layer_names": json.dumps(list(layer_names)),
        "layer_dims": json.dumps([int(d) for d in layer_dims]),
        "normalized": "true" if normalized else "false",
        "settings": json.dumps(settings, sort_keys=True),
        "provenance": json.dumps(provenance or {}, sort_keys=True),
    }
    with atomic_open(path, "wb") as handle:
        handle.write(save(tensors, metadata=metadata))
    return Path(path)


def read_feature_file(path: str | os.PathLike, expect_normalized: bool | None = None) -> FeatureFile:
    """Read and validate a feature file.

    Parameters
    ----------
    path : path-like
    expect_normalized : bool, optional
        If given, the file's ``normalized`` flag must equal it.

    Raises
    ------
    FeatureFileError
        Missing file, wrong format, a dtype other than float16, inconsistent shapes, a row that is not finite,
        all zeros or constant (:func:`first_bad_row`), or a normalisation-state mismatch.
    """
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise FeatureFileError(
            f"feature file {path} not found; create it with `ttdnet features` (see docs/retrieval.md)"
        )
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            keys = set(handle.keys())
            features = {split: handle.get_tensor(split) for split in SPLITS if split in keys}
    except Exception as error:  # safetensors raises its own error types for corrupt headers
        raise FeatureFileError(f"{path} is not a readable safetensors file: {error}") from error
    if metadata.get("format") != FORMAT:
        raise FeatureFileError(f"{path}: metadata 'format' is {metadata.get('format')!r}, expected {FORMAT!r}")
    if metadata.get("version") != VERSION:
        raise FeatureFileError(
            f"{path}: feature-file version {metadata.get('version')!r}; this ttdnet reads {VERSION}"
        )
    missing = [split for split in SPLITS if split not in features]
    missing += [
        key
        for key in ("training_paths", "test_paths", "layer_names", "layer_dims", "normalized")
        if key not in metadata
    ]
    if missing:
        raise FeatureFileError(f"{path}: missing {missing} (see the format in docs/retrieval.md)")
    try:
        paths = {split: json.loads(metadata[f"{split}_paths"]) for split in SPLITS}
        layer_names = json.loads(metadata["layer_names"])
        layer_dims = json.loads(metadata["layer_dims"])
        settings = json.loads(metadata.get("settings", "{}"))
        provenance = json.loads(metadata.get("provenance", "{}"))
    except json.JSONDecodeError as error:
        raise FeatureFileError(f"{path}: a metadata entry is not valid JSON: {error}") from error
    normalized = metadata["normalized"]
    if normalized not in ("true", "false"):
        raise FeatureFileError(f"{path}: 'normalized' must be 'true' or 'false', got {normalized!r}")
    for split in SPLITS:
        array = features[split]
        if array.dtype != torch.float16:
            raise FeatureFileError(
                f"{path}: the {split} features are {str(array.dtype).removeprefix('torch.')}; the format stores "
                "float16 (save them with .half(), see docs/retrieval.md)"
            )
        if array.ndim != 3 or array.shape[1] != len(layer_names) or array.shape[0] != len(paths[split]):
            raise FeatureFileError(
                f"{path}: {split} features have shape {tuple(array.shape)}, expected ({len(paths[split])}, "
                f"{len(layer_names)}, dim) from its path and layer lists"
            )
    if features["training"].shape[2] != features["test"].shape[2]:
        raise FeatureFileError(f"{path}: training and test features differ in width")
    width = features["training"].shape[2]
    if len(layer_dims) != len(layer_names) or not all(isinstance(d, int) and 1 <= d <= width for d in layer_dims):
        raise FeatureFileError(
            f"{path}: layer_dims {layer_dims} do not fit {len(layer_names)} layers of width {width}"
        )
    for split in SPLITS:
        bad = first_bad_row(features[split], layer_dims)
        if bad is not None:
            row, problem = bad
            raise FeatureFileError(
                f"{path}: {split} row {row} ({paths[split][row]}) {problem}; every row must hold finite values "
                "that are not all equal: re-extract the features with `ttdnet features` or fix the program that "
                "wrote the file"
            )
    result = FeatureFile(
        features={split: features[split] for split in SPLITS},
        paths=paths,
        layer_names=list(layer_names),
        layer_dims=[int(d) for d in layer_dims],
        normalized=normalized == "true",
        settings=settings,
        provenance=provenance,
        path=path,
    )
    if expect_normalized is not None and result.normalized != expect_normalized:
        raise FeatureFileError(
            f"{path}: features are {'L2-normalised' if result.normalized else 'not normalised'}, but "
            f"{'normalised' if expect_normalized else 'unnormalised'} ones were asked for"
        )
    return result
