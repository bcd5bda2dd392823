"""The generation loop behind ``ttdnet generate`` (options in ``generate.py``).

* **Seeds.** Image ``(trial, sample)`` gets its own ``torch.Generator`` seeded with
  ``SeedSequence([seed, crc32(trial id), sample])``, so an image does not depend on the batch it falls in,
  on the order of the inputs or on how many images came before; the seed is written to the manifest.
* **Batches** mix trials and samples (``--batch_size`` images per pipeline call) and are fixed slices of the
  job list, so a resumed run batches every image as an uninterrupted one does: the same command gives the
  same bytes. Another batch size changes only floating-point rounding (a few intensity levels at most).
* **Resume.** Each PNG is written atomically, then its manifest line is appended. A rerun keeps every image
  already written, writes the manifest lines an interruption lost, and generates only the rest, so a killed
  run leaves no half-written image and no line without its image, and the set completes without duplicates.
* **One folder, one set.** A rerun whose options would change the images (bridge, EEG, base, sampler, steps,
  guidance, size, seed, precision) is refused; more ``--num_samples`` or another ``--batch_size`` are fine.
"""

import json
import logging
import time
import zlib
from pathlib import Path

import numpy as np
import torch

from ttdnet.devices import resolve_device
from ttdnet.errors import TtdnetError
from ttdnet.io import atomic_open, atomic_write_text, remove_stale_temporaries


logger = logging.getLogger(__name__)

MAY_CHANGE = frozenset({"output_dir", "batch_size", "num_samples", "grid_trials", "device", "overwrite", "cache_dir"})


def image_seed(seed: int, trial: str, sample: int) -> int:
    """The seed of image ``(trial, sample)``: ``SeedSequence([seed, crc32(trial), sample])``, 32 bits."""
    return int(np.random.SeedSequence([seed, zlib.crc32(trial.encode()), sample]).generate_state(1)[0])


def make_scheduler(name: str, config):
    """A fresh inference scheduler of the base's noise schedule: ``dpmpp_2m_karras``, ``euler`` or ``ddim``."""
    from diffusers import DDIMScheduler, DPMSolverMultistepScheduler, EulerDiscreteScheduler

    if name == "dpmpp_2m_karras":
        return DPMSolverMultistepScheduler.from_config(config, algorithm_type="dpmsolver++", use_karras_sigmas=True)
    if name == "euler":
        return EulerDiscreteScheduler.from_config(config)
    return DDIMScheduler.from_config(config)


def device_and_dtype(device: str | None, mixed_precision: str) -> tuple[torch.device, torch.dtype]:
    """The device (a clear error for one that does not exist) and the UNet dtype."""
    device = resolve_device(device)
    if mixed_precision == "auto":
        if device.type == "cpu":
            return device, torch.float32  # bf16 on CPUs without native support is far slower than fp32
        return device, torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return device, {"no": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[mixed_precision]


def open_output(config) -> Path:
    """Check ``output_dir`` (one set of images per folder), clear it with ``--overwrite`` and of a killed run's
    temporary files, save ``config.yaml``."""
    import shutil

    from ttdnet.config import save_config
    from ttdnet.stages.run_folder import CONFIG_NAME, RunFolderError, changed_options, read_saved_config

    out = Path(config.output_dir)
    entries = list(out.iterdir()) if out.is_dir() else []
    saved = read_saved_config(out / CONFIG_NAME, "generate") if (out / CONFIG_NAME).is_file() else None
    if entries and saved is None:
        raise RunFolderError(f"--output_dir {out} holds files but no generation config.yaml; choose another folder")
    if saved is not None and config.overwrite:
        for entry in entries:
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
    elif saved is not None:
        changed_options(saved, config, MAY_CHANGE, f"cannot add to the images in {out}", "generated")
    (out / "images").mkdir(parents=True, exist_ok=True)
    for folder in (out, out / "images"):  # what a killed run was writing
        remove_stale_temporaries(folder)
    save_config(config, out / CONFIG_NAME, command="generate")
    return out


def read_rows(manifest: Path) -> dict[tuple[str, int], dict]:
    """Complete manifest lines by (trial, sample); a line cut short by an interruption is dropped."""
    rows = {}
    if manifest.is_file():
        for line in manifest.read_text(encoding="utf-8").splitlines():
            try:
                row = json.loads(line)
                rows[(str(row["trial"]), int(row["sample"]))] = row
            except (ValueError, KeyError, TypeError):
                continue
    return rows


def make_grid(out: Path, trials, n_trials: int, n_samples: int) -> Path | None:
    """``grid.png``: a row per trial, the ground truth (when known) then the samples, at the images' size."""
    from diffusers.utils import make_image_grid
    from PIL import Image

    from ttdnet.data.image_crop import open_rgb, resize_center_crop

    if n_trials == 0:
        return None
    rows = []
    for index in range(min(n_trials, len(trials.ids))):
        samples = [open_rgb(out / "images" / f"{trials.ids[index]}_s{k}.png") for k in range(n_samples)]
        size = samples[0].size
        truth = trials.ground_truth[index]
        first = resize_center_crop(open_rgb(truth), size[0])[0] if truth else Image.new("RGB", size, "white")
        rows.append([first, *samples])
    grid = make_image_grid([cell for row in rows for cell in row], rows=len(rows), cols=n_samples + 1)
    path = out / "grid.png"
    with atomic_open(path, "wb") as handle:
        grid.save(handle, format="PNG")
    return path


def generate(config) -> dict:
    """Generate every missing image of ``config``; return a summary."""
    from tqdm.auto import tqdm

    from ttdnet.stages.bridge_models import load_trained_bridge
    from ttdnet.stages.eeg_inputs import Expected, load_eeg_trials
    from ttdnet.stages.eeg_sampling import sample_images

    logging.basicConfig(format="%(asctime)s - %(levelname)s - %(name)s - %(message)s", level=logging.INFO)
    if config.bridge is None or config.eeg is None:
        raise TtdnetError("give --bridge (a trained Stage B folder) and --eeg (the EEG to generate from)")
    device, dtype = device_and_dtype(config.device, config.mixed_precision)
    base = {key: getattr(config, key) for key in ("pretrained_model_name_or_path", "pretrained_vae_model_name_or_path",
                                                  "revision", "variant", "cache_dir")}  # fmt: skip
    pipeline, conditioner, record = load_trained_bridge(config.bridge, base)
    signal = conditioner.signal
    expected = Expected(tuple(signal.ch_names), signal.sfreq, signal.n_times, record.get("eeg", {}).get("tmin"))
    trials = load_eeg_trials(config.eeg, expected, config.subject, config.average_repetitions)
    out = open_output(config)
    height, width = config.height or record["resolution"], config.width or record["resolution"]
    original_size = tuple(record["original_size"]) if record.get("original_size") else None
    pipeline.scheduler = make_scheduler(config.scheduler, pipeline.scheduler.config)
    pipeline.unet.to(device, dtype)
    pipeline.vae.to(device, dtype if record.get("vae") else torch.float32)  # the SDXL VAE overflows in fp16
    pipeline.set_progress_bar_config(disable=True)
    conditioner.to(device)

    manifest = out / "manifest.jsonl"
    rows = read_rows(manifest)
    jobs = [(t, k) for t in range(len(trials.ids)) for k in range(config.num_samples)]

    # A manifest is read from anywhere (`ttdnet evaluate --manifest`), so it never holds a cwd-relative path.
    ground_truth = [None if path is None else str(Path(path).resolve()) for path in trials.ground_truth]

    def row_of(t: int, k: int) -> dict:
        return {
            "trial": trials.ids[t], "sample": k, "image": f"images/{trials.ids[t]}_s{k}.png",
            "ground_truth": ground_truth[t], "seed": image_seed(config.seed, trials.ids[t], k),
            "eeg_source": trials.sources[t], "bridge": record["source"], "scheduler": config.scheduler,
            "num_inference_steps": config.num_inference_steps, "guidance_scale": config.guidance_scale,
        }  # fmt: skip

    written = [(t, k) for t, k in jobs if (out / row_of(t, k)["image"]).is_file()]
    kept = {key: rows[key] for key in rows if (out / rows[key]["image"]).is_file()}
    kept |= {(trials.ids[t], k): row_of(t, k) for t, k in written if (trials.ids[t], k) not in kept}
    atomic_write_text(manifest, "".join(json.dumps(row) + "\n" for row in kept.values()))
    done = set(written)
    # Batches are fixed slices of the whole job list, so a resumed run computes every image in the same batch as
    # an uninterrupted run would (batched arithmetic rounds differently for other batch compositions).
    batches = [jobs[start : start + config.batch_size] for start in range(0, len(jobs), config.batch_size)]
    batches = [batch for batch in batches if not set(batch) <= done]
    progress = tqdm(total=len(jobs), initial=len(done), desc="images", unit="img")
    started = time.perf_counter()
    with open(manifest, "a", encoding="utf-8") as lines:
        for batch in batches:
            eeg = torch.from_numpy(trials.eeg[[t for t, _ in batch]]).to(device)
            generators = [torch.Generator(device).manual_seed(row_of(t, k)["seed"]) for t, k in batch]
            settings = {"num_inference_steps": config.num_inference_steps, "guidance_scale": config.guidance_scale}
            images = sample_images(pipeline, conditioner, eeg, generators, height=height, width=width,
                                   original_size=original_size, **settings)  # fmt: skip
            for image, (t, k) in zip(images, batch):
                if (t, k) in done:
                    continue
                row = row_of(t, k)
                with atomic_open(out / row["image"], "wb") as handle:
                    image.save(handle, format="PNG")
                lines.write(json.dumps(row) + "\n")
                lines.flush()
                progress.update(1)
    progress.close()
    seconds = time.perf_counter() - started
    grid = make_grid(out, trials, config.grid_trials, config.num_samples)
    return {
        "output_dir": str(out), "images": len(jobs), "generated_now": len(jobs) - len(done),
        "trials": len(trials.ids), "manifest": str(manifest), "grid": str(grid) if grid else None,
        "device": str(device), "dtype": str(dtype).removeprefix("torch."), "seconds_generating": round(seconds, 3),
        "images_per_second": round((len(jobs) - len(done)) / seconds, 3) if len(jobs) > len(done) else None,
    }  # fmt: skip
