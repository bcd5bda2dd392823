"""`ttdnet demo`: step order, reuse, resume and fresh starts (fast, with the commands recorded instead of run),
and the whole pipeline end to end at its smallest setting (slow)."""

import json
import time
from pathlib import Path

import pytest

from ttdnet.cli import main
from ttdnet.stages import demo


@pytest.fixture
def recorded(monkeypatch):
    """Record every command the demo runs instead of running it; a step named in ``fail`` raises once."""
    calls, fail = [], set()

    def run_command(name, arguments):
        calls.append((name, arguments))
        if name in fail:
            fail.discard(name)
            raise demo.TtdnetError("stopped on purpose")

    monkeypatch.setattr(demo, "run_command", run_command)
    monkeypatch.setattr("ttdnet.stages.demo_summary.demo_summary", lambda out, state, seconds_this_run: {})
    monkeypatch.setattr("ttdnet.stages.demo_summary.write_summary", lambda out, summary: "summary")
    return calls, fail


def commands(calls):
    return [name for name, _ in calls]


def test_the_steps_run_in_order_and_a_rerun_reuses_them(recorded, tmp_path, capsys):
    calls, _ = recorded
    out = tmp_path / "demo"
    assert main(["demo", "--output_dir", str(out)]) == 0
    assert commands(calls) == [step.command for step in demo.STEPS]
    assert [args[-1] for _, args in calls[:2]] == ["--overwrite", "--overwrite"]  # fresh starts
    assert all(args[1].endswith(f"configs/demo/{step.config_file}") for (_, args), step in zip(calls, demo.STEPS))
    calls.clear()
    assert main(["demo", "--output_dir", str(out)]) == 0
    assert calls == []
    assert capsys.readouterr().out.count("(finished earlier, reused)") == len(demo.STEPS)


def test_an_interrupted_training_step_resumes_and_everything_after_it_starts_fresh(recorded, tmp_path, capsys):
    calls, fail = recorded
    out = tmp_path / "demo"
    fail.add("train-bridge")
    assert main(["demo", "--output_dir", str(out)]) == 1
    assert "demo step bridge (ttdnet train-bridge): stopped on purpose" in capsys.readouterr().err
    assert commands(calls)[-1] == "train-bridge"
    calls.clear()
    assert main(["demo", "--output_dir", str(out)]) == 0
    assert commands(calls) == ["train-bridge", "generate", "evaluate"]
    assert calls[0][1][-2:] == ["--resume_from_checkpoint", "latest"]
    assert calls[1][1][-1] == "--overwrite"  # generate after a step that ran: from scratch


def test_changing_a_step_reruns_it_and_the_steps_after_it(recorded, tmp_path):
    calls, _ = recorded
    out = tmp_path / "demo"
    assert main(["demo", "--output_dir", str(out)]) == 0
    calls.clear()
    assert main(["demo", "--output_dir", str(out), "--set", "tiny-base:vae_steps=7"]) == 0
    assert commands(calls) == ["tiny-base", "train-bridge", "generate", "evaluate"]
    assert calls[0][1][-3:] == ["--vae_steps", "7", "--overwrite"]


def test_fresh_starts_over_and_a_foreign_folder_is_refused(recorded, tmp_path, capsys):
    calls, _ = recorded
    out = tmp_path / "demo"
    assert main(["demo", "--output_dir", str(out)]) == 0
    (out / "leftover.txt").write_text("from the last run")
    calls.clear()
    assert main(["demo", "--output_dir", str(out), "--fresh"]) == 0
    assert len(calls) == len(demo.STEPS) and not (out / "leftover.txt").exists()
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("keep")
    assert main(["demo", "--output_dir", str(mine), "--fresh"]) == 1
    assert "not a ttdnet demo" in capsys.readouterr().err and (mine / "thesis.tex").exists()


@pytest.mark.parametrize("entry", ["bridge", "nostep:a=1", "bridge:=3", "bridge:steps"])
def test_a_malformed_set_is_one_clear_error(recorded, tmp_path, capsys, entry):
    assert main(["demo", "--output_dir", str(tmp_path / "d"), "--set", entry]) == 1
    assert "STEP:OPTION=VALUE" in capsys.readouterr().err


def test_every_demo_config_parses_with_its_command(tmp_path):
    """The YAML files hold only options their commands know, with valid values."""
    from ttdnet.cli import available_commands, build_parser

    config_dir = demo.resolve_config_dir(demo.DemoConfig())
    for step in demo.STEPS:
        arguments = demo.step_arguments(step, tmp_path, config_dir, [])
        build_parser(available_commands()[step.command]).parse_config(arguments)


@pytest.mark.slow
def test_the_demo_turns_eeg_into_images_that_beat_their_baselines(tmp_path, capsys):
    """The whole pipeline at its smallest setting (half the demo's Stage B steps), then a rerun that reuses it."""
    out = tmp_path / "demo"
    started = time.perf_counter()
    smallest = ["--set", "bridge:max_train_steps=1500"]
    assert main(["demo", "--output_dir", str(out), *smallest]) == 0
    seconds = time.perf_counter() - started
    outputs = ["things-eeg2/raw_data/sub-01/ses-01/raw_eeg_training.npy", "stage_a/encoder/config.json",
               "things-eeg2/preprocessed_data/sub-01/provenance.json", "features/pixels.safetensors",
               "retrieval/results.json", "tiny_base/model_index.json", "stage_b/model/bridge.json",
               "generate/manifest.jsonl", "evaluate/report.html", "summary.md"]  # fmt: skip
    for path in outputs:
        assert (out / path).is_file(), path
    assert len(list((out / "generate" / "images").glob("*.png"))) == 20
    summary = json.loads((out / "summary.json").read_text())
    retrieval = {row["score"]: row for row in summary["retrieval"]}
    assert retrieval["retrieval top-1 (20-way)"]["value"] >= 2 * retrieval["retrieval top-1 (20-way)"]["baseline"]
    scores = {row["score"]: row for row in summary["reconstruction"]}
    for name in ("PixCorr", "SSIM", "MSE", "PCC", "Pair-wise id. MSE", "Pair-wise id. PCC"):
        assert scores[name]["better"], (name, scores[name])
    assert scores["PixCorr"]["value"] > scores["PixCorr"]["baseline"] + 0.1
    assert scores["Pair-wise id. PCC"]["value"] >= 0.6
    assert str(Path(summary["report"])) == str(out / "evaluate" / "report.html")
    capsys.readouterr()
    assert main(["demo", "--output_dir", str(out), *smallest]) == 0
    assert capsys.readouterr().out.count("(finished earlier, reused)") == len(demo.STEPS)
    print(f"demo took {seconds:.0f} s")


def test_an_undefined_score_is_shown_as_undefined_and_never_better(tmp_path):
    from ttdnet.stages.demo_summary import reconstruction_rows, summary_text

    (tmp_path / "evaluate").mkdir()
    metrics = {
        "pixcorr": {"name": "PixCorr", "value": None, "direction": "higher", "chance": 0.0},
        "pixcorr_shuffled": {"name": "PixCorr shuffled", "value": 0.01, "direction": "higher"},
        "ssim": {"name": "SSIM", "value": 0.3, "direction": "higher", "chance": 0.0},
        "ssim_shuffled": {"name": "SSIM shuffled", "value": 0.2, "direction": "higher"},
    }
    (tmp_path / "evaluate" / "metrics.json").write_text(json.dumps({"metrics": metrics}))
    rows = {row["score"]: row for row in reconstruction_rows(tmp_path)}
    assert rows["PixCorr"]["better"] is False and rows["SSIM"]["better"] is True
    summary = {"retrieval": [], "reconstruction": list(rows.values()), "step_seconds": {}, "seconds_this_run": 1.0,
               "report": "r.html", "images": "g.png"}  # fmt: skip
    text = summary_text(summary)
    assert "| PixCorr | undefined | 0.0100 (shuffled pairs) | no |" in text
    assert "| SSIM | 0.3000 | 0.2000 (shuffled pairs) | yes |" in text
