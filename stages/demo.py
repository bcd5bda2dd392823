"""``ttdnet demo``: the whole job, EEG to scored images, on synthetic data and tiny models it makes itself.

Nine steps, each the real command run in-process through its own parser and config dataclass, with its
settings from one YAML file in ``--config_dir`` (``configs/demo/``) and the demo's folders added::

    simulate (raw recordings) -> preprocess things-eeg2 -> pretrain -> features -> train-retrieval
    -> tiny-base -> train-bridge -> generate -> evaluate

Nothing here changes how a stage works: the demo only chooses paths and small settings. Its folder keeps a
``demo_state.json`` that records, per step, a fingerprint of what the step was asked to do and whether it
finished. A rerun skips finished steps whose fingerprint is unchanged, resumes an unfinished training step from
its latest checkpoint (``generate`` skips the images it already wrote), and reruns from scratch every step
after one that ran. ``--fresh`` deletes the demo folder first.
"""

import argparse
import dataclasses
import json
import shutil
import time
from pathlib import Path

from ttdnet.command import Command
from ttdnet.errors import ConfigError, TtdnetError
from ttdnet.hashing import sha256_text


STATE_NAME = "demo_state.json"


@dataclasses.dataclass(frozen=True)
class DemoStep:
    """One step of the demo.

    Attributes
    ----------
    name : str
        What the demo calls it (and what ``--set`` names).
    command : str
        The ``ttdnet`` command it runs.
    config_file : str
        Its YAML file in ``--config_dir``.
    arguments : tuple of str
        Paths the demo adds, with ``{out}`` for the demo folder and ``{data}`` for the synthetic dataset root.
    fresh : tuple of str
        Arguments of a start from scratch.
    resume : tuple of str
        Arguments that continue an unfinished run of the same step.
    """

    name: str
    command: str
    config_file: str
    arguments: tuple[str, ...]
    fresh: tuple[str, ...] = ("--overwrite",)
    resume: tuple[str, ...] = ("--overwrite",)


LATEST = ("--resume_from_checkpoint", "latest")
FEATURES = "{out}/features/pixels.safetensors"
STEPS = (
    DemoStep("simulate", "simulate", "simulate.yaml", ("--output_dir", "{data}", "--raw", "true")),
    DemoStep(
        "preprocess",
        "preprocess things-eeg2",
        "preprocess.yaml",
        ("--raw_dir", "{data}/raw_data", "--output_dir", "{data}/preprocessed_data"),
    ),
    DemoStep(
        "pretrain",
        "pretrain",
        "pretrain.yaml",
        ("--dataset_root", "{data}", "--output_dir", "{out}/stage_a", "--eeg_cache_dir", "{out}/cache/eeg"),
        resume=LATEST,
    ),
    DemoStep("features", "features", "features.yaml", ("--image_dir", "{data}", "--output_file", FEATURES), resume=()),
    DemoStep(
        "retrieval",
        "train-retrieval",
        "retrieval.yaml",
        (
            "--dataset_root",
            "{data}",
            "--features",
            FEATURES,
            "--encoder_pretrained",
            "{out}/stage_a/encoder",
            "--output_dir",
            "{out}/retrieval",
            "--eeg_cache_dir",
            "{out}/cache/eeg",
        ),  # fmt: skip
        resume=LATEST,
    ),
    DemoStep("tiny-base", "tiny-base", "tiny_base.yaml", ("--image_dir", "{data}", "--output_dir", "{out}/tiny_base")),
    DemoStep(
        "bridge",
        "train-bridge",
        "bridge.yaml",
        (
            "--dataset_root",
            "{data}",
            "--pretrained_model_name_or_path",
            "{out}/tiny_base",
            "--encoder_pretrained",
            "{out}/stage_a/encoder",
            "--clip_features",
            FEATURES,
            "--output_dir",
            "{out}/stage_b",
            "--eeg_cache_dir",
            "{out}/cache/eeg",
            "--latent_cache_dir",
            "{out}/cache/latents",
        ),  # fmt: skip
        resume=LATEST,
    ),
    DemoStep(
        "generate",
        "generate",
        "generate.yaml",
        ("--bridge", "{out}/stage_b/model", "--eeg", "{data}", "--output_dir", "{out}/generate"),
        resume=(),
    ),
    DemoStep(
        "evaluate",
        "evaluate",
        "evaluate.yaml",
        ("--ground_truth", "{data}", "--manifest", "{out}/generate/manifest.jsonl", "--output_dir", "{out}/evaluate"),
        fresh=(),
        resume=(),
    ),
)
"""The demo's steps in order."""


@dataclasses.dataclass
class DemoConfig:
    """Options of ``ttdnet demo``."""

    output_dir: str = dataclasses.field(
        default="outputs/demo", metadata={"help": "demo folder: dataset, every run, images, report and summary"}
    )
    config_dir: str | None = dataclasses.field(
        default=None,
        metadata={
            "help": "folder of the steps' YAML files (default: configs/demo of this source tree, else ./configs/demo)"
        },
    )
    set: list[str] | None = dataclasses.field(
        default=None,
        metadata={
            "help": "extra options for one step, as STEP:OPTION=VALUE (e.g. bridge:max_train_steps=200); steps: "
            + ", ".join(step.name for step in STEPS)
        },
    )
    fresh: bool = dataclasses.field(
        default=False, metadata={"help": "delete the demo folder (only a demo folder) and start over"}
    )


def resolve_config_dir(config: DemoConfig) -> Path:
    """``--config_dir``, or ``configs/demo`` of the source tree this package runs from, or of the current folder."""
    if config.config_dir is not None:
        candidates = [Path(config.config_dir)]
    else:
        candidates = [Path(__file__).resolve().parents[1] / "configs" / "demo", Path("configs") / "demo"]
    for folder in candidates:
        if all((folder / step.config_file).is_file() for step in STEPS):
            return folder
    names = ", ".join(step.config_file for step in STEPS)
    raise ConfigError(f"no demo configs ({names}) in {' or '.join(map(str, candidates))}; pass --config_dir")


def parse_overrides(entries: list[str] | None) -> dict[str, list[str]]:
    """``STEP:OPTION=VALUE`` entries as extra arguments per step name."""
    names = {step.name for step in STEPS}
    out: dict[str, list[str]] = {}
    for entry in entries or []:
        step, _, assignment = entry.partition(":")
        option, equals, value = assignment.partition("=")
        if step not in names or not equals or not option:
            raise ConfigError(
                f"--set {entry!r} must look like STEP:OPTION=VALUE with STEP one of {', '.join(sorted(names))}"
            )
        out.setdefault(step, []).extend([f"--{option.lstrip('-')}", value])
    return out


def open_demo_folder(config: DemoConfig) -> tuple[Path, dict]:
    """The demo folder and its saved state; ``--fresh`` empties it first. Another folder's files are never touched."""
    out = Path(config.output_dir)
    state_file = out / STATE_NAME
    if out.exists() and any(out.iterdir()) and not state_file.is_file():
        raise ConfigError(f"--output_dir {out} holds files that are not a ttdnet demo; choose another folder")
    if config.fresh and out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    return out, (json.loads(state_file.read_text(encoding="utf-8")) if state_file.is_file() else {"steps": {}})


def step_arguments(step: DemoStep, out: Path, config_dir: Path, extra: list[str]) -> list[str]:
    """The step's command-line arguments, without its fresh or resume arguments."""
    paths = {"out": str(out), "data": str(out / "things-eeg2")}
    return ["--config", str(config_dir / step.config_file), *(a.format(**paths) for a in step.arguments), *extra]


def fingerprint(step: DemoStep, arguments: list[str], config_dir: Path) -> str:
    """What the step is asked to do: its command, arguments and the contents of its YAML file."""
    text = json.dumps([step.command, arguments, (config_dir / step.config_file).read_text(encoding="utf-8")])
    return sha256_text(text)


def run_command(name: str, arguments: list[str]) -> None:
    """Run one ``ttdnet`` command in this process, exactly as the command line would."""
    from ttdnet.cli import available_commands, build_parser

    command = available_commands()[name]
    config, namespace = build_parser(command).parse_config(arguments)
    status = command.run(config, namespace)
    if status not in (None, 0):
        raise TtdnetError(f"`ttdnet {name}` ended with status {status}")


def run(config: DemoConfig, namespace: argparse.Namespace) -> int:
    from ttdnet.io import atomic_write_json
    from ttdnet.stages.demo_summary import demo_summary, write_summary

    config_dir = resolve_config_dir(config)
    overrides = parse_overrides(config.set)
    out, state = open_demo_folder(config)
    upstream_ran = False
    started = time.perf_counter()
    for number, step in enumerate(STEPS, start=1):
        arguments = step_arguments(step, out, config_dir, overrides.get(step.name, []))
        digest = fingerprint(step, arguments, config_dir)
        record = state["steps"].get(step.name)
        same = record is not None and record["fingerprint"] == digest and not upstream_ran
        header = f"[{number}/{len(STEPS)}] {step.name}: ttdnet {step.command}"
        if same and record["finished"]:
            print(f"{header} (finished earlier, reused)", flush=True)
            continue
        resuming = same and not record["finished"]
        print(f"{header}{' (resuming)' if resuming else ''}", flush=True)
        state["steps"][step.name] = {"fingerprint": digest, "finished": False, "arguments": arguments}
        atomic_write_json(out / STATE_NAME, state)
        step_start = time.perf_counter()
        try:
            run_command(step.command, arguments + list(step.resume if resuming else step.fresh))
        except TtdnetError as error:
            raise TtdnetError(f"demo step {step.name} (ttdnet {step.command}): {error}") from error
        state["steps"][step.name].update(finished=True, seconds=round(time.perf_counter() - step_start, 1))
        atomic_write_json(out / STATE_NAME, state)
        upstream_ran = True
    summary = demo_summary(out, state, seconds_this_run=time.perf_counter() - started)
    print(write_summary(out, summary))
    return 0


COMMAND = Command(
    name="demo",
    summary="run the whole pipeline, EEG to scored images, on synthetic THINGS-EEG2 with tiny models (no download)",
    config_class=DemoConfig,
    run=run,
    description=(
        "Simulates raw THINGS-EEG2 recordings, preprocesses them, pretrains the EEG encoder, trains and scores "
        "retrieval, builds a tiny SDXL-architecture base, trains the Stage B bridge on it, generates an image for "
        "every test trial and scores them, then prints retrieval and reconstruction scores against chance and "
        "their shuffled baselines. Every step is the real command with the settings in configs/demo/. A rerun "
        "reuses finished steps and resumes an interrupted one; --fresh starts over."
    ),
)
