"""Contrastive losses on the global batch: gathered across processes, never using an image as its own negative.

Under data parallelism every process holds a slice of the global batch. :func:`gather_batch` concatenates the
slices of every process (rank order, the order accelerate's sharded loader draws them in), so InfoNCE's
negatives and MMD's samples are the whole global batch, as on one device. Each process then computes the loss
of the whole global batch, and only its own rows carry gradient; that gradient is scaled by the number of
processes, so after DDP averages the processes' gradients the update equals the gradient of the global-batch
loss on one device (the open_clip ``gather_features`` pattern, with the averaging made exact).

**Repeated images.** A global batch can hold the same image more than once: the same picture seen by several
subjects (``inter`` protocol), several single repetitions (``--no_train_average_repetitions``), or padding of
the last batch under distribution. Such pairs are **masked** (removed from the softmax): an EEG response is
never pushed away from its own image's features because another row happens to hold the same image. They are
not counted as extra positives; each row keeps exactly one positive, its own pair.
"""

import torch
import torch.distributed as dist
import torch.nn.functional as F


class _ScaleGradient(torch.autograd.Function):
    """Identity in the forward pass, gradient times ``factor`` in the backward pass."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor, factor: float) -> torch.Tensor:
        ctx.factor = factor
        return tensor.view_as(tensor)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return grad * ctx.factor, None


def gather_batch(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate ``tensor`` over every process (rank order); only this process's rows keep their gradient.

    Parameters
    ----------
    tensor : torch.Tensor, shape (batch, ...)
        This process's slice; every process must pass the same shape (accelerate's ``even_batches``).

    Returns
    -------
    torch.Tensor, shape (world_size * batch, ...)
        The global batch. The local rows are ``tensor`` itself, its gradient (if it has one) scaled by the world
        size (see the module docstring); the other rows are detached copies. Without a process group (one
        process) ``tensor`` is returned unchanged.
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return tensor
    world_size, rank = dist.get_world_size(), dist.get_rank()
    pieces = [torch.empty_like(tensor) for _ in range(world_size)]
    dist.all_gather(pieces, tensor.detach().contiguous())
    pieces[rank] = _ScaleGradient.apply(tensor, float(world_size)) if tensor.requires_grad else tensor
    return torch.cat(pieces)


def repeated_pairs(image_ids: torch.Tensor) -> torch.Tensor:
    """Mask of off-diagonal pairs that hold the same image, shape (batch, batch), bool."""
    same = image_ids[:, None] == image_ids[None, :]
    return same & ~torch.eye(len(image_ids), dtype=torch.bool, device=image_ids.device)


def info_nce(
    z_eeg: torch.Tensor,
    z_image: torch.Tensor,
    logit_scale: torch.Tensor,
    image_ids: torch.Tensor | None = None,
    extra_images: torch.Tensor | None = None,
    extra_ids: torch.Tensor | None = None,
) -> torch.Tensor:
    """Symmetric InfoNCE (CLIP loss): ``(CE(s·E·Iᵀ) + CE(s·I·Eᵀ)) / 2`` with ``s = exp(logit_scale)``.

    Parameters
    ----------
    z_eeg, z_image : torch.Tensor, shape (B, P)
        L2-normalised embeddings; row i of each is a positive pair.
    logit_scale : torch.Tensor, shape ()
    image_ids : torch.Tensor of int, shape (B,), optional
        Image of each row; pairs of different rows with the same image are masked out of both softmaxes.
    extra_images : torch.Tensor, shape (M, P), optional
        More image-side negatives for the EEG-to-image direction only (constant targets, e.g. precomputed CLIP
        embeddings of earlier micro-batches and a queue); an extra image equal to a row's own image
        (``extra_ids``, shape (M,)) is masked for that row.
    """
    logits = logit_scale.exp() * z_eeg @ z_image.T
    if image_ids is not None:
        logits = logits.masked_fill(repeated_pairs(image_ids), float("-inf"))
    labels = torch.arange(logits.shape[0], device=logits.device)
    eeg_to_image = logits
    if extra_images is not None and len(extra_images):
        extra = logit_scale.exp() * z_eeg @ extra_images.T
        if image_ids is not None and extra_ids is not None:
            extra = extra.masked_fill(image_ids[:, None] == extra_ids[None, :], float("-inf"))
        eeg_to_image = torch.cat([logits, extra], dim=1)
    return (F.cross_entropy(eeg_to_image, labels) + F.cross_entropy(logits.T, labels)) / 2


class ImageNegatives:
    """Constant image-side negatives: the earlier micro-batches of this accumulation window, and a FIFO queue.

    With gradient accumulation each micro-batch sees only its own (global) batch; when the image embeddings are
    precomputed constants, the targets of the window's earlier micro-batches and of recent windows are exact
    extra negatives for the EEG-to-image direction. Register it for checkpointing so a resumed run restores it.

    Parameters
    ----------
    queue_size : int
        Targets kept from finished windows (0: the current window only).
    """

    def __init__(self, queue_size: int = 0):
        self.queue_size = queue_size
        self.window: list[tuple[torch.Tensor, torch.Tensor]] = []
        self.queue_embeddings = torch.zeros(0)
        self.queue_ids = torch.zeros(0, dtype=torch.long)

    def extra(self, device) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """``(embeddings (M, P), ids (M,))`` of every stored negative, or ``(None, None)``."""
        parts = [(self.queue_embeddings, self.queue_ids)] if len(self.queue_ids) else []
        parts += self.window
        if not parts:
            return None, None
        return torch.cat([e for e, _ in parts]).to(device), torch.cat([i for _, i in parts]).to(device)

    def add(self, embeddings: torch.Tensor, ids: torch.Tensor, end_of_window: bool) -> None:
        """Store a micro-batch's targets; at the end of a window move the window into the queue."""
        self.window.append((embeddings.detach().cpu(), ids.detach().cpu()))
        if not end_of_window:
            return
        if self.queue_size > 0:
            kept = [(self.queue_embeddings, self.queue_ids)] if len(self.queue_ids) else []
            parts = kept + self.window
            embeddings, ids = torch.cat([e for e, _ in parts]), torch.cat([i for _, i in parts])
            self.queue_embeddings, self.queue_ids = embeddings[-self.queue_size :], ids[-self.queue_size :]
        self.window = []

    def state_dict(self) -> dict:
        return {"queue_embeddings": self.queue_embeddings, "queue_ids": self.queue_ids}

    def load_state_dict(self, state: dict) -> None:
        self.queue_embeddings, self.queue_ids, self.window = state["queue_embeddings"], state["queue_ids"], []


MMD_SIGMAS = (0.1, 0.2, 0.5, 1.0, 2.0)


def mmd_rbf(x: torch.Tensor, y: torch.Tensor, sigmas: tuple[float, ...] = MMD_SIGMAS) -> torch.Tensor:
    """Multi-kernel RBF MMD² between two samples (SUPA-EEG's coarse alignment term).

    ``k(d²) = mean_σ exp(−d² / 2σ²)``. Within-sample terms are unbiased (diagonal removed, ÷ B(B−1)); the
    cross term is the plain mean. Result ``Kxx + Kyy − 2·Kxy`` clamped at 0; 0 when B < 2.

    Parameters
    ----------
    x, y : torch.Tensor, shape (B, P)
    """
    n = x.shape[0]
    if n < 2:
        return x.new_zeros(())

    def kernel(a, b):
        # Squared distances through one matrix product (much cheaper than cdist's backward on the CPU).
        d2 = (a.pow(2).sum(1, keepdim=True) + b.pow(2).sum(1)[None] - 2 * a @ b.T).clamp_min(0)
        return sum(torch.exp(-d2 / (2 * s * s)) for s in sigmas) / len(sigmas)

    off = 1 - torch.eye(n, device=x.device, dtype=x.dtype)
    kxx = (kernel(x, x) * off).sum() / (n * (n - 1))
    kyy = (kernel(y, y) * off).sum() / (n * (n - 1))
    kxy = kernel(x, y).mean()
    return (kxx + kyy - 2 * kxy).clamp_min(0)


def mmd_weight(epoch: int, mmd_epochs: int, start: float, end: float) -> float:
    """Weight of the MMD term at 1-indexed ``epoch``: linear from ``start`` (epoch 1) to ``end`` (epoch
    ``mmd_epochs``), 0 afterwards or when ``mmd_epochs`` is 0. The loss is ``w·MMD² + (1 − w)·InfoNCE``."""
    if mmd_epochs <= 0 or epoch > mmd_epochs:
        return 0.0
    if mmd_epochs == 1:
        return float(start)
    return float(start + (end - start) * (epoch - 1) / (mmd_epochs - 1))
