"""`ttdnet preprocess things-eeg2` against a straightforward re-computation of the official steps."""

import dataclasses
import hashlib
import json
import shutil
from pathlib import Path

import mne
import numpy as np
import pytest
import scipy.linalg
import yaml
from raw_files import SFREQ, TARGET, write_raw_subject
from sklearn.covariance import ledoit_wolf
from sklearn.preprocessing import StandardScaler
from sklearn.utils import shuffle

from ttdnet.cli import main
from ttdnet.data.channels import NICE_63_CHANNELS, POSTERIOR_17_CHANNELS, RAW_63_CHANNELS
from ttdnet.data.preprocessed_eeg import read_preprocessed_eeg
from ttdnet.errors import TtdnetError
from ttdnet.preprocessing import mvnn
from ttdnet.preprocessing.things_eeg2 import preprocess_things_eeg2
from ttdnet.preprocessing.things_eeg2_command import PreprocessThingsEEG2Config


SEED = 20200220


def config_for(raw_root: Path, output: Path, **changes) -> PreprocessThingsEEG2Config:
    return dataclasses.replace(
        PreprocessThingsEEG2Config(raw_dir=str(raw_root), output_dir=str(output), checksums=True), **changes
    )


# --------------------------------------------------------------------------------------------------
# Independent reference: numpy epoching, MNE's plain resample function, sklearn covariances per matrix
# --------------------------------------------------------------------------------------------------


def reference_cov(x: np.ndarray) -> np.ndarray:
    scaler = StandardScaler()
    z = scaler.fit_transform(x)
    s = ledoit_wolf(z)[0]
    return scaler.scale_[:, None] * s * scaler.scale_[None, :]


def reference_session(contents: dict, ch_names, max_rep: int, sfreq: float, tmin=-0.2, tmax=0.8):
    """Sorted (n_cond, max_rep, n_chans, n_times) epochs of one raw dict, re-computed with numpy."""
    rows = [contents["ch_names"].index(name) for name in ch_names]
    eeg = contents["raw_eeg_data"][rows]
    stim = contents["raw_eeg_data"][-1]
    onsets = np.flatnonzero(stim)
    codes = stim[onsets].astype(int)
    keep = codes != TARGET
    onsets, codes = onsets[keep], codes[keep]
    start, stop = int(round(tmin * SFREQ)), int(round(tmax * SFREQ))
    conditions = np.unique(codes)
    out = []
    for code in conditions:
        idx = shuffle(np.flatnonzero(codes == code), random_state=SEED, n_samples=max_rep)
        epochs = np.stack([eeg[:, onsets[i] + start : onsets[i] + stop + 1] for i in idx])
        epochs = epochs - epochs[:, :, : -start + 1].mean(axis=2, keepdims=True)  # baseline tmin..0 inclusive
        if sfreq < SFREQ:
            epochs = mne.filter.resample(epochs, down=SFREQ / sfreq, npad="auto", pad="edge", verbose="error")
        out.append(epochs)
    return conditions, np.stack(out)


def reference_sigma(data: np.ndarray, dim: str) -> np.ndarray:
    per_condition = []
    for cond in data:
        if dim == "time":
            per_condition.append(np.mean([reference_cov(cond[:, :, t]) for t in range(cond.shape[2])], axis=0))
        else:
            per_condition.append(np.mean([reference_cov(cond[e].T) for e in range(cond.shape[0])], axis=0))
    return np.mean(per_condition, axis=0)


def reference_subject(written: dict, ch_names, fit: str, dim: str, sfreq: float = 100.0, tmax: float = 0.8):
    tests, trains, train_conds = [], [], []
    for session in sorted(written):
        _, test = reference_session(written[session]["test"], ch_names, 20, sfreq, tmax=tmax)
        conds, train = reference_session(written[session]["training"], ch_names, 2, sfreq, tmax=tmax)
        sigmas = [reference_sigma(train, dim)] + ([reference_sigma(test, dim)] if fit == "train+test" else [])
        w = scipy.linalg.fractional_matrix_power(np.mean(sigmas, axis=0), -0.5).real
        tests.append(np.einsum("ij,...jt->...it", w.T, test))  # x(t)^T W
        trains.append(np.einsum("ij,...jt->...it", w.T, train))
        train_conds.append(conds)
    test = np.concatenate(tests, axis=1)
    test = test[:, shuffle(np.arange(test.shape[1]), random_state=SEED)]
    all_conds = np.concatenate(train_conds)
    all_data = np.concatenate(trains)
    train = np.stack([np.concatenate(all_data[all_conds == n], axis=0) for n in range(1, all_conds.max() + 1)])
    train = train[:, shuffle(np.arange(train.shape[1]), random_state=SEED)]
    return train, test


# --------------------------------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("fit", "dim"), [("train", "time"), ("train+test", "time"), ("train", "epochs")])
def test_pipeline_matches_reference(raw_things, tmp_path, fit, dim):
    out = tmp_path / "out"
    preprocess_things_eeg2(config_for(raw_things["root"], out, mvnn_fit=fit, mvnn_dim=dim))
    train_ref, test_ref = reference_subject(raw_things["written"], POSTERIOR_17_CHANNELS, fit, dim)
    train = read_preprocessed_eeg(out / "sub-01" / "preprocessed_eeg_training.npy")
    test = read_preprocessed_eeg(out / "sub-01" / "preprocessed_eeg_test.npy")
    assert train.data.shape == (8, 4, 17, 100) and test.data.shape == (3, 80, 17, 100)
    assert train.data.dtype == np.float64 and train.ch_names == POSTERIOR_17_CHANNELS and train.sfreq == 100
    np.testing.assert_allclose(train.times, np.arange(100) / 100 - 0.2, atol=1e-12)
    scale = np.abs(train_ref).max()
    np.testing.assert_allclose(train.data, train_ref, rtol=0, atol=1e-9 * scale)
    np.testing.assert_allclose(test.data, test_ref, rtol=0, atol=1e-9 * scale)
    # whitened data are dimensionless with about unit noise variance (not volts)
    assert 0.3 < train.data.std() < 3


def test_fit_partition_changes_output_and_is_recorded(raw_things, tmp_path):
    outputs = {}
    for fit in ("train", "train+test"):
        out = tmp_path / fit
        preprocess_things_eeg2(config_for(raw_things["root"], out, mvnn_fit=fit))
        provenance = json.loads((out / "sub-01" / "provenance.json").read_text())
        assert provenance["parameters"]["mvnn_fit"] == fit
        assert provenance["resolved"]["test_data_seen_by_whitening"] is (fit == "train+test")
        expected = ["training"] if fit == "train" else ["test", "training"]
        assert provenance["resolved"]["mvnn_fit_partitions"] == expected
        assert all(session["mvnn"]["fit_partitions"] == expected for session in provenance["sessions"])
        outputs[fit] = read_preprocessed_eeg(out / "sub-01" / "preprocessed_eeg_test.npy").data
    difference = np.abs(outputs["train"] - outputs["train+test"]).max()
    assert difference > 1e-3 * np.abs(outputs["train"]).max()


def test_provenance_records_inputs_outputs_and_versions(raw_things, tmp_path):
    out = tmp_path / "out"
    preprocess_things_eeg2(config_for(raw_things["root"], out))
    provenance = json.loads((out / "sub-01" / "provenance.json").read_text())
    assert len(provenance["inputs"]) == 8
    for entry in provenance["inputs"]:
        path = raw_things["root"] / entry["path"]
        assert entry["size_bytes"] == path.stat().st_size
        assert entry["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    for partition, output in provenance["outputs"].items():
        path = out / "sub-01" / f"preprocessed_eeg_{partition}.npy"
        assert output["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert provenance["resolved"]["repetition_permutation"]["training"] == [2, 1, 3, 0]
    assert {"numpy", "scipy", "mne", "scikit-learn", "python", "ttdnet"} <= set(provenance["packages"])
    assert provenance["parameters"]["channels"] == "posterior17" and provenance["parameters"]["seed"] == SEED
    session = provenance["sessions"][0]
    assert session["training"]["targets_removed"] == 2 and session["test"]["epochs_kept"] == 60
    assert (out / "config.yaml").is_file()


def test_nice_preset_63_channels_250hz_cropped(raw_things, tmp_path):
    out = tmp_path / "nice"
    preset = Path(__file__).resolve().parents[2] / "configs" / "preprocess_things_eeg2_nice250.yaml"
    status = main(
        ["preprocess", "things-eeg2", "--config", str(preset), "--raw_dir", str(raw_things["root"])]
        + ["--output_dir", str(out), "--no_checksums"]
    )
    assert status == 0
    train = read_preprocessed_eeg(out / "sub-01" / "preprocessed_eeg_training.npy")
    assert train.data.shape == (8, 4, 63, 250) and train.ch_names == NICE_63_CHANNELS and train.sfreq == 250
    np.testing.assert_allclose(train.times, np.arange(250) / 250, atol=1e-12)
    # independent check: epochs mode, training-only fit, 250 Hz, -0.2..1.0 s, then the first 50 samples dropped
    train_ref, _ = reference_subject(raw_things["written"], NICE_63_CHANNELS, "train", "epochs", 250.0, 1.0)
    np.testing.assert_allclose(train.data, train_ref[..., 50:], rtol=0, atol=1e-9 * np.abs(train_ref).max())


def test_explicit_channel_list_and_float32(raw_things, tmp_path):
    out = tmp_path / "out"
    preprocess_things_eeg2(
        config_for(raw_things["root"], out, channels="oz, O1,PO8", dtype="float32", mvnn_dim="none")
    )
    test = read_preprocessed_eeg(out / "sub-01" / "preprocessed_eeg_test.npy")
    assert test.ch_names == ("Oz", "O1", "PO8") and test.data.dtype == np.float32
    _, test_ref = reference_session(raw_things["written"][1]["test"], ["Oz", "O1", "PO8"], 20, 100.0)
    # no whitening: session 1's 20 repetitions, in volts, sit at the permuted positions of the first 20
    perm = shuffle(np.arange(80), random_state=SEED)
    np.testing.assert_allclose(test.data[:, np.argsort(perm)[:20]], test_ref, rtol=1e-5, atol=1e-12)


def test_done_subjects_are_skipped_unless_overwrite(raw_things, tmp_path, capsys):
    out = tmp_path / "out"
    config = config_for(raw_things["root"], out, checksums=False)
    assert len(preprocess_things_eeg2(config)) == 1
    provenance = (out / "sub-01" / "provenance.json").read_bytes()
    # options that do not change the EEG files, and the raw folder's parent (same subject folder): skipped as done
    same = dataclasses.replace(config, raw_dir=str(raw_things["root"].parent), epoch_chunk=7, checksums=True)
    assert preprocess_things_eeg2(same) == []
    captured = capsys.readouterr()
    assert "sub-01: already preprocessed" in captured.out + captured.err
    assert (out / "sub-01" / "provenance.json").read_bytes() == provenance
    assert yaml.safe_load((out / "config.yaml").read_text())["epoch_chunk"] == 7  # this run's options
    # an option that changes them: refused before anything is written, redone with --overwrite
    changed = dataclasses.replace(config, mvnn_fit="train+test")
    with pytest.raises(TtdnetError, match=r"mvnn_fit: recorded 'train', now 'train\+test'"):
        preprocess_things_eeg2(changed)
    assert yaml.safe_load((out / "config.yaml").read_text())["mvnn_fit"] == "train"
    assert len(preprocess_things_eeg2(dataclasses.replace(changed, overwrite=True))) == 1
    recorded = json.loads((out / "sub-01" / "provenance.json").read_text())["parameters"]
    assert recorded["mvnn_fit"] == yaml.safe_load((out / "config.yaml").read_text())["mvnn_fit"] == "train+test"


def test_an_interrupted_redo_does_not_look_finished(raw_things, tmp_path, monkeypatch):
    out = tmp_path / "out"
    config = config_for(raw_things["root"], out, checksums=False)
    preprocess_things_eeg2(config)
    test_file = out / "sub-01" / "preprocessed_eeg_test.npy"
    before = test_file.read_bytes()

    def killed(*args):
        raise KeyboardInterrupt  # after the new test file was written, before the training file

    monkeypatch.setattr("ttdnet.preprocessing.things_eeg2.merge_training", killed)
    with pytest.raises(KeyboardInterrupt):
        preprocess_things_eeg2(dataclasses.replace(config, mvnn_fit="train+test", overwrite=True))
    monkeypatch.undo()
    assert test_file.read_bytes() != before and not (out / "sub-01" / "provenance.json").exists()
    # the folder now mixes the two runs' files: never skipped as done
    with pytest.raises(TtdnetError, match="or by a run of it that did not finish"):
        preprocess_things_eeg2(config)


def test_eeg_files_it_did_not_write_are_replaced_only_with_overwrite(raw_things, tmp_path):
    out = tmp_path / "release"
    (out / "sub-01").mkdir(parents=True)
    official = out / "sub-01" / "preprocessed_eeg_training.npy"
    official.write_bytes(b"the downloaded release")
    config = config_for(raw_things["root"], out, checksums=False)
    with pytest.raises(TtdnetError, match="not written by this command"):
        preprocess_things_eeg2(config)
    assert official.read_bytes() == b"the downloaded release"
    assert len(preprocess_things_eeg2(dataclasses.replace(config, overwrite=True))) == 1
    assert official.read_bytes() != b"the downloaded release"


def _copy_subject(raw_things, tmp_path) -> Path:
    root = tmp_path / "raw"
    shutil.copytree(raw_things["root"] / "sub-01", root / "sub-01")
    return root


def test_bad_inputs_give_clear_errors(raw_things, tmp_path):
    root = _copy_subject(raw_things, tmp_path)
    out = tmp_path / "out"
    with pytest.raises(TtdnetError, match=r"\['Qz'\] are not channel names"):
        preprocess_things_eeg2(config_for(root, out, channels="Oz,Qz"))
    with pytest.raises(TtdnetError, match=r"FT9.*not in the file"):
        path = root / "sub-01" / "ses-02" / "raw_eeg_test.npy"
        contents = np.load(path, allow_pickle=True).item()
        contents["ch_names"][3] = "FT9x"
        np.save(path, contents, allow_pickle=True)
        preprocess_things_eeg2(config_for(root, out, channels="raw63"))
    with pytest.raises(TtdnetError, match=r"below the requested --sfreq 2000"):
        preprocess_things_eeg2(config_for(root, out, sfreq=2000.0))
    with pytest.raises(TtdnetError, match=r"fewer than 3 repetitions"):
        preprocess_things_eeg2(config_for(root, out, max_rep_train=3))
    with pytest.raises(TtdnetError, match=r"subjects \[7\] requested"):
        preprocess_things_eeg2(config_for(root, out, subjects=[7]))


def test_nan_truncated_and_missing_files_are_named(raw_things, tmp_path):
    root = _copy_subject(raw_things, tmp_path)
    out = tmp_path / "out"
    path = root / "sub-01" / "ses-01" / "raw_eeg_test.npy"
    contents = np.load(path, allow_pickle=True).item()
    contents["raw_eeg_data"][RAW_63_CHANNELS.index("Oz"), 5000] = np.nan
    np.save(path, contents, allow_pickle=True)
    with pytest.raises(
        TtdnetError, match=r"ses-01/raw_eeg_test.npy: channel Oz has a non-finite value .* sample 5000"
    ):
        preprocess_things_eeg2(config_for(root, out))
    path.write_bytes(path.read_bytes()[:-1000])
    with pytest.raises(TtdnetError, match=r"ses-01/raw_eeg_test.npy: the file is truncated"):
        preprocess_things_eeg2(config_for(root, out))
    path.unlink()
    with pytest.raises(TtdnetError, match=r"raw files missing: .*ses-01/raw_eeg_test.npy"):
        preprocess_things_eeg2(config_for(root, out))
    assert not (out / "sub-01" / "provenance.json").exists()


def test_events_too_close_to_the_end_are_reported(tmp_path):
    root = tmp_path / "raw"
    write_raw_subject(root, "sub-02", n_train=4, n_test=2, seed=3)
    path = root / "sub-02" / "ses-03" / "raw_eeg_training.npy"
    contents = np.load(path, allow_pickle=True).item()
    stim = contents["raw_eeg_data"][-1]
    last = np.flatnonzero((stim > 0) & (stim != TARGET))[-1]
    contents["raw_eeg_data"] = contents["raw_eeg_data"][:, : last + 500]
    np.save(path, contents, allow_pickle=True)
    with pytest.raises(TtdnetError, match=r"ses-03/raw_eeg_training.npy: event at sample \d+ .* 0.8 s before the end"):
        preprocess_things_eeg2(config_for(root, tmp_path / "out"))


def test_cli_runs_and_rejects_bad_values(raw_things, tmp_path, capsys):
    out = tmp_path / "cli"
    argv = ["preprocess", "things-eeg2", "--raw_dir", str(raw_things["root"]), "--output_dir", str(out)]
    with pytest.raises(SystemExit):
        main(argv + ["--mvnn_fit", "everything"])
    assert "invalid choice" in capsys.readouterr().err
    assert main(argv + ["--raw_dir", str(tmp_path / "absent")]) == 1
    assert "does not exist" in capsys.readouterr().err


def test_batched_mvnn_equals_sklearn_per_matrix():
    rng = np.random.default_rng(5)
    for shape in [(4, 2, 17, 12), (3, 20, 17, 6), (2, 3, 1, 9), (2, 4, 5, 40)]:
        data = rng.standard_normal(shape) * rng.uniform(0.5, 3, size=(1, 1, shape[2], 1))
        for dim in ("time", "epochs"):
            batched = mvnn.condition_covariance(data, dim, "batched", block=3)
            np.testing.assert_allclose(batched, reference_sigma(data, dim), rtol=1e-12, atol=1e-14)
            np.testing.assert_allclose(
                mvnn.condition_covariance(data, dim, "sklearn"), batched, rtol=1e-12, atol=1e-14
            )


def _write_brainvision_session(contents: dict, session_dir: Path, stem: str, parts: int) -> None:
    """Split one raw dict into ``parts`` BrainVision recordings (pybv via mne.export) plus behavioural .mat files."""
    from scipy.io import savemat

    data, stim = contents["raw_eeg_data"][:-1], contents["raw_eeg_data"][-1]
    bounds = np.linspace(0, data.shape[1], parts + 1).astype(int)
    for k in range(parts):
        name = stem if parts == 1 else f"{stem}_part-{k + 1:02d}"
        segment = slice(bounds[k], bounds[k + 1])
        onsets = np.flatnonzero(stim[segment])
        codes = stim[segment][onsets].astype(int)
        raw = mne.io.RawArray(
            data[:, segment], mne.create_info(contents["ch_names"][:-1], SFREQ, "eeg"), verbose="error"
        )
        triggers = [f"Stimulus/S{255 if c == TARGET else c % 100:>3}" for c in codes]
        raw.set_annotations(mne.Annotations(onsets / SFREQ, 0.0, triggers))
        (session_dir / "eeg").mkdir(parents=True, exist_ok=True)
        mne.export.export_raw(session_dir / "eeg" / f"{name}_eeg.vhdr", raw, fmt="brainvision", verbose="error")
        images = {"tot_img_number": np.where(codes == TARGET, 0, codes).astype(float)}
        (session_dir / "beh").mkdir(parents=True, exist_ok=True)
        data_struct = {"paradigm_info": 0, "subject_info": 0, "images": images, "task": 0}
        savemat(session_dir / "beh" / f"{name}_beh.mat", {"data": data_struct})


def test_brainvision_source_gives_the_same_output(raw_things, tmp_path):
    source = tmp_path / "source_data"
    for session, partitions in raw_things["written"].items():
        session_dir = source / "sub-01" / f"ses-{session:02d}"
        stem = f"sub-01_ses-{session:02d}_task-"
        _write_brainvision_session(partitions["test"], session_dir, stem + "test", 1)
        _write_brainvision_session(partitions["training"], session_dir, stem + "train", 2)
    preprocess_things_eeg2(config_for(raw_things["root"], tmp_path / "npy", checksums=False))
    preprocess_things_eeg2(config_for(source, tmp_path / "bv", input_format="brainvision", checksums=False))
    for partition in ("training", "test"):
        expected = read_preprocessed_eeg(tmp_path / "npy" / "sub-01" / f"preprocessed_eeg_{partition}.npy").data
        got = read_preprocessed_eeg(tmp_path / "bv" / "sub-01" / f"preprocessed_eeg_{partition}.npy").data
        # float32 storage in BrainVision: close, not equal; a label shifted by one trial would differ by O(1)
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-3 * np.abs(expected).max())
