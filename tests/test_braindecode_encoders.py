"""The braindecode encoders: features equal braindecode's own, EEGPT's channel rule, local pretrained weights."""

import json
import subprocess
import sys
import warnings

import pytest
import torch
from safetensors.torch import load_file, save_file

from ttdnet.data.channels import RAW_63_CHANNELS
from ttdnet.errors import ConfigError, TtdnetError
from ttdnet.models import build_encoder, embedding_dim, encode
from ttdnet.models.braindecode_adapter import HEAD_OUTPUTS, BraindecodeEncoder, braindecode_model_class
from ttdnet.models.registry import DEFAULT_SIGNAL, ENCODERS, build_pretrained_braindecode_encoder


BRAINDECODE_NAMES = sorted(name for name, entry in ENCODERS.items() if entry.cls is BraindecodeEncoder)
EEGPT_UNKNOWN = ["FT9", "TP9", "TP10", "FT10", "AFz"]  # in RAW_63_CHANNELS order
TINY_EEGPT = ENCODERS["braindecode-eegpt"].tiny["model_kwargs"]


def reference_model(encoder: BraindecodeEncoder, chs_info=None):
    """braindecode's own model with the encoder's architecture and weights, its classification head intact."""
    config = encoder.config
    model_class = braindecode_model_class(config.model_name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = model_class(
            n_outputs=HEAD_OUTPUTS,
            n_chans=encoder.signal.n_chans,
            chs_info=chs_info if chs_info is not None else config.chs_info,
            n_times=encoder.signal.n_times,
            sfreq=encoder.signal.sfreq,
            **config.model_kwargs,
        )
    # EEGPT's chans_id stays the reference's own, computed from chs_info.
    weights = {key: value for key, value in encoder.model.state_dict().items() if key != "chans_id"}
    result = reference.load_state_dict(weights, strict=False)
    assert all(key.startswith("final_layer.") or key == "chans_id" for key in result.missing_keys)
    assert not result.unexpected_keys
    return reference.eval()


def test_registry_lists_the_braindecode_entries():
    assert BRAINDECODE_NAMES == [
        "braindecode-atcnet", "braindecode-eegconformer", "braindecode-eegnet", "braindecode-eegpt"
    ]  # fmt: skip


@pytest.mark.parametrize("name", [n for n in BRAINDECODE_NAMES if n != "braindecode-eegpt"])
def test_features_are_the_input_of_braindecodes_classifier(name):
    torch.manual_seed(0)
    encoder = build_encoder(name, DEFAULT_SIGNAL, "tiny").eval()
    reference = reference_model(encoder)
    head = reference.final_layer
    heads = list(head) if isinstance(head, torch.nn.ModuleList) else [head]  # ATCNet: one head per window
    inputs = []
    hooks = [h.register_forward_pre_hook(lambda module, args: inputs.append(args[0].flatten(1))) for h in heads]
    x = torch.randn(4, 17, 100)
    with torch.no_grad():
        reference(x)
        features = encode(encoder, x)
    for hook in hooks:
        hook.remove()
    expected = torch.stack(inputs).mean(0)  # ATCNet averages its windows' head outputs; the heads are linear
    torch.testing.assert_close(features, expected, rtol=0, atol=0)
    assert not any(p.numel() for p in encoder.model.final_layer.parameters())  # the head is gone


def test_eegpt_features_are_braindecodes_return_features():
    torch.manual_seed(0)
    encoder = build_encoder("braindecode-eegpt", DEFAULT_SIGNAL, "tiny").eval()
    reference = reference_model(encoder)
    x = torch.randn(3, 17, 100)
    with torch.no_grad():
        expected = reference(x, return_features=True)["features"].flatten(1)
        torch.testing.assert_close(encode(encoder, x), expected, rtol=0, atol=0)
    assert embedding_dim(encoder) == expected.shape[1]


@pytest.mark.parametrize("name", BRAINDECODE_NAMES)
def test_runs_on_the_63_channel_250_hz_release(name):
    known = [c for c in RAW_63_CHANNELS if c not in EEGPT_UNKNOWN] if name == "braindecode-eegpt" else RAW_63_CHANNELS
    signal = {"chs_info": [{"ch_name": c} for c in known], "n_times": 250, "sfreq": 250.0}
    encoder = build_encoder(name, signal, "tiny").eval()
    assert encode(encoder, torch.randn(2, len(known), 250)).shape == (2, embedding_dim(encoder))


def test_eegpt_refuses_channels_it_has_no_embedding_for():
    signal = {"chs_info": [{"ch_name": c} for c in RAW_63_CHANNELS], "n_times": 250, "sfreq": 250.0}
    with pytest.raises(ConfigError, match=r"\['FT9', 'TP9', 'TP10', 'FT10', 'AFz'\].*--channels"):
        build_encoder("braindecode-eegpt", signal, "tiny")
    with pytest.raises(ConfigError, match="give chs_info"):
        build_encoder("braindecode-eegpt", {"n_chans": 17, "n_times": 100, "sfreq": 100.0}, "tiny")
    # A channel projection instead of name embeddings takes any channels.
    projected = {**TINY_EEGPT, "chan_proj_type": "conv1d_constraint"}
    encoder = BraindecodeEncoder(**signal, model_name="EEGPT", model_kwargs=projected)
    assert encode(encoder, torch.randn(2, 63, 250)).shape == (2, embedding_dim(encoder))


def test_constructor_errors_name_the_value():
    with pytest.raises(ConfigError, match="'NotAModel' is not a braindecode model"):
        BraindecodeEncoder(**DEFAULT_SIGNAL, model_name="NotAModel")
    with pytest.raises(ConfigError, match=r"may not set \['n_outputs'\]"):
        BraindecodeEncoder(**DEFAULT_SIGNAL, model_name="EEGNet", model_kwargs={"n_outputs": 4})
    with pytest.raises(ConfigError, match=r"braindecode EEGNet .*cannot be built for 17 channels x 100 samples"):
        BraindecodeEncoder(**DEFAULT_SIGNAL, model_name="EEGNet", model_kwargs={"not_an_argument": 1})
    with pytest.raises(ConfigError, match="JSON values"):
        BraindecodeEncoder(**DEFAULT_SIGNAL, model_name="EEGNet", model_kwargs={"activation": torch.nn.ELU})
    with pytest.raises(ConfigError, match="low_cpu_mem_usage"):
        BraindecodeEncoder.from_pretrained("unused", low_cpu_mem_usage=True)


def test_type_arguments_are_given_as_import_paths():
    kwargs = {**ENCODERS["braindecode-eegnet"].tiny["model_kwargs"], "activation": "torch.nn.GELU"}
    encoder = BraindecodeEncoder(**DEFAULT_SIGNAL, model_name="EEGNet", model_kwargs=kwargs)
    assert isinstance(encoder.model.elu_1, torch.nn.GELU)


def test_without_braindecode_the_entries_are_listed_and_building_says_how_to_install():
    script = (
        "import sys; sys.modules['braindecode'] = None\n"
        "from ttdnet.models.registry import DEFAULT_SIGNAL, build_encoder, encoder_names\n"
        "assert 'braindecode-eegpt' in encoder_names()\n"
        "try:\n    build_encoder('braindecode-eegnet', DEFAULT_SIGNAL, 'tiny')\n"
        "except Exception as error:\n    print(type(error).__name__, error)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert result.stdout.startswith("TtdnetError") and "pip install 'ttdnet[braindecode]'" in result.stdout


# ------------------------------------------------------------------ pretrained braindecode weights in a folder


def save_braindecode_eegpt(folder, chs_info, extra_weights=None, **config_changes):
    """braindecode's own ``save_pretrained`` of a tiny EEGPT (random weights) with a 3-class head."""
    model_class = braindecode_model_class("EEGPT")
    torch.manual_seed(3)
    model = model_class(n_outputs=3, chs_info=chs_info, n_times=100, sfreq=100.0, **TINY_EEGPT).eval()
    model.save_pretrained(folder)
    if extra_weights:
        weights = load_file(str(folder / "model.safetensors"))
        weights.update(extra_weights)
        save_file(weights, str(folder / "model.safetensors"))
    if config_changes:
        config = json.loads((folder / "config.json").read_text())
        config.update(config_changes)
        (folder / "config.json").write_text(json.dumps(config))
    return model


def test_eegpt_starts_from_a_local_checkpoint_with_pretraining_weights(tmp_path):
    pretraining = {"predictor.mask_token": torch.zeros(1, 1, 8), "reconstructor.time_embed": torch.zeros(4, 8)}
    saved = save_braindecode_eegpt(tmp_path, DEFAULT_SIGNAL["chs_info"], pretraining)
    # The data's channels in another order: chans_id follows the data, not the checkpoint.
    reordered = {**DEFAULT_SIGNAL, "chs_info": DEFAULT_SIGNAL["chs_info"][::-1]}
    encoder = build_pretrained_braindecode_encoder("braindecode-eegpt", tmp_path, reordered).eval()
    reference = reference_model(encoder, reordered["chs_info"])
    assert torch.equal(reference.chans_id, encoder.model.chans_id)
    assert not torch.equal(saved.chans_id, encoder.model.chans_id)
    x = torch.randn(2, 17, 100)
    with torch.no_grad():
        expected = reference(x, return_features=True)["features"].flatten(1)
        torch.testing.assert_close(encode(encoder, x), expected, rtol=0, atol=0)
        same_order = build_pretrained_braindecode_encoder("braindecode-eegpt", tmp_path, DEFAULT_SIGNAL).eval()
        expected = saved(x, return_features=True)["features"].flatten(1)
        torch.testing.assert_close(encode(same_order, x), expected, rtol=0, atol=0)
    # What it saves (save_pretrained) reloads with the same weights.
    encoder.save_pretrained(tmp_path / "ours")
    loaded = BraindecodeEncoder.from_pretrained(tmp_path / "ours").eval()
    torch.testing.assert_close(encode(loaded, x), encode(encoder, x), rtol=0, atol=0)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"drop": "target_encoder.norm.weight"}, r"missing \['target_encoder.norm.weight'\]"),
        ({"extra": {"decoder.weight": torch.zeros(2)}}, r"unknown \['decoder.weight'\]"),
        ({"config": {"embed_dim": 16}}, r"wrong shape"),
        ({"config": {"sfreq": 256.0}}, r"sfreq=256 Hz, the data is at 100 Hz: resample"),
    ],
)
def test_a_checkpoint_that_does_not_fit_is_refused(tmp_path, change, message):
    save_braindecode_eegpt(tmp_path, DEFAULT_SIGNAL["chs_info"], change.get("extra"), **change.get("config", {}))
    if "drop" in change:
        weights = load_file(str(tmp_path / "model.safetensors"))
        del weights[change["drop"]]
        save_file(weights, str(tmp_path / "model.safetensors"))
    with pytest.raises(TtdnetError, match=message):
        build_pretrained_braindecode_encoder("braindecode-eegpt", tmp_path, DEFAULT_SIGNAL)


def test_pretrained_folder_and_encoder_are_checked(tmp_path):
    with pytest.raises(TtdnetError, match="config.json is missing"):
        build_pretrained_braindecode_encoder("braindecode-eegpt", tmp_path, DEFAULT_SIGNAL)
    with pytest.raises(TtdnetError, match="does not load braindecode weights"):
        build_pretrained_braindecode_encoder("nice", tmp_path, DEFAULT_SIGNAL)


def test_train_retrieval_builds_the_encoder_from_encoder_pretrained(tmp_path):
    from ttdnet.stages.retrieval_training import build_model
    from ttdnet.stages.train_retrieval import RetrievalConfig

    saved = save_braindecode_eegpt(tmp_path / "eegpt", DEFAULT_SIGNAL["chs_info"])
    config = RetrievalConfig(encoder="braindecode-eegpt", encoder_pretrained=str(tmp_path / "eegpt"), proj_dim=8)
    mean, std = torch.zeros(2, 4), torch.ones(2, 4)
    model = build_model(config, DEFAULT_SIGNAL, 2, 4, 1, mean, std, "test data")
    weights = model.encoder.model.state_dict()
    assert all(torch.equal(weights[key], value) for key, value in saved.state_dict().items() if key in weights)
