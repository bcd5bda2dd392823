"""Named InceptSAD configurations for the common THINGS-EEG2 inputs."""

from ttdnet.data.channels import NICE_63_CHANNELS, POSTERIOR_17_CHANNELS


def _chs(names) -> list[dict]:
    return [{"ch_name": name} for name in names]


ENCODER_PRESETS: dict[str, dict] = {
    # The official release: 17 occipito-parietal channels, 100 Hz, the whole -0.2 ... 0.79 s epoch.
    "things17": {
        "chs_info": _chs(POSTERIOR_17_CHANNELS),
        "n_times": 100,
        "sfreq": 100.0,
        "kernel_seconds": (0.03, 0.07, 0.15),
        "pool_sizes": (4, 2),
        "embed_dim": 256,
        "depth": 4,
        "num_heads": 8,
    },
    # The NICE/ATM format: 63 channels in NICE order, 250 Hz, 0.0 ... 0.996 s.
    "things63": {
        "chs_info": _chs(NICE_63_CHANNELS),
        "n_times": 250,
        "sfreq": 250.0,
        "kernel_seconds": (0.03, 0.07, 0.15),
        "pool_sizes": (5, 5),
        "embed_dim": 384,
        "depth": 6,
        "num_heads": 8,
    },
    # For tests: the official input shape with a very small network.
    "tiny": {
        "chs_info": _chs(POSTERIOR_17_CHANNELS),
        "n_times": 100,
        "sfreq": 100.0,
        "kernel_seconds": (0.03, 0.07),
        "n_filters_time": 2,
        "pool_sizes": (4, 5),
        "embed_dim": 16,
        "depth": 1,
        "num_heads": 2,
        "mlp_ratio": 2.0,
        "drop_prob": 0.0,
    },
}


def encoder_preset(name: str) -> dict:
    """Keyword arguments of :class:`ttdnet.models.InceptSADEncoder` for a named preset (a copy)."""
    if name not in ENCODER_PRESETS:
        raise KeyError(f"unknown encoder preset {name!r}; choose one of {sorted(ENCODER_PRESETS)}")
    return {key: (list(value) if isinstance(value, list) else value) for key, value in ENCODER_PRESETS[name].items()}
