"""The contrastive EEG-to-image retrieval model and its subject-aware layer router.

The losses and the MMD weight schedule are in :mod:`ttdnet.stages.contrastive`, the augmentation
in :mod:`ttdnet.stages.retrieval_augment`, saving and loading in :mod:`ttdnet.stages.retrieval_persistence`.
The design follows SUPA-EEG / SAMGA (``docs/retrieval.md``, "Model, loss, router"), with these differences:

* **Router.** ``weights = softmax((g + m_s·b[subject]) masked / T)`` over the cached feature layers; ``g`` is a
  global prior, ``b`` a per-subject bias, ``m_s`` a per-sample Bernoulli keep of the bias (subject dropout).
  Layer dropout **masks logits with −inf** (SUPA-EEG multiplies them by 0, which raises a negative logit's
  weight); a sample whose layers would all be dropped keeps all of them. In ``eval()`` mode, or without
  subject ids, the weights are ``softmax(g / T)``: the global prior only, the same for every query, so the
  test gallery never depends on the test subject.
* **Temperature.** ``logit_scale`` is a parameter of the model, so the optimizer updates it; with
  ``learn_temperature=False`` it is a fixed buffer and that is recorded in the config.
* **Feature standardisation.** Cached features are standardised per layer and dimension with statistics of
  the *training-split* images (stored as buffers with the weights), so backbones of any scale train alike.
"""

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from ttdnet.errors import ConfigError, TtdnetError
from ttdnet.models.registry import ENCODERS, embedding_dim, encode


LayerMode = Literal["router", "single", "uniform", "concat"]


class SubjectAwareRouter(nn.Module):
    """Softmax weights over feature layers: a global prior plus a per-subject bias during training.

    Parameters
    ----------
    n_layers : int
    n_subjects : int
        Rows of the per-subject bias table (subject indices run from 0 to ``n_subjects − 1``).
    init_logits : list of float, optional
        Initial global prior ``g`` (default zeros: uniform weights). SUPA-EEG uses ``[−2, −1, 0, −1, −2]``.
    subject_dropout : float
        Probability of dropping a sample's subject bias during training (SUPA-EEG 0.3).
    layer_dropout : float
        Probability of dropping a layer for a sample during training (SUPA-EEG 0.1); dropped logits are −inf.
    temperature : float
        Softmax temperature ``T``.
    """

    def __init__(
        self,
        n_layers: int,
        n_subjects: int,
        init_logits: list[float] | None = None,
        subject_dropout: float = 0.3,
        layer_dropout: float = 0.1,
        temperature: float = 1.0,
    ):
        super().__init__()
        if init_logits is not None and len(init_logits) != n_layers:
            raise ConfigError(
                f"router_init_logits has {len(init_logits)} values for {n_layers} feature layers; give one per layer"
            )
        logits = torch.zeros(n_layers) if init_logits is None else torch.tensor(init_logits, dtype=torch.float32)
        self.global_logits = nn.Parameter(logits)
        self.subject_bias = nn.Embedding(max(n_subjects, 1), n_layers)
        nn.init.zeros_(self.subject_bias.weight)
        self.subject_dropout = subject_dropout
        self.layer_dropout = layer_dropout
        self.temperature = temperature

    def prior(self) -> torch.Tensor:
        """The global prior weights ``softmax(g / T)``, shape (n_layers,)."""
        return torch.softmax(self.global_logits / self.temperature, dim=-1)

    def forward(self, batch_size: int, subject_index: torch.Tensor | None = None) -> torch.Tensor:
        """Layer weights per sample.

        Parameters
        ----------
        batch_size : int
        subject_index : torch.Tensor of int64, shape (batch,), optional
            Training subject index of each sample; ignored in ``eval()`` mode.

        Returns
        -------
        torch.Tensor, shape (batch, n_layers)
            Rows sum to 1.
        """
        if not self.training or subject_index is None:
            return self.prior().expand(batch_size, -1)
        bias = self.subject_bias(subject_index)  # (B, L)
        keep_bias = (torch.rand(batch_size, 1, device=bias.device) >= self.subject_dropout).to(bias.dtype)
        logits = self.global_logits + keep_bias * bias
        if self.layer_dropout > 0:
            dropped = torch.rand_like(logits) < self.layer_dropout
            dropped &= ~dropped.all(dim=1, keepdim=True)  # never drop every layer of a sample
            logits = logits.masked_fill(dropped, float("-inf"))
        return torch.softmax(logits / self.temperature, dim=-1)


class RetrievalModel(nn.Module):
    """EEG and image towers projected into one L2-normalised space.

    EEG: ``encoder (B, C, T) -> (B, E)`` -> ``Linear(E -> proj_dim)`` [-> shared ``Linear(proj_dim -> proj_dim)``].
    Image: features ``(B, L, D)`` standardised -> layer weights ``(B, L)`` (router, one layer or uniform) ->
    ``Σ_l w_l F_l`` ``(B, D)``, or all layers side by side ``(B, L·D)`` (``concat``) ->
    ``Linear(-> image_hidden_dim)`` [-> GELU] -> ``Linear(-> proj_dim)`` (no nonlinearity by default, as
    SUPA-EEG) [-> the shared linear]. Both outputs are L2-normalised.

    Parameters
    ----------
    encoder : torch.nn.Module
        A registered EEG encoder (:mod:`ttdnet.models.registry`).
    encoder_name : str
        Its registry key (stored in the config so the model can be rebuilt from it, :func:`build_retrieval_model`).
    n_layers, feature_dim : int
        Shape of one image's cached features.
    n_subjects : int
        Rows of the router's subject-bias table.
    proj_dim, image_hidden_dim : int
    layer_mode : {"router", "single", "uniform", "concat"}
    single_layer : int
        Layer used when ``layer_mode="single"`` (negative counts from the end).
    router_init_logits, router_subject_dropout, router_layer_dropout, router_temperature :
        See :class:`SubjectAwareRouter`.
    image_activation : {"none", "gelu"}
        Nonlinearity between the image projector's two linear layers.
    shared_head : bool
        Apply one shared ``Linear(proj_dim -> proj_dim)`` to both towers (SUPA-EEG).
    learn_temperature : bool
        Learn ``logit_scale`` (in the optimizer) or keep it fixed.
    init_temperature : float
        Initial ``τ``; ``logit_scale = ln(1/τ)``.
    feature_mean, feature_std : torch.Tensor, shape (n_layers, feature_dim), optional
        Standardisation statistics (default 0 and 1).
    """

    def __init__(
        self,
        encoder: nn.Module,
        encoder_name: str,
        n_layers: int,
        feature_dim: int,
        n_subjects: int,
        proj_dim: int = 512,
        image_hidden_dim: int = 1024,
        layer_mode: LayerMode = "router",
        single_layer: int = -1,
        router_init_logits: list[float] | None = None,
        router_subject_dropout: float = 0.3,
        router_layer_dropout: float = 0.1,
        router_temperature: float = 1.0,
        image_activation: str = "none",
        shared_head: bool = True,
        learn_temperature: bool = True,
        init_temperature: float = 0.07,
        feature_mean: torch.Tensor | None = None,
        feature_std: torch.Tensor | None = None,
    ):
        super().__init__()
        if layer_mode not in ("router", "single", "uniform", "concat"):
            raise ConfigError(f"layer_mode must be router, single, uniform or concat, got {layer_mode!r}")
        if image_activation not in ("none", "gelu"):
            raise ConfigError(f"image_activation must be none or gelu, got {image_activation!r}")
        if not -n_layers <= single_layer < n_layers:
            raise ConfigError(
                f"single_layer={single_layer} is out of range for {n_layers} feature layers "
                f"(valid: {-n_layers} ... {n_layers - 1})"
            )
        self.config = {
            "encoder_name": encoder_name,
            "encoder_config": _plain(dict(encoder.config)),
            "n_layers": n_layers,
            "feature_dim": feature_dim,
            "n_subjects": n_subjects,
            "proj_dim": proj_dim,
            "image_hidden_dim": image_hidden_dim,
            "layer_mode": layer_mode,
            "single_layer": single_layer,
            "router_init_logits": router_init_logits,
            "router_subject_dropout": router_subject_dropout,
            "router_layer_dropout": router_layer_dropout,
            "router_temperature": router_temperature,
            "image_activation": image_activation,
            "shared_head": shared_head,
            "learn_temperature": learn_temperature,
            "init_temperature": init_temperature,
        }
        self.encoder = encoder
        self.eeg_projector = nn.Linear(embedding_dim(encoder), proj_dim)
        self.router = (
            SubjectAwareRouter(
                n_layers,
                n_subjects,
                router_init_logits,
                router_subject_dropout,
                router_layer_dropout,
                router_temperature,
            )
            if layer_mode == "router"
            else None
        )
        mixed_dim = n_layers * feature_dim if layer_mode == "concat" else feature_dim
        activation = [nn.GELU()] if image_activation == "gelu" else []  # none keeps the saved keys 0 and 1
        self.image_projector = nn.Sequential(
            nn.Linear(mixed_dim, image_hidden_dim), *activation, nn.Linear(image_hidden_dim, proj_dim)
        )
        self.shared = nn.Linear(proj_dim, proj_dim) if shared_head else nn.Identity()
        scale = torch.tensor(math.log(1.0 / init_temperature))
        if learn_temperature:
            self.logit_scale = nn.Parameter(scale)
        else:
            self.register_buffer("logit_scale", scale)
        self.register_buffer(
            "feature_mean", torch.zeros(n_layers, feature_dim) if feature_mean is None else feature_mean
        )
        self.register_buffer("feature_std", torch.ones(n_layers, feature_dim) if feature_std is None else feature_std)

    def layer_weights(self, batch_size: int, subject_index: torch.Tensor | None = None) -> torch.Tensor:
        """Weights over feature layers, shape (batch, n_layers)."""
        n_layers = self.config["n_layers"]
        if self.router is not None:
            return self.router(batch_size, subject_index)
        weights = torch.zeros(n_layers, device=self.feature_mean.device)
        if self.config["layer_mode"] == "single":
            weights[self.config["single_layer"]] = 1.0
        else:
            weights += 1.0 / n_layers
        return weights.expand(batch_size, -1)

    def encode_eeg(self, eeg: torch.Tensor) -> torch.Tensor:
        """``(B, n_chans, n_times)`` -> L2-normalised ``(B, proj_dim)``."""
        return F.normalize(self.shared(self.eeg_projector(encode(self.encoder, eeg))), dim=-1)

    def encode_image(self, features: torch.Tensor, subject_index: torch.Tensor | None = None) -> torch.Tensor:
        """Cached features ``(B, n_layers, feature_dim)`` -> L2-normalised ``(B, proj_dim)``.

        ``subject_index`` (B,) is used by the router in training mode only.
        """
        expected = (self.config["n_layers"], self.config["feature_dim"])
        if features.ndim != 3 or tuple(features.shape[1:]) != expected:
            raise ValueError(
                f"image features must be (batch, {expected[0]}, {expected[1]}), got {tuple(features.shape)}"
            )
        features = (features.float() - self.feature_mean) / self.feature_std
        if self.config["layer_mode"] == "concat":
            mixed = features.flatten(1)
        else:
            weights = self.layer_weights(features.shape[0], subject_index)
            mixed = torch.einsum("bl,bld->bd", weights.to(features.dtype), features)
        return F.normalize(self.shared(self.image_projector(mixed)), dim=-1)

    def forward(
        self, eeg: torch.Tensor, features: torch.Tensor, subject_index: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Both embeddings and the logit scale: ``(z_eeg (B, P), z_image (B, P), logit_scale ())``."""
        return self.encode_eeg(eeg), self.encode_image(features, subject_index), self.logit_scale


def _plain(value):
    """JSON-ready copy of a (diffusers FrozenDict) config: tuples to lists, private keys dropped."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items() if not str(k).startswith("_")}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def build_retrieval_model(config: dict, encoder: nn.Module | None = None) -> RetrievalModel:
    """Rebuild a :class:`RetrievalModel` from its ``config`` dict (the encoder from the registry unless given)."""
    config = dict(config)
    name = config.pop("encoder_name")
    encoder_config = config.pop("encoder_config")
    if encoder is None:
        if name not in ENCODERS:
            raise TtdnetError(
                f"the retrieval model uses encoder {name!r}, which is not registered ({sorted(ENCODERS)})"
            )
        encoder = ENCODERS[name].cls.from_config(encoder_config)
    return RetrievalModel(encoder, name, **config)
