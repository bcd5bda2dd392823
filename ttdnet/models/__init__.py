"""Models: EEG encoders (InceptSAD, EEGProject, NICE) and their registry, masked pretraining, the signal contract,
and the Stage B EEG conditioning of SDXL (Perceiver resampler, EEGConditioner, tiny SDXL presets)."""

from ttdnet.models.eeg_conditioner import ConditioningOutput, EEGConditioner, conditioning_dims
from ttdnet.models.eegproject import EEGProjectEncoder
from ttdnet.models.inceptsad import EncoderOutput, InceptSADEncoder
from ttdnet.models.masked_pretraining import MaskedTemporalPretraining, PretrainingOutput, contiguous_time_mask
from ttdnet.models.nice import NICEEncoder
from ttdnet.models.presets import ENCODER_PRESETS, encoder_preset
from ttdnet.models.registry import ENCODERS, RegisteredEncoder, build_encoder, embedding_dim, encode, encoder_names
from ttdnet.models.resampler import PerceiverResampler
from ttdnet.models.signal import SignalSpec, SignalSpecError


__all__ = [
    "ConditioningOutput",
    "EEGConditioner",
    "ENCODERS",
    "ENCODER_PRESETS",
    "EEGProjectEncoder",
    "EncoderOutput",
    "InceptSADEncoder",
    "MaskedTemporalPretraining",
    "NICEEncoder",
    "PerceiverResampler",
    "PretrainingOutput",
    "RegisteredEncoder",
    "SignalSpec",
    "SignalSpecError",
    "build_encoder",
    "conditioning_dims",
    "contiguous_time_mask",
    "embedding_dim",
    "encode",
    "encoder_names",
    "encoder_preset",
]
