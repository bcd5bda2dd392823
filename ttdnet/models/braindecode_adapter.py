"""braindecode models as registry encoders: one adapter from the signal contract to braindecode's constructor.

:class:`BraindecodeEncoder` builds any ``braindecode.models`` class by name from ``n_chans, n_times, sfreq,
chs_info`` (resolved by :class:`ttdnet.models.signal.SignalSpec`) and returns one feature vector per window:

- models whose ``forward`` takes ``return_features`` (EEGPT, Labram, ...): ``forward(x, return_features=True)
  ["features"]`` flattened, e.g. EEGPT's summary tokens ``(B, n_patches, embed_num · embed_dim)`` ->
  ``(B, n_patches · embed_num · embed_dim)``;
- the others (EEGNet, ATCNet, EEGConformer, ...): the input of the classification layer ``final_layer``,
  flattened. ``final_layer`` is replaced by ``nn.Identity`` (each entry, when it is a ``ModuleList`` such as
  ATCNet's per-window heads, which ATCNet then averages over its windows).

The classification head is removed in both cases, so every parameter receives a gradient. braindecode is an
optional dependency (``pip install 'ttdnet[braindecode]'``); this module imports it only when a model is built.
"""

import inspect
import json
import os
import warnings
from pathlib import Path

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from ttdnet.errors import ConfigError, TtdnetError
from ttdnet.models.signal import SignalSpec


INSTALL_HINT = "pip install 'ttdnet[braindecode]'"

HEAD_OUTPUTS = 2
"""``n_outputs`` given to braindecode constructors: they build a classification head, which the adapter removes."""

SIGNAL_KEYS = ("n_outputs", "n_chans", "n_times", "sfreq", "input_window_seconds", "chs_info", "braindecode_version")
"""Keys of a braindecode ``config.json`` that describe the signal or the head, not the architecture."""

PRETRAINING_ONLY_PREFIXES = {"EEGPT": ("predictor.", "reconstructor.")}
"""Checkpoint weights used only by a model's self-supervised pretraining (EEGPT's masked-autoencoder parts)."""

CHANNEL_DERIVED_BUFFERS = {"EEGPT": ("chans_id",)}
"""Buffers computed from the channel names at construction; a checkpoint's values are never loaded."""


def braindecode_model_class(name: str) -> type:
    """The ``braindecode.models`` class called ``name``.

    Raises
    ------
    TtdnetError
        braindecode is not installed.
    ConfigError
        ``name`` is not a braindecode model.
    """
    try:
        with warnings.catch_warnings():  # deprecation notices of braindecode's and wfdb's own import-time code
            warnings.filterwarnings("ignore", message="Montage name .* is deprecated", category=FutureWarning)
            warnings.filterwarnings("ignore", message="The inplace keyword", module=r"wfdb\.")
            import braindecode.models as models
    except ImportError:
        raise TtdnetError(f"the braindecode encoders need the braindecode package: {INSTALL_HINT}") from None
    model_class = getattr(models, name, None)
    if not (isinstance(model_class, type) and issubclass(model_class, models.EEGModuleMixin)):
        choices = sorted(
            n for n, c in vars(models).items() if isinstance(c, type) and issubclass(c, models.EEGModuleMixin)
        )
        raise ConfigError(f"model_name={name!r} is not a braindecode model; choose one of {choices}")
    return model_class


def check_eegpt_channels(ch_names: tuple[str, ...] | None) -> None:
    """Raise a :class:`ConfigError` unless every channel has a pretrained EEGPT channel embedding.

    With ``chan_proj_type='none'`` EEGPT looks each name up in its vocabulary (case-insensitive, dots stripped)
    and would give an unknown channel the id of its input position, which belongs to another electrode.

    Parameters
    ----------
    ch_names : tuple of str or None
        Channel names in input order (None: only a count is known).
    """
    from braindecode.models.eegpt import CHANNEL_DICT

    if ch_names is None:
        raise ConfigError(
            "EEGPT with chan_proj_type='none' embeds channels by name: give chs_info (channel names), not only n_chans"
        )
    unknown = [name for name in ch_names if name.upper().strip(".") not in CHANNEL_DICT]
    if unknown:
        raise ConfigError(
            f"EEGPT has no channel embedding for {unknown}: drop them or pick known channels with --channels "
            f"(EEGPT knows {len(CHANNEL_DICT)} 10-10 names, e.g. Fp1, Cz, POz), or use "
            "chan_proj_type='conv1d_constraint'"
        )


class BraindecodeEncoder(ModelMixin, ConfigMixin):
    """A braindecode model as an EEG encoder: ``(batch, n_chans, n_times)`` -> ``(batch, embedding_dim)``.

    Parameters
    ----------
    n_chans, n_times, sfreq, chs_info, input_window_seconds :
        The signal contract (see :class:`ttdnet.models.signal.SignalSpec`), passed to braindecode.
    model_name : str
        A ``braindecode.models`` class name (``"EEGNet"``, ``"ATCNet"``, ``"EEGConformer"``, ``"EEGPT"``, ...).
    model_kwargs : dict, optional
        Architecture keyword arguments of that class (JSON values; ``type`` arguments such as ``activation`` as
        dotted import paths, as in braindecode's ``config.json``). Not the signal parameters nor ``n_outputs``.

    Attributes
    ----------
    model : braindecode.models.EEGModuleMixin
        The wrapped model, its classification head removed.
    uses_return_features : bool
        Whether the features come from ``forward(x, return_features=True)`` (else from the head's input).
    """

    @register_to_config
    def __init__(
        self,
        n_chans: int | None = None,
        n_times: int | None = None,
        sfreq: float | None = None,
        chs_info: list[dict] | None = None,
        input_window_seconds: float | None = None,
        model_name: str = "EEGNet",
        model_kwargs: dict | None = None,
    ):
        super().__init__()
        self.signal = SignalSpec.infer(n_chans, n_times, sfreq, chs_info, input_window_seconds)
        model_kwargs = dict(model_kwargs or {})
        reserved = sorted(set(model_kwargs) & set(SIGNAL_KEYS))
        if reserved:
            raise ConfigError(
                f"model_kwargs may not set {reserved}: the signal comes from the data and the head is removed"
            )
        try:
            json.dumps(model_kwargs)
        except TypeError as error:
            raise ConfigError(f"model_kwargs must hold JSON values (save_pretrained writes them): {error}") from None
        model_class = braindecode_model_class(model_name)
        if model_class.__name__ == "EEGPT":
            chan_proj_type = model_kwargs.get(
                "chan_proj_type", inspect.signature(model_class).parameters["chan_proj_type"].default
            )
            if chan_proj_type == "none":
                check_eegpt_channels(self.signal.ch_names)
        from braindecode.models.util import resolve_type_kwargs

        resolve_type_kwargs(model_class, model_kwargs)
        try:
            self.model = model_class(
                n_outputs=HEAD_OUTPUTS,
                n_chans=self.signal.n_chans,
                chs_info=chs_info,
                n_times=self.signal.n_times,
                sfreq=self.signal.sfreq,
                **model_kwargs,
            )
        except (TypeError, ValueError, RuntimeError) as error:
            raise ConfigError(
                f"braindecode {model_name} with model_kwargs={model_kwargs} cannot be built for {self.signal.n_chans} "
                f"channels x {self.signal.n_times} samples at {self.signal.sfreq:g} Hz: {error}"
            ) from error
        self.uses_return_features = "return_features" in inspect.signature(self.model.forward).parameters
        head = getattr(self.model, "final_layer", None)
        if isinstance(head, nn.ModuleList):
            self.model.final_layer = nn.ModuleList([nn.Identity() for _ in head])
        elif isinstance(head, nn.Module):
            self.model.final_layer = nn.Identity()
        elif not self.uses_return_features:
            raise ConfigError(
                f"braindecode {model_name} has neither forward(return_features=True) nor a final_layer, so its "
                "features cannot be taken; choose another model_name"
            )
        self._embedding_dim = None

    @property
    def embedding_dim(self) -> int:
        """Width of the returned embedding (found with one forward pass of zeros in eval mode, then cached)."""
        if self._embedding_dim is None:
            modes = [(module, module.training) for module in self.modules()]
            parameter = next(self.parameters())
            self.eval()
            try:
                with torch.no_grad():
                    zeros = torch.zeros(
                        1, self.signal.n_chans, self.signal.n_times, device=parameter.device, dtype=parameter.dtype
                    )
                    self._embedding_dim = int(self(zeros).shape[1])
            finally:
                for module, mode in modes:
                    module.training = mode
        return self._embedding_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Encode EEG.

        Parameters
        ----------
        x : torch.Tensor, shape (batch, n_chans, n_times)

        Returns
        -------
        torch.Tensor, shape (batch, embedding_dim)
        """
        self.signal.check_batch(x, f"{type(self).__name__}({self.config.model_name})")
        if self.uses_return_features:
            return self.model(x, return_features=True)["features"].flatten(1)
        return self.model(x).flatten(1)

    @classmethod
    def from_pretrained(cls, *args, **kwargs) -> "BraindecodeEncoder":
        """diffusers' ``from_pretrained`` of a folder this class saved, always built on real tensors.

        braindecode constructors run a forward pass to size their layers, which fails on the empty ("meta")
        weights diffusers uses with ``low_cpu_mem_usage=True``; the weights are loaded after construction.
        """
        if kwargs.pop("low_cpu_mem_usage", False):
            raise ConfigError("BraindecodeEncoder.from_pretrained does not support low_cpu_mem_usage=True")
        return super().from_pretrained(*args, low_cpu_mem_usage=False, **kwargs)

    @classmethod
    def from_encoder_folder(
        cls, folder: str | os.PathLike, signal: dict, data_source: str, model_name: str, **defaults
    ) -> "BraindecodeEncoder":
        """A registry encoder from braindecode weights (:meth:`from_braindecode_pretrained` for ``model_name``).

        Parameters
        ----------
        folder : path-like
            braindecode ``save_pretrained`` output; its ``config.json`` gives the architecture.
        signal : dict
            Signal-contract keyword arguments of the data.
        data_source : str
            What the data is (unused: the encoder is built for ``signal``, so it always fits).
        model_name : str
            The registry entry's braindecode class name.
        **defaults
            The entry's other architecture keyword arguments (ignored).
        """
        return cls.from_braindecode_pretrained(folder, model_name, **signal)

    @classmethod
    def from_braindecode_pretrained(
        cls,
        folder: str | os.PathLike,
        model_name: str,
        n_chans: int | None = None,
        n_times: int | None = None,
        sfreq: float | None = None,
        chs_info: list[dict] | None = None,
        input_window_seconds: float | None = None,
        **model_kwargs,
    ) -> "BraindecodeEncoder":
        """An encoder for this signal that starts from braindecode weights in a local folder.

        The folder is what braindecode's ``save_pretrained`` (Hugging Face hub mixin) writes: ``config.json``
        (the model's ``__init__`` arguments) and ``model.safetensors``. The architecture comes from
        ``config.json`` (``model_kwargs`` replace single values), the signal from the arguments. Every weight of
        the encoder must be in the file; the file may also hold the removed classification head
        (``final_layer.*``) and, for EEGPT, the pretraining-only ``predictor.*``/``reconstructor.*`` weights.
        Buffers derived from the channel names (EEGPT's ``chans_id``) are computed for this signal.

        Parameters
        ----------
        folder : path-like
        model_name : str
            The braindecode class the weights belong to (the config does not name it).
        n_chans, n_times, sfreq, chs_info, input_window_seconds :
            The signal contract of the data.
        **model_kwargs
            Architecture keyword arguments that replace the folder's values.

        Raises
        ------
        TtdnetError
            A file is missing, the weights do not fit the architecture, a weight is missing or unknown, or
            ``config.json`` records a sampling rate other than the data's.
        """
        folder = Path(folder)
        config_file, weights_file = folder / "config.json", folder / "model.safetensors"
        for file in (config_file, weights_file):
            if not file.is_file():
                raise TtdnetError(
                    f"{folder} is not a braindecode save_pretrained folder: {file.name} is missing "
                    "(it needs config.json and model.safetensors)"
                )
        try:
            saved = json.loads(config_file.read_text(encoding="utf-8"))
        except json.JSONDecodeError as error:
            raise TtdnetError(f"{config_file} is not valid JSON: {error}") from None
        architecture = {key: value for key, value in saved.items() if key not in SIGNAL_KEYS}
        architecture.update(model_kwargs)
        encoder = cls(
            n_chans=n_chans,
            n_times=n_times,
            sfreq=sfreq,
            chs_info=chs_info,
            input_window_seconds=input_window_seconds,
            model_name=model_name,
            model_kwargs=architecture,
        )
        saved_sfreq = saved.get("sfreq")
        if saved_sfreq is not None and abs(float(saved_sfreq) - encoder.signal.sfreq) > 1e-6 * encoder.signal.sfreq:
            raise TtdnetError(
                f"{config_file} records sfreq={saved_sfreq:g} Hz, the data is at {encoder.signal.sfreq:g} Hz: "
                f"resample the data to {saved_sfreq:g} Hz (or remove sfreq from config.json if the weights do not "
                "depend on the rate)"
            )
        from safetensors.torch import load_file

        encoder.load_braindecode_weights(load_file(str(weights_file)), str(weights_file))
        return encoder

    def load_braindecode_weights(self, state: dict[str, torch.Tensor], source: str) -> None:
        """Load a braindecode state dict into :attr:`model`, refusing missing, unknown or misshapen weights.

        Parameters
        ----------
        state : dict of str to torch.Tensor
            The braindecode model's ``state_dict()`` (keys without this adapter's ``model.`` prefix).
        source : str
            Where it comes from, for messages.
        """
        name = type(self.model).__name__
        mapping = self.model.mapping or {}  # braindecode's renames of older checkpoint keys
        state = {mapping.get(key, key): value for key, value in state.items()}
        own = self.model.state_dict()
        derived = set(CHANNEL_DERIVED_BUFFERS.get(name, ()))
        ignorable = ("final_layer.", *PRETRAINING_ONLY_PREFIXES.get(name, ()))
        missing = sorted(set(own) - set(state) - derived)
        unknown = sorted(key for key in set(state) - set(own) if not key.startswith(ignorable))
        misshapen = [
            f"{key} {tuple(state[key].shape)} vs {tuple(own[key].shape)}"
            for key in sorted(set(state) & set(own) - derived)
            if state[key].shape != own[key].shape
        ]
        found = (("missing", missing), ("unknown", unknown), ("wrong shape (file vs model)", misshapen))
        problems = [f"{label} {items[:5]}{' ...' if len(items) > 5 else ''}" for label, items in found if items]
        if problems:
            raise TtdnetError(
                f"{source} does not fit braindecode {name} built from its config.json for this signal "
                f"({self.signal.n_chans} channels, {self.signal.n_times} samples): " + "; ".join(problems) + ". "
                "Use the weights' own architecture and channel count, or fix config.json."
            )
        loadable = {key: value for key, value in state.items() if key in own and key not in derived}
        loadable.update({key: own[key] for key in derived})
        self.model.load_state_dict(loadable, strict=True)
