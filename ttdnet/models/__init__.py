"""Models: EEG encoders (InceptSAD, EEGProject, NICE) and their registry, masked pretraining, the signal contract."""

from ttdnet.models.eegproject import EEGProjectEncoder
from ttdnet.models.inceptsad import EncoderOutput, InceptSADEncoder
from ttdnet.models.masked_pretraining import MaskedTemporalPretraining, PretrainingOutput, contiguous_time_mask
from ttdnet.models.nice import NICEEncoder
from ttdnet.models.presets import ENCODER_PRESETS, encoder_preset
from ttdnet.models.registry import ENCODERS, RegisteredEncoder, build_encoder, embedding_dim, encode, encoder_names
from ttdnet.models.signal import SignalSpec, SignalSpecError


__all__ = [
    "ENCODERS",
    "ENCODER_PRESETS",
    "EEGProjectEncoder",
    "EncoderOutput",
    "InceptSADEncoder",
    "MaskedTemporalPretraining",
    "NICEEncoder",
    "PretrainingOutput",
    "RegisteredEncoder",
    "SignalSpec",
    "SignalSpecError",
    "build_encoder",
    "contiguous_time_mask",
    "embedding_dim",
    "encode",
    "encoder_names",
    "encoder_preset",
]
