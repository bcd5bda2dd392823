"""Save and load a :class:`~ttdnet.stages.retrieval_model.RetrievalModel` as ``config.json`` + ``model.safetensors``.

``config.json`` holds the model's constructor arguments (``"model"``, the encoder's own config included) and
the run's provenance (``"provenance"``); ``model.safetensors`` holds every parameter and buffer, the feature
standardisation statistics among them. Nothing is pickled. The folder is written next to its destination
and renamed into place, so a reader never sees a half-written model.
"""

import json
import os
from pathlib import Path

from safetensors.torch import load_file, save_file

from ttdnet.errors import TtdnetError
from ttdnet.io import atomic_directory, atomic_write_json
from ttdnet.stages.retrieval_model import RetrievalModel, build_retrieval_model


def save_retrieval_model(model: RetrievalModel, path: str | os.PathLike, extra: dict | None = None) -> Path:
    """Write ``path/config.json`` and ``path/model.safetensors`` into a temporary folder, then rename (atomic).

    Parameters
    ----------
    model : RetrievalModel
    path : path-like
        Destination folder (replaced if it exists).
    extra : dict, optional
        JSON-ready provenance stored under ``"provenance"`` in ``config.json`` (feature file, settings, ...).
    """
    path = Path(path)
    state = {key: value.detach().cpu().contiguous() for key, value in model.state_dict().items()}
    with atomic_directory(path) as temporary:
        save_file(state, str(temporary / "model.safetensors"))
        atomic_write_json(temporary / "config.json", {"model": model.config, "provenance": extra or {}})
    return path


def load_retrieval_model(path: str | os.PathLike) -> tuple[RetrievalModel, dict]:
    """Load a model written by :func:`save_retrieval_model`; returns ``(model in eval mode, provenance)``."""
    path = Path(path)
    config_file, weights_file = path / "config.json", path / "model.safetensors"
    if not config_file.is_file() or not weights_file.is_file():
        raise TtdnetError(f"{path} is not a saved retrieval model (needs config.json and model.safetensors)")
    stored = json.loads(config_file.read_text(encoding="utf-8"))
    model = build_retrieval_model(stored["model"])
    model.load_state_dict(load_file(str(weights_file)), strict=True)
    return model.eval(), stored.get("provenance", {})
