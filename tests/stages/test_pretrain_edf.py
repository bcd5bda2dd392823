"""Stage A on EDF window corpora (the format of ``ttdnet preprocess edf``)."""

import numpy as np
import pytest

from ttdnet.cli import main
from ttdnet.data.channels import POSTERIOR_17_CHANNELS
from ttdnet.data.eeg_window_writer import EEGWindowWriter
from ttdnet.data.eeg_windows import EEGWindowCorpus, EEGWindowDataset, split_by_recording


def write_corpus(root, sfreq=100.0, n_times=100, recordings=(6, 4, 5, 3), ch_names=POSTERIOR_17_CHANNELS):
    writer = EEGWindowWriter(
        root, ch_names, sfreq, n_times, n_times / sfreq, normalisation={"method": "test"}, filter={"l_freq": None}
    )
    rng = np.random.default_rng(0)
    for shard in (recordings[:2], recordings[2:]):
        sources = [{"path": f"S{len(writer.done_sources) + i:03d}.edf", "n_windows": n} for i, n in enumerate(shard)]
        windows = rng.standard_normal((sum(shard), len(ch_names), n_times)).astype(np.float32)
        writer.write_shard(windows, sources)
    return EEGWindowCorpus(root)


def test_split_holds_out_whole_recordings(tmp_path):
    corpus = write_corpus(tmp_path / "c")
    train, val = split_by_recording(corpus, 0.25, seed=1)
    assert len(train) + len(val) == 18 and np.intersect1d(train, val).size == 0
    recording_of = np.concatenate([[i] * n for i, n in enumerate((6, 4, 5, 3))])
    assert len(set(recording_of[val])) == 1 and set(recording_of[val]).isdisjoint(recording_of[train])
    again = split_by_recording(corpus, 0.25, seed=1)
    assert np.array_equal(again[1], val)
    dataset = EEGWindowDataset(corpus, val)
    np.testing.assert_array_equal(dataset[0].numpy(), corpus[int(val[0])])


def test_pretrain_on_windows_only(tmp_path, capsys):
    corpus = write_corpus(tmp_path / "c")
    args = [
        "pretrain", "--edf_windows", str(corpus.root), "--encoder_preset", "tiny", "--decoder_dim", "16",
        "--decoder_depth", "1", "--decoder_heads", "2", "--train_batch_size", "4", "--max_train_steps", "3",
        "--validation_steps", "3", "--val_fraction", "0.25", "--output_dir", str(tmp_path / "out"),
        "--report_to", "none",
    ]  # fmt: skip
    assert main(args) == 0
    summary = capsys.readouterr().out
    assert '"validation_windows"' in summary and (tmp_path / "out" / "encoder" / "config.json").is_file()


def test_corpus_that_does_not_fit_the_encoder_is_refused(tmp_path, capsys):
    corpus = write_corpus(tmp_path / "c", sfreq=160.0, n_times=160)
    args = [
        "pretrain",
        "--edf_windows",
        str(corpus.root),
        "--encoder_preset",
        "tiny",
        "--output_dir",
        str(tmp_path / "run"),
    ]
    assert main([*args, "--report_to", "none"]) == 1
    err = capsys.readouterr().err
    assert "index.json" in err and "160" in err and "100" in err


@pytest.mark.parametrize("val_fraction", [1.0, -0.1])
def test_bad_val_fraction(tmp_path, val_fraction):
    with pytest.raises(ValueError, match="val_fraction"):
        split_by_recording(write_corpus(tmp_path / "c"), val_fraction, 0)
