"""Models: the InceptSAD EEG encoder, its masked pretraining wrapper, and the EEG signal contract."""

from ttdnet.models.inceptsad import EncoderOutput, InceptSADEncoder
from ttdnet.models.masked_pretraining import MaskedTemporalPretraining, PretrainingOutput, contiguous_time_mask
from ttdnet.models.presets import ENCODER_PRESETS, encoder_preset
from ttdnet.models.signal import SignalSpec, SignalSpecError


__all__ = [
    "ENCODER_PRESETS",
    "EncoderOutput",
    "InceptSADEncoder",
    "MaskedTemporalPretraining",
    "PretrainingOutput",
    "SignalSpec",
    "SignalSpecError",
    "contiguous_time_mask",
    "encoder_preset",
]
