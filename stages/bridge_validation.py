"""Stage B validation on the training-side validation split: held-out training concepts, never the test set.

Three views of the same fixed validation trials (EEG averaged over repetitions, as the test protocol does):

* the **diffusion loss** at fixed timesteps with fixed noise (seeded per trial and timestep), so values are
  comparable across steps and runs: the default selection metric;
* **CLIP-space top-1** of the CLIP-alignment head, on galleries of one image per held-out concept (the
  retrieval validation protocol), when the head exists;
* a **grid** of images generated from a few trials with fixed seeds, beside their ground truth.
"""

import dataclasses
import logging
from pathlib import Path

import numpy as np
import torch

from ttdnet.data import ThingsEEG2Dataset
from ttdnet.errors import TtdnetError
from ttdnet.eval.retrieval import retrieval_scores
from ttdnet.stages.diffusion_objective import noisy_latents_and_target
from ttdnet.stages.eeg_sampling import sample_images
from ttdnet.stages.retrieval_eval import validation_galleries


logger = logging.getLogger(__name__)


@dataclasses.dataclass
class ValidationTrials:
    """The fixed validation trials.

    Attributes
    ----------
    dataset : ThingsEEG2Dataset
        The validation split, repetitions averaged.
    loss_items : list of int
        Items of ``dataset`` scored by the diffusion loss.
    image_items : list of int
        Items rendered in the grid: one image per held-out concept.
    galleries : list of numpy.ndarray
        Image rows of the CLIP-retrieval galleries (one image per held-out concept).
    """

    dataset: ThingsEEG2Dataset
    loss_items: list[int]
    image_items: list[int]
    galleries: list[np.ndarray]


def validation_trials(dataset: ThingsEEG2Dataset, n_loss: int, n_images: int) -> ValidationTrials:
    """Fixed trials of a validation split: the first ``n_loss`` items, and one image of each of the first
    ``n_images`` held-out concepts for the grid. CLIP galleries need at least two held-out concepts."""
    if len(dataset) == 0:
        raise TtdnetError("the validation split is empty; raise --val_fraction (training concepts held out)")
    first_item: dict[int, int] = {}
    for item, row in enumerate(dataset.image_indices):
        first_item.setdefault(int(row), item)
    concept_of_row = dataset.metadata.concept_indices(dataset.partition)
    one_per_concept: dict[int, int] = {}
    for row, item in first_item.items():
        one_per_concept.setdefault(int(concept_of_row[row]), item)
    try:
        galleries = validation_galleries(dataset)
    except TtdnetError:
        galleries = []
    image_items = list(one_per_concept.values())[:n_images]
    return ValidationTrials(dataset, list(range(min(n_loss, len(dataset)))), image_items, galleries)


def _batches(items: list[int], size: int):
    for start in range(0, len(items), size):
        yield items[start : start + size]


@torch.no_grad()
def diffusion_validation_loss(model, trials, cache, scheduler, scaling_factor, timesteps, seed, batch_size, device):
    """Mean denoising MSE over the loss trials × ``timesteps``, with noise seeded by (seed, trial, timestep)."""
    model.eval()
    total, count = 0.0, 0
    for items in _batches(trials.loss_items, batch_size):
        samples = [trials.dataset[item] for item in items]
        eeg = torch.stack([sample.eeg for sample in samples]).to(device)
        rows = torch.tensor([sample.image_index for sample in samples])
        latents = cache.latents(rows).to(device) * scaling_factor
        time_ids = cache.time_ids(rows).to(device)
        for t in timesteps:
            noise = torch.stack(
                [
                    torch.randn(
                        latents.shape[1:], generator=torch.Generator().manual_seed(seed * 1_000_003 + item * 1009 + t)
                    )
                    for item in items
                ]  # fmt: skip
            ).to(device)
            steps = torch.full((len(items),), t, dtype=torch.long, device=device)
            noisy, target = noisy_latents_and_target(scheduler, latents, noise, steps)
            prediction, _, _ = model(eeg, noisy, steps, time_ids)
            total += float(((prediction.float() - target.float()) ** 2).mean(dim=(1, 2, 3)).sum())
            count += len(items)
    return total / count


@torch.no_grad()
def clip_validation_top1(model, trials, clip_targets: torch.Tensor, batch_size: int, device) -> float:
    """Top-1 of the CLIP head's embeddings against the CLIP targets, on one-image-per-concept galleries."""
    model.eval()
    first_item = {}
    for item, row in enumerate(trials.dataset.image_indices):
        first_item.setdefault(int(row), item)
    scores = []
    for gallery in trials.galleries:
        items = [first_item[int(row)] for row in gallery]
        embedded = []
        for chunk in _batches(items, batch_size):
            eeg = torch.stack([trials.dataset[item].eeg for item in chunk]).to(device)
            embedded.append(model.conditioner(eeg).clip_embedding.float().cpu())
        similarity = torch.cat(embedded) @ clip_targets[torch.as_tensor(gallery)].float().T
        scores.append(retrieval_scores(similarity.numpy(), ks=[], ts=[1])["top1"].value)
    return float(np.mean(scores))


@torch.no_grad()
def render_validation_grid(model, vae, scheduler, trials, config, device, original_size: tuple[int, int]):
    """``[ground truth | generated]`` rows for the grid trials; fixed seeds; the learned null as CFG negative."""
    from diffusers import StableDiffusionXLPipeline
    from diffusers.utils import make_image_grid

    from ttdnet.data.image_crop import open_rgb, resize_center_crop

    model.eval()
    pipeline = StableDiffusionXLPipeline(
        vae=vae, text_encoder=None, text_encoder_2=None, tokenizer=None, tokenizer_2=None, unet=model.unet,
        scheduler=scheduler,
    )  # fmt: skip
    pipeline.set_progress_bar_config(disable=True)
    samples = [trials.dataset[item] for item in trials.image_items]
    eeg = torch.stack([sample.eeg for sample in samples]).to(device)
    generators = [torch.Generator(device).manual_seed(config.seed + i) for i in range(len(samples))]
    generated = sample_images(pipeline, model.conditioner, eeg, generators,
                              num_inference_steps=config.validation_inference_steps,
                              guidance_scale=config.validation_guidance_scale, height=config.resolution,
                              width=config.resolution, original_size=original_size)  # fmt: skip
    paths = trials.dataset.metadata.relative_paths("training")
    truth = [resize_center_crop(open_rgb(trials.dataset.image_dir / paths[s.image_index]), config.resolution)[0]
             for s in samples]  # fmt: skip
    cells = [image for pair in zip(truth, generated) for image in pair]
    return make_image_grid(cells, rows=len(samples), cols=2), generated


def save_grid(grid, folder: Path, step: int) -> Path:
    """Write ``folder/step-XXXXXX.png`` atomically."""
    from ttdnet.io import atomic_open

    path = folder / f"step-{step:06d}.png"
    with atomic_open(path, "wb") as handle:
        grid.save(handle, format="PNG")
    return path


def log_grid(accelerator, grid, step: int) -> None:
    """Send the grid to the trackers (TensorBoard NHWC, W&B image), at the run's step."""
    pixels = np.asarray(grid)[None]
    for tracker in accelerator.trackers:
        if tracker.name == "tensorboard":
            tracker.writer.add_images("validation", pixels, step, dataformats="NHWC")
        elif tracker.name == "wandb":
            import wandb

            tracker.log({"validation": [wandb.Image(grid, caption="ground truth | generated")]}, step=step)
