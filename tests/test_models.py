import math

import pytest
import torch

from ttdnet.data.channels import POSTERIOR_17_CHANNELS
from ttdnet.models import (
    ENCODER_PRESETS,
    InceptSADEncoder,
    MaskedTemporalPretraining,
    SignalSpec,
    SignalSpecError,
    contiguous_time_mask,
    encoder_preset,
)
from ttdnet.models.inceptsad import kernel_length
from ttdnet.models.masked_pretraining import masked_mse
from ttdnet.models.transformer import SelfAttention


CHS17 = [{"ch_name": name} for name in POSTERIOR_17_CHANNELS]


@pytest.mark.parametrize(
    ("preset", "shape", "n_tokens"),
    [("things17", (17, 100), (100 // 4) // 2), ("things63", (63, 250), (250 // 5) // 5), ("tiny", (17, 100), 5)],
)
def test_preset_shapes(preset, shape, n_tokens):
    torch.manual_seed(0)
    encoder = InceptSADEncoder(**encoder_preset(preset)).eval()
    output = encoder(torch.randn(2, *shape))
    width = ENCODER_PRESETS[preset]["embed_dim"]
    assert output.tokens.shape == (2, n_tokens, width) and output.pooled.shape == (2, width)
    torch.testing.assert_close(output.pooled, output.tokens.mean(dim=1))


@pytest.mark.parametrize(
    ("seconds", "sfreq", "samples"), [(0.0605, 512, 31), (0.0293, 512, 15), (0.0605, 100, 7), (0.0137, 100, 1)]
)
def test_kernel_seconds_to_samples(seconds, sfreq, samples):
    assert kernel_length(seconds, sfreq) == samples


def test_signal_parameters_are_inferred():
    spec = SignalSpec.infer(chs_info=CHS17, input_window_seconds=0.7, sfreq=100)
    assert (spec.n_chans, spec.n_times, spec.sfreq) == (17, 70, 100.0) and spec.ch_names[0] == "Pz"
    assert SignalSpec.infer(n_chans=3, n_times=250, input_window_seconds=1.0).sfreq == 250.0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_chans": 16, "chs_info": CHS17, "n_times": 100, "sfreq": 100}, "n_chans=16 different from len"),
        ({"n_chans": 17, "n_times": 100, "sfreq": 100, "input_window_seconds": 0.5}, "n_times=100 different from"),
        ({"n_chans": 17, "sfreq": 100}, "n_times could not be inferred"),
        ({"chs_info": CHS17, "n_times": 100}, "sfreq could not be inferred"),
        ({"chs_info": CHS17, "n_times": 7, "sfreq": 100}, "n_times=7 is too short for pool_sizes"),
    ],
)
def test_contract_errors(kwargs, message):
    with pytest.raises(SignalSpecError, match=message):
        InceptSADEncoder(**kwargs)


def test_wrong_input_shape_names_expected_shape():
    encoder = InceptSADEncoder(**encoder_preset("tiny"))
    with pytest.raises(
        SignalSpecError, match=r"expects input of shape \(batch, n_chans=17, n_times=100\), got \(17, 100\)"
    ):
        encoder(torch.randn(17, 100))
    with pytest.raises(SignalSpecError, match="got \\(2, 16, 100\\)"):
        encoder(torch.randn(2, 16, 100))


def test_check_matches_lists_every_difference():
    spec = SignalSpec.infer(chs_info=CHS17, n_times=100, sfreq=100)
    names = list(POSTERIOR_17_CHANNELS[:-1]) + ["Fz"]
    with pytest.raises(SignalSpecError) as error:
        spec.check_matches(names, 250, 250.0, "shards in /data/edf")
    message = str(error.value)
    assert "missing ['P2'], extra ['Fz']" in message and "250 time samples" in message and "250 Hz" in message
    spec.check_matches(list(POSTERIOR_17_CHANNELS), 100, 100.0, "ok")


def test_attention_uses_head_dim_scaling():
    torch.manual_seed(0)
    attention = SelfAttention(dim=8, num_heads=2).eval()
    x = torch.randn(1, 5, 8)
    q, k, v = attention.qkv(x).view(1, 5, 3, 2, 4).permute(2, 0, 3, 1, 4)
    weights = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(4), dim=-1)  # head_dim = 4, not sqrt(8)
    expected = attention.out((weights @ v).transpose(1, 2).reshape(1, 5, 8))
    torch.testing.assert_close(attention(x), expected)


def test_save_and_load_keep_the_signal_contract(tmp_path):
    torch.manual_seed(0)
    encoder = InceptSADEncoder(**encoder_preset("tiny")).eval()
    encoder.save_pretrained(tmp_path)
    loaded = InceptSADEncoder.from_pretrained(tmp_path).eval()
    assert loaded.ch_names == POSTERIOR_17_CHANNELS and loaded.signal.sfreq == 100.0 and loaded.signal.n_times == 100
    x = torch.randn(3, 17, 100)
    torch.testing.assert_close(loaded(x).tokens, encoder(x).tokens)


@pytest.mark.parametrize(
    ("n_times", "n_masked", "n_segments"), [(100, 50, 5), (250, 125, 12), (70, 20, 20), (10, 9, 1)]
)
def test_mask_ratio_is_exact_and_segments_never_overlap(n_times, n_masked, n_segments):
    masks = contiguous_time_mask(500, n_times, n_masked, n_segments, torch.Generator().manual_seed(0))
    assert masks.shape == (500, n_times) and (masks.sum(dim=1) == n_masked).all()
    # Non-overlapping segments of lengths n//s or n//s+1 give at most n_segments runs of True.
    starts = masks[:, 0].long() + (masks[:, 1:] & ~masks[:, :-1]).sum(dim=1)
    assert (starts <= n_segments).all() and (starts >= 1).all()
    assert masks[:, -1].any() and masks[:, 0].any()  # the edges can be masked (TTD-net never masked the last sample)


def test_masks_are_reproducible_and_vary():
    first = contiguous_time_mask(8, 100, 50, 5, torch.Generator().manual_seed(3))
    again = contiguous_time_mask(8, 100, 50, 5, torch.Generator().manual_seed(3))
    assert torch.equal(first, again) and not torch.equal(first[0], first[1])


@pytest.mark.parametrize("scope", ["shared", "per_channel"])
def test_mask_scope(scope):
    model = MaskedTemporalPretraining(InceptSADEncoder(**encoder_preset("tiny")), mask_scope=scope)
    mask = model.draw_mask(4, torch.Generator().manual_seed(0))
    assert mask.shape == (4, 17, 100) and (mask.sum(dim=2) == 50).all()
    same_across_channels = bool((mask == mask[:, :1]).all())
    assert same_across_channels == (scope == "shared")


def test_masked_loss_ignores_unmasked_samples():
    target = torch.zeros(1, 2, 6)
    mask = torch.tensor([[[True, True, False, False, False, False], [False, False, False, False, True, True]]])
    prediction = torch.where(mask, target, torch.full_like(target, 100.0))  # wrong only where unmasked
    assert masked_mse(prediction, target, mask).item() == 0.0
    prediction = torch.where(mask, torch.tensor(2.0), prediction)  # off by 2 on the 4 masked samples
    assert masked_mse(prediction, target, mask).item() == pytest.approx(4.0)


def test_masked_input_uses_learned_value_not_zero():
    torch.manual_seed(0)
    model = MaskedTemporalPretraining(InceptSADEncoder(**encoder_preset("tiny")))
    with torch.no_grad():
        model.mask_value.fill_(7.0)
    seen = {}
    model.encoder.register_forward_pre_hook(lambda module, args: seen.setdefault("input", args[0].clone()))
    x = torch.randn(2, 17, 100)
    output = model(x, generator=torch.Generator().manual_seed(0))
    assert torch.equal(seen["input"][output.mask], torch.full_like(x[output.mask], 7.0))
    assert torch.equal(seen["input"][~output.mask], x[~output.mask])


def test_a_few_steps_reduce_the_loss():
    torch.manual_seed(0)
    model = MaskedTemporalPretraining(
        InceptSADEncoder(**encoder_preset("tiny")), decoder_dim=32, decoder_depth=1, decoder_heads=2
    )
    t = torch.arange(100) / 100
    phases = torch.rand(64, 17, 1) * 6.28
    data = torch.sin(2 * math.pi * 5 * t + phases)  # structured signal the masked parts can be inferred from
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(150):
        loss = model(data, generator=generator).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    final = sum(losses[-5:]) / 5
    # Predicting zero everywhere scores the sine's variance, 0.5: the model must beat it, using the unmasked context.
    assert final < 0.45 and final < 0.6 * sum(losses[:5]) / 5
