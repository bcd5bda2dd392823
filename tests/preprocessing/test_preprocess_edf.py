"""`ttdnet preprocess edf` and the window-corpus format on EDF files written here with MNE export (edfio)."""

import dataclasses
import json

import mne
import numpy as np
import pytest
import scipy.linalg
from raw_files import PHYSIONET_LABELS, dotted, write_physionet_edf
from sklearn.covariance import ledoit_wolf
from sklearn.preprocessing import StandardScaler

from ttdnet.cli import main
from ttdnet.data.channels import POSTERIOR_17_CHANNELS, RAW_63_CHANNELS
from ttdnet.data.eeg_windows import EEGWindowCorpus, EEGWindowDataset, WindowContractError, WindowCorpusError
from ttdnet.errors import TtdnetError
from ttdnet.preprocessing.common import standardise_channel_name
from ttdnet.preprocessing.edf_command import PreprocessEdfConfig
from ttdnet.preprocessing.edf_corpus import preprocess_edf


@pytest.fixture(scope="module")
def physionet(tmp_path_factory):
    """S001 (160 Hz, two runs) and S088 (128 Hz, one run), 30 s each, plus a truncated and a garbage file."""
    root = tmp_path_factory.mktemp("eegmmidb")
    written = {
        "S001/S001R01.edf": write_physionet_edf(root / "S001" / "S001R01.edf", 160.0, 30.0, seed=1),
        "S001/S001R02.edf": write_physionet_edf(root / "S001" / "S001R02.edf", 160.0, 30.0, seed=2),
        "S088/S088R01.edf": write_physionet_edf(root / "S088" / "S088R01.edf", 128.0, 30.0, seed=3),
    }
    bad = root / "S002"
    bad.mkdir()
    good = (root / "S001" / "S001R01.edf").read_bytes()
    (bad / "S002R01.edf").write_bytes(good[: len(good) // 3])  # truncated
    (bad / "S002R02.edf").write_bytes(b"this is not an EDF file" * 20)
    return {"root": root, "written": written}


def config_for(root, out, **changes) -> PreprocessEdfConfig:
    return dataclasses.replace(PreprocessEdfConfig(input_dir=str(root), output_dir=str(out)), **changes)


def reference_windows(path, sfreq_target=100.0, l_freq=0.5, n_times=100, n_base=21):
    """Independent re-computation: MNE read/filter/resample, sklearn shrinkage covariance, numpy windows."""
    raw = mne.io.read_raw_edf(path, preload=True, verbose="error")
    mne.datasets.eegbci.standardize(raw)
    raw.pick(list(POSTERIOR_17_CHANNELS))
    raw.filter(l_freq, None, verbose="error")
    raw.resample(sfreq_target, verbose="error")
    x = raw.get_data()
    x = x - x.mean(axis=1, keepdims=True)
    scaler = StandardScaler()
    z = scaler.fit_transform(x.T)
    sigma = scaler.scale_[:, None] * ledoit_wolf(z)[0] * scaler.scale_[None, :]
    x = scipy.linalg.fractional_matrix_power(sigma, -0.5).real @ x
    n = x.shape[1] // n_times
    windows = x[:, : n * n_times].reshape(x.shape[0], n, n_times).transpose(1, 0, 2)
    return windows - windows[:, :, :n_base].mean(axis=2, keepdims=True)


def shrinkage_whitener(samples: np.ndarray) -> np.ndarray:
    """Sigma^(-1/2) of (n_chans, n_samples) data: StandardScaler + ledoit_wolf + rescale, then scipy."""
    scaler = StandardScaler()
    z = scaler.fit_transform(samples.T)
    sigma = scaler.scale_[:, None] * ledoit_wolf(z)[0] * scaler.scale_[None, :]
    return scipy.linalg.fractional_matrix_power(sigma, -0.5).real


def test_whitening_is_fitted_outside_bad_annotations(tmp_path):
    """A BAD-annotated burst of huge noise is neither cut into windows nor part of the whitening fit."""
    sfreq, n, n_times, n_base = 100.0, 3000, 100, 21
    rng = np.random.default_rng(7)
    labels = list(POSTERIOR_17_CHANNELS)
    mixing = np.eye(len(labels)) + 0.3 * rng.standard_normal((len(labels), len(labels))) / 4
    data = mixing @ rng.standard_normal((len(labels), n)) * 20e-6
    burst = slice(1000, 1550)  # 10 ... 15.5 s: rejects the windows starting at 10 ... 15 s
    data[:, burst] += rng.standard_normal((len(labels), burst.stop - burst.start)) * 5e-3  # 250x the background
    raw = mne.io.RawArray(data, mne.create_info(labels, sfreq, "eeg"), verbose="error")
    raw.set_annotations(mne.Annotations([10.0], [5.5], ["BAD_artifact"]))
    path = tmp_path / "in" / "burst.edf"
    path.parent.mkdir()
    mne.export.export_raw(path, raw, fmt="edf", verbose="error")
    # no high-pass: its filter would spread the burst into the neighbouring good samples
    preprocess_edf(config_for(tmp_path / "in", tmp_path / "out", l_freq=None))
    corpus = EEGWindowCorpus(tmp_path / "out")
    got = np.stack([corpus[i] for i in range(len(corpus))])

    x = mne.io.read_raw_edf(path, preload=True, verbose="error").get_data(picks=labels)  # as stored (16 bit)
    good = np.ones(n, dtype=bool)
    good[burst] = False
    starts = [s for s in range(0, n - n_times + 1, n_times) if good[s : s + n_times].all()]
    assert len(starts) == 24 and got.shape == (24, 17, 100)

    def windows_whitened_on(samples):
        whitened = shrinkage_whitener(samples) @ (x - samples.mean(axis=1, keepdims=True))
        windows = np.stack([whitened[:, s : s + n_times] for s in starts])
        return windows - windows[:, :, :n_base].mean(axis=2, keepdims=True)

    expected = windows_whitened_on(x[:, good])
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4 * np.abs(expected).max())
    assert np.allclose(got.std(axis=(0, 2)), 1.0, atol=0.15)
    whole_recording_fit = windows_whitened_on(x)
    assert np.abs(got - whole_recording_fit).max() > 0.5 * np.abs(expected).max()


def test_channel_names_are_standardised():
    assert [standardise_channel_name(dotted(label)) for label in ("Fc5", "Cz", "Fpz", "Poz", "Afz", "Iz", "Po7")] == [
        "FC5",
        "Cz",
        "Fpz",
        "POz",
        "AFz",
        "Iz",
        "PO7",
    ]
    assert standardise_channel_name("EEG FP1-REF") == "Fp1"
    assert standardise_channel_name("EEG T3-LE") == "T7" and standardise_channel_name("EEG T6-REF") == "P8"
    assert standardise_channel_name("EKG") is None and standardise_channel_name("PHOTIC-REF") is None


def test_corpus_matches_reference_and_lists_bad_files(physionet, tmp_path, capsys):
    out = tmp_path / "windows"
    summary = preprocess_edf(config_for(physionet["root"], out))
    corpus = EEGWindowCorpus(out)
    assert corpus.ch_names == POSTERIOR_17_CHANNELS and corpus.sfreq == 100.0 and corpus.n_times == 100
    sources = {source["path"]: source for source in corpus.sources()}
    assert sorted(sources) == sorted(physionet["written"])
    assert (
        sources["S088/S088R01.edf"]["sfreq_original"] == 128.0 and sources["S001/S001R01.edf"]["sfreq_original"] == 160
    )
    assert all(source["n_windows"] == 30 for source in sources.values()) and len(corpus) == 90
    assert sorted(entry["path"] for entry in summary["failed"]) == ["S002/S002R01.edf", "S002/S002R02.edf"]
    index = json.loads((out / "index.json").read_text())
    assert index["format"] == "ttdnet-eeg-windows" and index["n_windows"] == 90 and len(index["failed"]) == 2
    assert index["normalisation"]["method"] == "whiten" and index["filter"]["l_freq"] == 0.5
    printed = capsys.readouterr()
    assert "S002R01.edf" in printed.out and "2 failed" in printed.out
    for key in ("S001/S001R02.edf", "S088/S088R01.edf"):
        source = sources[key]
        got = corpus.shard(source["shard"])[source["first_window"] : source["first_window"] + source["n_windows"]]
        expected = reference_windows(physionet["root"] / key)
        assert isinstance(got, np.memmap) and got.dtype == np.float32
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4 * np.abs(expected).max())
    # whitened like THINGS-EEG2 MVNN data: unit variance per channel, decorrelated channels
    stacked = np.concatenate([corpus[i] for i in range(len(corpus))], axis=1)
    correlation = np.corrcoef(stacked)
    assert np.allclose(stacked.std(axis=1), 1.0, atol=0.15)
    assert np.abs(correlation - np.eye(17)).max() < 0.15


def test_rerun_resumes_and_keeps_written_shards(physionet, tmp_path):
    out = tmp_path / "windows"
    config = config_for(physionet["root"], out, shard_windows=30)
    preprocess_edf(config)
    shards = sorted(out.glob("shard-*.npy"))
    assert len(shards) == 3
    before = {path.name: (path.stat().st_mtime_ns, path.read_bytes()) for path in shards}
    summary = preprocess_edf(config)
    assert summary["written"] == 0 and summary["already_done"] == 3 and summary["windows"] == 90
    assert {path.name: (path.stat().st_mtime_ns, path.read_bytes()) for path in out.glob("shard-*.npy")} == before
    # an interrupted run: the index lost its last shard entry (as if the process died before recording it)
    index = json.loads((out / "index.json").read_text())
    lost = index["shards"].pop()
    (out / "index.json").write_text(json.dumps(index))
    summary = preprocess_edf(config)
    assert summary["written"] == 1 and summary["windows"] == 90
    assert EEGWindowCorpus(out).sources()[-1]["path"] == lost["sources"][0]["path"]
    with pytest.raises(WindowCorpusError, match="other settings .*sfreq"):
        preprocess_edf(dataclasses.replace(config, sfreq=50.0))


def test_missing_channels_skip_or_interpolate(physionet, tmp_path, capsys):
    # every recording skipped (3, lacking 4 channels) or failed (2): an error, not an empty corpus
    with pytest.raises(TtdnetError, match=r"none of the 5 recordings gave a window \(2 failed, 3 skipped\)"):
        preprocess_edf(config_for(physionet["root"], tmp_path / "a", channels="raw63"))
    index = json.loads((tmp_path / "a" / "index.json").read_text())
    assert index["n_windows"] == 0 and len(index["skipped"]) == 3
    assert all("['FT9', 'TP9', 'TP10', 'FT10']" in entry["reason"] for entry in index["skipped"])
    capsys.readouterr()
    done = preprocess_edf(
        config_for(physionet["root"], tmp_path / "b", channels="raw63", missing_channels="interpolate")
    )
    corpus = EEGWindowCorpus(tmp_path / "b")
    assert corpus.ch_names == RAW_63_CHANNELS and done["windows"] == 90
    assert corpus.sources()[0]["missing_channels"] == ["FT9", "TP9", "TP10", "FT10"]
    assert [source["n_interpolated"] for source in corpus.sources()] == [4, 4, 4]
    printed = capsys.readouterr().out
    assert "interpolated: 3 of 3 recordings, 4 of 63 channels each" in printed and "2 recordings failed" in printed
    assert np.isfinite(corpus[0]).all() and corpus[0][RAW_63_CHANNELS.index("TP9")].std() > 0
    with pytest.raises(TtdnetError, match=r"S001R01.edf: lacks channels \['FT9'"):
        preprocess_edf(config_for(physionet["root"], tmp_path / "c", channels="raw63", missing_channels="error"))


def test_interpolated_channels_are_counted_and_capped(tmp_path, capsys):
    folder = tmp_path / "in"
    without = {"four": ("Po7", "Po3", "Po4", "Po8"), "five": ("Po7", "Po3", "Poz", "Po4", "Po8")}  # of 17
    for name, dropped in without.items():
        labels = [label for label in PHYSIONET_LABELS if label not in dropped]
        write_physionet_edf(folder / f"{name}.edf", 160.0, 12.0, seed=4, labels=labels)
    summary = preprocess_edf(config_for(folder, tmp_path / "a", missing_channels="interpolate"))
    # 4/17 = 0.235 is within the default 0.25, 5/17 = 0.294 is not: a failure, listed with its reason
    assert summary["windows"] == 12 and [entry["path"] for entry in summary["failed"]] == ["five.edf"]
    assert "lacks 5 of the 17 target channels" in summary["failed"][0]["reason"]
    assert [(s["path"], s["n_interpolated"]) for s in EEGWindowCorpus(tmp_path / "a").sources()] == [("four.edf", 4)]
    printed = capsys.readouterr().out
    assert "interpolated: 1 of 1 recordings, 4 of 17 channels each (most: four.edf)" in printed
    assert "1 failed" in printed and "1 recordings failed and were not written" in printed
    summary = preprocess_edf(
        config_for(folder, tmp_path / "b", missing_channels="interpolate", max_interpolated_fraction=1.0)
    )
    assert summary["windows"] == 24 and summary["failed"] == []
    counts = [(s["path"], s["n_interpolated"]) for s in EEGWindowCorpus(tmp_path / "b").sources()]
    assert counts == [("five.edf", 5), ("four.edf", 4)]
    assert "interpolated: 2 of 2 recordings, 4 to 5 of 17 channels each (most: five.edf)" in capsys.readouterr().out


def test_sampling_rate_below_target_is_skipped(physionet, tmp_path):
    summary = preprocess_edf(config_for(physionet["root"], tmp_path / "w", sfreq=150.0, window_seconds=0.2))
    assert [entry["path"] for entry in summary["skipped"]] == ["S088/S088R01.edf"]
    assert "128 Hz, below the target --sfreq 150" in summary["skipped"][0]["reason"]


def test_check_compatible_names_every_mismatch(physionet, tmp_path):
    out = tmp_path / "w"
    preprocess_edf(config_for(physionet["root"], out, normalisation="zscore"))
    corpus = EEGWindowCorpus(out)
    corpus.check_compatible(list(POSTERIOR_17_CHANNELS), 100.0, 100)
    with pytest.raises(WindowContractError) as error:
        corpus.check_compatible(list(RAW_63_CHANNELS), 250.0, 250)
    message = str(error.value)
    assert "FT9" in message and "250 Hz" in message and "250" in message and "100 samples" in message
    with pytest.raises(WindowContractError, match="channel order differs"):
        corpus.check_compatible(list(reversed(POSTERIOR_17_CHANNELS)), 100.0, 100)
    dataset = EEGWindowDataset(out)
    item = dataset[5]
    assert len(dataset) == 90 and tuple(item.shape) == (17, 100) and str(item.dtype) == "torch.float32"
    np.testing.assert_array_equal(item.numpy(), corpus[5])
    assert np.allclose(np.concatenate(list(corpus), axis=1).std(axis=1), 1.0, atol=0.05)
    (out / corpus.shards[0]["file"]).unlink()
    with pytest.raises(WindowCorpusError, match="shard listed in .* is missing"):
        EEGWindowCorpus(out)[0]


def test_cli_and_preset(physionet, tmp_path):
    preset = tmp_path / "p.yaml"
    preset.write_text(f"input_dir: {physionet['root']}\noutput_dir: {tmp_path / 'w'}\nchannels: O1,Oz,O2\n")
    assert main(["preprocess", "edf", "--config", str(preset), "--window_seconds", "2.0"]) == 0
    corpus = EEGWindowCorpus(tmp_path / "w")
    assert corpus.ch_names == ("O1", "Oz", "O2") and corpus.n_times == 200 and len(corpus) == 45
    assert main(["preprocess", "edf", "--input_dir", str(tmp_path / "none")]) == 1
    assert set(PHYSIONET_LABELS) >= {"Poz", "Fc5"}
