"""Every registered EEG encoder gets the same contract tests (parametrised over the registry)."""

import pytest
import torch

from ttdnet.models import ENCODERS, SignalSpecError, build_encoder, embedding_dim, encode
from ttdnet.models.registry import DEFAULT_SIGNAL, get_encoder_class


NAMES = sorted(ENCODERS)


@pytest.mark.parametrize("name", NAMES)
def test_forward_shape_and_embedding_dim(name):
    torch.manual_seed(0)
    model = build_encoder(name, DEFAULT_SIGNAL, "tiny").eval()
    out = encode(model, torch.randn(3, 17, 100))
    assert out.shape == (3, embedding_dim(model)) and torch.isfinite(out).all()
    assert model.signal.ch_names == tuple(c["ch_name"] for c in DEFAULT_SIGNAL["chs_info"])


@pytest.mark.parametrize("name", NAMES)
def test_save_pretrained_round_trip(name, tmp_path):
    torch.manual_seed(0)
    model = build_encoder(name, DEFAULT_SIGNAL, "tiny").eval()
    model.save_pretrained(tmp_path / name)
    loaded = get_encoder_class(name).from_pretrained(tmp_path / name).eval()
    x = torch.randn(2, 17, 100)
    torch.testing.assert_close(encode(loaded, x), encode(model, x), rtol=0, atol=0)
    assert loaded.signal == model.signal


@pytest.mark.parametrize("name", NAMES)
def test_wrong_input_shape_is_a_clear_error(name):
    model = build_encoder(name, DEFAULT_SIGNAL, "tiny")
    with pytest.raises(SignalSpecError, match="n_chans=17, n_times=100"):
        encode(model, torch.randn(2, 16, 100))
    with pytest.raises(SignalSpecError):
        encode(model, torch.randn(17, 100))


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_weights_other_seed_differs(name):
    def weights(seed):
        torch.manual_seed(seed)
        return torch.cat([p.detach().flatten() for p in build_encoder(name, DEFAULT_SIGNAL, "tiny").parameters()])

    assert torch.equal(weights(1), weights(1))
    assert not torch.equal(weights(1), weights(2))


@pytest.mark.parametrize("name", NAMES)
def test_signal_inferred_from_window_and_rate(name):
    signal = {"chs_info": DEFAULT_SIGNAL["chs_info"], "input_window_seconds": 0.7, "sfreq": 100.0}
    model = build_encoder(name, signal, "tiny").eval()
    assert model.signal.n_times == 70
    assert encode(model, torch.randn(2, 17, 70)).shape == (2, embedding_dim(model))


def test_nice_matches_the_published_flatten_size_at_both_rates():
    # NICE at 250 Hz: 250 samples -> 40 x 36 = 1440; the seconds-based sizes give the same at 100 Hz.
    at_250 = build_encoder("nice", {"n_chans": 63, "n_times": 250, "sfreq": 250.0})
    at_100 = build_encoder("nice", DEFAULT_SIGNAL)
    assert at_250.projection.in_features == 1440 and at_100.projection.in_features == 1440


def test_unknown_encoder_names_the_choices():
    with pytest.raises(KeyError, match="registered"):
        build_encoder("eegnetx", DEFAULT_SIGNAL)


def test_every_encoder_declares_the_protocol_the_registry_reads():
    for name in NAMES:
        model = build_encoder(name, DEFAULT_SIGNAL, "tiny").eval()
        out = encode(model, torch.randn(2, 17, 100))
        assert isinstance(out, torch.Tensor) and out.shape == (2, model.embedding_dim)


def test_pretrained_encoder_starts_from_a_saved_folder_checked_against_the_data(tmp_path):
    from ttdnet.errors import TtdnetError
    from ttdnet.models.registry import build_pretrained_encoder, pretrained_encoder_names

    assert "inceptsad" in pretrained_encoder_names() and "nice" not in pretrained_encoder_names()
    torch.manual_seed(0)
    model = build_encoder("inceptsad", DEFAULT_SIGNAL, "tiny").eval()
    model.save_pretrained(tmp_path / "encoder")
    loaded = build_pretrained_encoder("inceptsad", tmp_path / "encoder", DEFAULT_SIGNAL, "test data").eval()
    x = torch.randn(2, 17, 100)
    torch.testing.assert_close(encode(loaded, x), encode(model, x), rtol=0, atol=0)
    with pytest.raises(SignalSpecError, match="test data does not fit the model"):
        build_pretrained_encoder("inceptsad", tmp_path / "encoder", {**DEFAULT_SIGNAL, "sfreq": 50.0}, "test data")
    with pytest.raises(TtdnetError, match="no config.json"):
        build_pretrained_encoder("inceptsad", tmp_path / "missing", DEFAULT_SIGNAL, "test data")
    with pytest.raises(TtdnetError, match="cannot start from saved weights"):
        build_pretrained_encoder("nice", tmp_path / "encoder", DEFAULT_SIGNAL, "test data")
    with pytest.raises(KeyError, match="registered"):
        build_pretrained_encoder("eegnetx", tmp_path / "encoder", DEFAULT_SIGNAL, "test data")
