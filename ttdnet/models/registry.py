"""Registry of EEG encoders for retrieval and other embedding tasks.

Every encoder follows the Stage A model contract: a diffusers ``ModelMixin``/``ConfigMixin`` (so
``save_pretrained``/``from_pretrained`` work), the signal parameters ``n_chans, n_times, sfreq, chs_info,
input_window_seconds`` resolved by :meth:`ttdnet.models.signal.SignalSpec.infer` into ``model.signal``, and
input ``(batch, n_chans, n_times)``; what the registry reads from an encoder is :class:`EEGEncoder`.
:func:`encode` turns any of them into one embedding ``(batch, D)`` (``D = embedding_dim(model)``).

Adding an encoder is one file (the model) and one line in :data:`ENCODERS`; the tests in
``tests/test_encoder_registry.py`` are parametrised over this dict, so a new entry is tested automatically.
"""

import dataclasses
import os
from typing import Protocol

import torch

from ttdnet.data.channels import POSTERIOR_17_CHANNELS
from ttdnet.errors import ConfigError, TtdnetError
from ttdnet.models.braindecode_adapter import BraindecodeEncoder
from ttdnet.models.eegproject import EEGProjectEncoder
from ttdnet.models.inceptsad import InceptSADEncoder
from ttdnet.models.nice import NICEEncoder
from ttdnet.models.presets import encoder_preset
from ttdnet.models.signal import SignalSpec
from ttdnet.models.spatiotemporal import SpatioTemporalEncoder


class EEGEncoder(Protocol):
    """What the registry reads from an encoder, besides the constructor and ``save_pretrained``.

    Attributes
    ----------
    signal : SignalSpec
        The signal contract the encoder was built for.
    embedding_dim : int
        Width ``D`` of one embedding.

    Notes
    -----
    ``forward(x)`` maps ``(batch, n_chans, n_times)`` to the embeddings ``(batch, D)``. Three members are
    optional, for encoders that need them; the registry looks them up on the class:

    - ``embed(x) -> (batch, D)``: the embeddings, when ``forward`` returns more (InceptSAD returns tokens and
      their mean; ``embed`` gives the mean);
    - ``n_tokens : int``: the length of the token sequence of an encoder that returns one (the Stage B bridge
      needs it, see :func:`token_count`);
    - classmethod ``from_encoder_folder(folder, signal, data_source, **defaults)``: the encoder from saved
      weights, checked against the data's ``signal`` (``defaults`` are the registry entry's architecture
      keyword arguments; see :func:`build_pretrained_encoder`).
    """

    signal: SignalSpec

    @property
    def embedding_dim(self) -> int: ...

    def __call__(self, x: torch.Tensor): ...


@dataclasses.dataclass(frozen=True)
class RegisteredEncoder:
    """One registry entry.

    Attributes
    ----------
    cls : type
        The model class (``ModelMixin``, ``ConfigMixin``), built as ``cls(**signal, **defaults, **overrides)``.
    summary : str
        One line for documentation and ``--help``.
    defaults : dict
        Architecture keyword arguments of the default configuration (beyond the signal contract).
    tiny : dict
        Architecture keyword arguments of a very small instance (tests, smoke runs).
    """

    cls: type
    summary: str
    defaults: dict = dataclasses.field(default_factory=dict)
    tiny: dict = dataclasses.field(default_factory=dict)


_INCEPTSAD_ARCH = {
    key: value for key, value in encoder_preset("things17").items() if key not in ("chs_info", "n_times", "sfreq")
}
_INCEPTSAD_TINY = {
    key: value for key, value in encoder_preset("tiny").items() if key not in ("chs_info", "n_times", "sfreq")
}


def _braindecode(model_name: str, **model_kwargs) -> dict:
    """Keyword arguments of a :class:`BraindecodeEncoder` registry entry."""
    return {"model_name": model_name, "model_kwargs": model_kwargs}


# braindecode architectures sized (in samples) for 1 s windows at 100 Hz, the official release; they also run on
# 63 channels at 250 Hz. EEGConformer keeps the spans of its published 250 Hz kernel and pool (0.1 s, 0.3 s,
# stride 0.06 s): 11 tokens per window instead of 1. ATCNet keeps its 0.25 s first kernel; pools of 4 and 2 keep
# braindecode from shrinking the architecture for windows of at least 88 samples.
_ATCNET_ARCH = {"conv_block_kernel_length_1": 25, "conv_block_pool_size_1": 4, "conv_block_pool_size_2": 2}
_EEGCONFORMER_ARCH = {"filter_time_length": 10, "pool_time_length": 30, "pool_time_stride": 6}
# The head is removed, so its kind does not change the features; braindecode deprecates the default (False).
_EEGNET_HEAD = {"final_layer_with_constraint": True}

ENCODERS: dict[str, RegisteredEncoder] = {
    "eegproject": RegisteredEncoder(
        EEGProjectEncoder, "SUPA-EEG MLP: flatten -> linear -> residual GELU block -> LayerNorm",
        {"hidden_dim": 1024, "drop_prob": 0.3}, {"hidden_dim": 32, "drop_prob": 0.1},
    ),
    "nice": RegisteredEncoder(
        NICEEncoder, "NICE temporal-spatial convolution (TSConv) + residual projection",
        {"n_filters": 40, "embed_dim": 768}, {"n_filters": 4, "embed_dim": 16},
    ),
    "spatiotemporal": RegisteredEncoder(
        SpatioTemporalEncoder, "bilinear spatial-then-temporal filters -> dropout -> linear (linear in the EEG)",
        {"n_temporal": 16, "embed_dim": 512, "drop_prob": 0.1}, {"n_spatial": 4, "n_temporal": 4, "embed_dim": 16},
    ),
    "inceptsad": RegisteredEncoder(
        InceptSADEncoder, "Stage A InceptSAD encoder (pooled tokens); can start from a Stage A save_pretrained folder",
        _INCEPTSAD_ARCH, _INCEPTSAD_TINY,
    ),
    "braindecode-eegnet": RegisteredEncoder(
        BraindecodeEncoder, "braindecode EEGNet (compact depthwise-separable CNN); features: the classifier's input",
        _braindecode("EEGNet", **_EEGNET_HEAD),
        _braindecode("EEGNet", **_EEGNET_HEAD, F1=2, D=1, kernel_length=8, depthwise_kernel_length=4),
    ),
    "braindecode-atcnet": RegisteredEncoder(
        BraindecodeEncoder, "braindecode ATCNet (CNN + attention + TCN over sliding windows); features: window mean",
        _braindecode("ATCNet", **_ATCNET_ARCH),
        _braindecode(
            "ATCNet", conv_block_n_filters=4, conv_block_kernel_length_1=8, conv_block_kernel_length_2=4,
            conv_block_pool_size_1=2, conv_block_pool_size_2=2, n_windows=2, head_dim=4, num_heads=1, tcn_depth=1,
        ),
    ),
    "braindecode-eegconformer": RegisteredEncoder(
        BraindecodeEncoder, "braindecode EEGConformer (conv patches + transformer); features: the classifier's input",
        _braindecode("EEGConformer", **_EEGCONFORMER_ARCH),
        _braindecode("EEGConformer", **_EEGCONFORMER_ARCH, n_filters_time=4, num_layers=1, num_heads=1),
    ),
    "braindecode-eegpt": RegisteredEncoder(
        BraindecodeEncoder, "braindecode EEGPT (pretrainable transformer, channels embedded by name); summary tokens",
        _braindecode("EEGPT", chan_proj_type="none"),
        _braindecode(
            "EEGPT", chan_proj_type="none", patch_size=16, patch_stride=8, embed_num=1, embed_dim=8, depth=1,
            num_heads=2, mlp_ratio=2.0,
        ),
    ),
}  # fmt: skip


def encoder_names() -> list[str]:
    """Names of the registered encoders."""
    return sorted(ENCODERS)


def get_encoder_class(name: str) -> type:
    """The class registered under ``name`` (``KeyError`` naming the choices otherwise)."""
    if name not in ENCODERS:
        raise KeyError(f"unknown EEG encoder {name!r}; registered: {encoder_names()}")
    return ENCODERS[name].cls


def build_encoder(name: str, signal: dict, size: str = "default", **overrides):
    """Build a registered encoder.

    Parameters
    ----------
    name : str
        Registry key (see :func:`encoder_names`).
    signal : dict
        Signal-contract keyword arguments (``chs_info``/``n_chans``, ``n_times``, ``sfreq``, ...).
    size : {"default", "tiny"}
        Which architecture keyword arguments to start from.
    **overrides
        Architecture keyword arguments that replace the chosen ones.

    Returns
    -------
    torch.nn.Module
    """
    entry = ENCODERS.get(name)
    if entry is None:
        raise KeyError(f"unknown EEG encoder {name!r}; registered: {encoder_names()}")
    if size not in ("default", "tiny"):
        raise ConfigError(f"size must be 'default' or 'tiny', got {size!r}")
    kwargs = dict(entry.defaults if size == "default" else entry.tiny)
    kwargs.update(overrides)
    return entry.cls(**signal, **kwargs)


def pretrained_encoder_names() -> list[str]:
    """Names of the registered encoders that can start from saved weights (``from_encoder_folder``)."""
    return [name for name in encoder_names() if hasattr(ENCODERS[name].cls, "from_encoder_folder")]


def build_pretrained_encoder(name: str, folder: str | os.PathLike, signal: dict, data_source: str):
    """A registered encoder that starts from saved weights in a local folder.

    Parameters
    ----------
    name : str
        Registry key of an encoder with ``from_encoder_folder`` (see :func:`pretrained_encoder_names`).
    folder : path-like
        The saved weights, in the format of the encoder's class (``save_pretrained`` output).
    signal : dict
        Signal-contract keyword arguments of the data.
    data_source : str
        What the data is, for the message of a mismatch.

    Returns
    -------
    torch.nn.Module

    Raises
    ------
    KeyError
        ``name`` is not registered.
    TtdnetError
        The encoder cannot start from saved weights, or the folder does not fit (see its class).
    """
    entry = ENCODERS.get(name)
    if entry is None:
        raise KeyError(f"unknown EEG encoder {name!r}; registered: {encoder_names()}")
    load = getattr(entry.cls, "from_encoder_folder", None)
    if load is None:
        raise TtdnetError(f"encoder {name!r} cannot start from saved weights; these can: {pretrained_encoder_names()}")
    return load(folder, signal, data_source, **entry.defaults)


def build_pretrained_braindecode_encoder(name: str, folder, signal: dict) -> BraindecodeEncoder:
    """A registered braindecode encoder that starts from braindecode weights in a local folder.

    Parameters
    ----------
    name : str
        A registry key whose class is :class:`BraindecodeEncoder` (``braindecode-eegpt``, ...).
    folder : path-like
        braindecode ``save_pretrained`` output (``config.json``, ``model.safetensors``); its ``config.json``
        gives the architecture (see :meth:`BraindecodeEncoder.from_braindecode_pretrained`).
    signal : dict
        Signal-contract keyword arguments of the data.

    Returns
    -------
    BraindecodeEncoder
    """
    entry = ENCODERS.get(name)
    if entry is None or entry.cls is not BraindecodeEncoder:
        braindecode_names = [key for key, value in ENCODERS.items() if value.cls is BraindecodeEncoder]
        raise TtdnetError(f"encoder {name!r} does not load braindecode weights; use one of {braindecode_names}")
    return build_pretrained_encoder(name, folder, signal, "the data")


def embedding_dim(encoder: EEGEncoder) -> int:
    """Width ``D`` of :func:`encode`'s output for ``encoder``."""
    return int(encoder.embedding_dim)


def token_count(encoder: EEGEncoder) -> int:
    """Number of tokens an encoder returns per window (for the Stage B resampler).

    Raises
    ------
    ConfigError
        The encoder returns one vector per window, not a token sequence.
    """
    n_tokens = getattr(encoder, "n_tokens", None)
    if n_tokens is None:
        raise ConfigError(
            f"the {type(encoder).__name__} encoder returns one vector per window; the SDXL bridge needs a token "
            "sequence: use the inceptsad encoder (a Stage A encoder folder or a preset)"
        )
    return int(n_tokens)


def encode(encoder: EEGEncoder, x: torch.Tensor) -> torch.Tensor:
    """One embedding per window.

    Parameters
    ----------
    encoder : EEGEncoder
    x : torch.Tensor, shape (batch, n_chans, n_times)

    Returns
    -------
    torch.Tensor, shape (batch, embedding_dim(encoder))
        The encoder's ``embed(x)`` where its class defines one, else its output.
    """
    if hasattr(type(encoder), "embed"):
        return encoder.embed(x)
    return encoder(x)


DEFAULT_SIGNAL = {"chs_info": [{"ch_name": name} for name in POSTERIOR_17_CHANNELS], "n_times": 100, "sfreq": 100.0}
"""The official THINGS-EEG2 release: 17 posterior channels, 100 samples at 100 Hz."""
