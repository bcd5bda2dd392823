"""Checks that need a real process group: run ``ACCELERATE_USE_CPU=1 torchrun --nproc_per_node 2 THIS MODE OUT``.

``contrastive``: every process builds the same tiny retrieval model and the same global batch (with repeated
images), takes its own slice, computes the gathered InfoNCE + MMD loss through accelerate's DDP wrapper and
backpropagates. The main process also computes the loss and gradient of an unwrapped copy on the whole global
batch, as one process would.

``validation``: Stage A's validation loss over 11 windows (3 batches of 4, so the second process gets a padded
batch of repeated windows) on 2 processes, against the same loss on one process.

The main process writes the differences to the JSON file ``OUT``.
"""

import copy
import json
import sys

import torch
from accelerate import Accelerator

from ttdnet.models.registry import DEFAULT_SIGNAL, build_encoder
from ttdnet.stages.contrastive import gather_batch, info_nce, mmd_rbf
from ttdnet.stages.retrieval_model import RetrievalModel


def loss_of(model, eeg, features, ids, gather):
    z_eeg, z_image, scale = model(eeg, features)
    if gather:
        z_eeg, z_image, ids = gather_batch(z_eeg), gather_batch(z_image), gather_batch(ids)
    return 0.3 * mmd_rbf(z_eeg, z_image) + 0.7 * info_nce(z_eeg, z_image, scale, ids)


def contrastive(accelerator) -> dict:
    torch.manual_seed(0)
    encoder = build_encoder("eegproject", DEFAULT_SIGNAL, "tiny")
    model = RetrievalModel(
        encoder, "eegproject", n_layers=2, feature_dim=6, n_subjects=1, proj_dim=8, image_hidden_dim=12,
        layer_mode="uniform",
    )  # fmt: skip
    reference = copy.deepcopy(model)
    generator = torch.Generator().manual_seed(1)
    eeg = torch.randn(8, 17, 100, generator=generator)
    ids = torch.tensor([0, 1, 2, 3, 0, 5, 2, 7])  # images 0 and 2 appear twice, once on each process
    features = torch.randn(8, 2, 6, generator=generator)[ids]
    wrapped = accelerator.prepare(model)
    wrapped.eval()  # no dropout, so both computations see the same network
    rank, size = accelerator.process_index, accelerator.num_processes
    mine = slice(rank * 8 // size, (rank + 1) * 8 // size)
    loss = loss_of(wrapped, eeg[mine], features[mine], ids[mine], gather=True)
    accelerator.backward(loss)
    reference.eval()
    expected = loss_of(reference, eeg, features, ids, gather=False)
    expected.backward()
    unwrapped = accelerator.unwrap_model(wrapped)
    pairs = [(p.grad, q.grad) for p, q in zip(unwrapped.parameters(), reference.parameters()) if q.grad is not None]
    return {
        "world_size": size,
        "loss_gap": abs(float(loss) - float(expected)),
        "max_gradient_gap": max(float((a - b).abs().max()) for a, b in pairs),
        "n_gradients": len(pairs),
        "gradient_norm": float(torch.sqrt(sum((b**2).sum() for _, b in pairs))),
    }


class LoopView:
    """What :func:`ttdnet.stages.pretrain.validation_loss` reads from a training loop."""

    def __init__(self, model, accelerator, loader):
        self.unwrapped_model, self.accelerator, self.eval_loaders = model, accelerator, (loader,)


class OneProcess:
    @staticmethod
    def gather_for_metrics(tensor):
        return tensor


def validation(accelerator) -> dict:
    from torch.utils.data import DataLoader

    from ttdnet.models import InceptSADEncoder, MaskedTemporalPretraining, encoder_preset
    from ttdnet.stages.pretrain import validation_loss
    from ttdnet.stages.pretrain_data import IndexedWindows

    torch.manual_seed(0)
    encoder = InceptSADEncoder(**encoder_preset("tiny"))
    model = MaskedTemporalPretraining(encoder, decoder_dim=16, decoder_depth=1, decoder_heads=2)
    signal = encoder.signal
    windows = list(torch.randn(11, signal.n_chans, signal.n_times, generator=torch.Generator().manual_seed(1)))
    loader = DataLoader(IndexedWindows(windows), batch_size=4)
    value = validation_loss(LoopView(model, accelerator, accelerator.prepare(loader)), seed=3)
    reference = validation_loss(LoopView(model, OneProcess(), loader), seed=3)
    return {"world_size": accelerator.num_processes, "validation_gap": abs(value - reference), "value": value}


if __name__ == "__main__":
    mode, out = sys.argv[1], sys.argv[2]
    accelerator = Accelerator()
    report = {"contrastive": contrastive, "validation": validation}[mode](accelerator)
    if accelerator.is_main_process:
        with open(out, "w", encoding="utf-8") as handle:
            json.dump(report, handle)
    accelerator.wait_for_everyone()
