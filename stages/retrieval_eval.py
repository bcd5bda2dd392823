"""Scoring a retrieval model: the test gallery, and validation galleries that mirror it.

The test gallery holds one image per test concept (200 in THINGS-EEG2), each queried with the EEG of that
image. Validation follows the same protocol on the held-out *training* concepts: a gallery holds **one image
per held-out concept**, so a sibling image of the same concept is never a distractor. Held-out concepts have
several images (10 in THINGS-EEG2), so there are that many validation galleries — the first image of every
held-out concept, the second, and so on — and the validation score is their mean. Every score comes from
:func:`ttdnet.eval.retrieval.retrieval_scores`, the definitions the test report uses.
"""

import numpy as np
import torch
from torch.utils.data import DataLoader

from ttdnet.data import ThingsEEG2Dataset
from ttdnet.errors import TtdnetError
from ttdnet.eval.retrieval import retrieval_keys, retrieval_scores
from ttdnet.stages.retrieval_model import RetrievalModel
from ttdnet.stages.train_retrieval import DEFAULT_KWAY, DEFAULT_TOPK


@torch.no_grad()
def embed_queries(model: RetrievalModel, dataset: ThingsEEG2Dataset, batch_size: int, device) -> tuple:
    """EEG embeddings of every (subject, image) of ``dataset``, averaging repetition embeddings if it has several.

    Returns
    -------
    embeddings : torch.Tensor, shape (n_items, proj_dim)
        L2-normalised (re-normalised after averaging).
    subjects : numpy.ndarray of int, shape (n_items,)
    rows : numpy.ndarray of int, shape (n_items,)
        Image row of each item.
    """
    sums: dict[tuple[int, int], torch.Tensor] = {}
    counts: dict[tuple[int, int], int] = {}
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False)
    for batch in loader:
        z = model.encode_eeg(batch.eeg.to(device)).float().cpu()
        for vector, subject, row in zip(z, batch.subject.tolist(), batch.image_index.tolist()):
            key = (subject, row)
            sums[key] = sums[key] + vector if key in sums else vector.clone()
            counts[key] = counts.get(key, 0) + 1
    keys = sorted(sums)
    embeddings = torch.stack([sums[key] / counts[key] for key in keys])
    embeddings = torch.nn.functional.normalize(embeddings, dim=-1)
    return embeddings, np.array([k[0] for k in keys]), np.array([k[1] for k in keys])


@torch.no_grad()
def embed_images(model: RetrievalModel, image_features: torch.Tensor, rows: np.ndarray, batch_size: int, device):
    """Image-tower embeddings of ``image_features[rows]`` in ``eval()`` mode (router prior only), shape (n, P)."""
    chunks = []
    for start in range(0, len(rows), batch_size):
        chunk = image_features[torch.as_tensor(rows[start : start + batch_size])].to(device)
        chunks.append(model.encode_image(chunk).float().cpu())
    return torch.cat(chunks)


def evaluate_split(
    model: RetrievalModel,
    dataset: ThingsEEG2Dataset,
    image_features: torch.Tensor,
    ks: list[int],
    ts: list[int],
    mc_trials: int,
    seed: int,
    batch_size: int,
    device,
) -> dict[int, dict]:
    """Zero-shot scores per subject: queries = the subject's EEG of each image, gallery = those images.

    The model is put in ``eval()`` mode, so the router uses its global prior only (no subject input).

    Returns
    -------
    dict
        ``{subject: {key: RetrievalScore}}`` from :func:`ttdnet.eval.retrieval.retrieval_scores`.
    """
    model.eval()
    queries, subjects, rows = embed_queries(model, dataset, batch_size, device)
    out = {}
    for subject in np.unique(subjects):
        mine = subjects == subject
        gallery = embed_images(model, image_features, rows[mine], batch_size, device)
        similarity = (queries[mine] @ gallery.T).numpy()
        out[int(subject)] = retrieval_scores(similarity, ks=ks, ts=ts, mc_trials=mc_trials, seed=seed)
    return out


def check_test_gallery(kway: list[int], topk: list[int], gallery_size: int) -> dict[str, str]:
    """Check ``--kway`` and ``--topk`` against the test gallery, before training.

    Parameters
    ----------
    kway, topk : list of int
    gallery_size : int
        Images in the test gallery (the test images of the data).

    Returns
    -------
    dict of str to str
        For the default lists (:data:`DEFAULT_KWAY`, :data:`DEFAULT_TOPK`), the values too large for the gallery
        (``{"kway_not_computed": "50, 100, 200: larger than the test gallery of 20 images"}``), for the results.

    Raises
    ------
    TtdnetError
        A value the user chose is larger than the gallery: its score could not be computed.
    """
    notes = {}
    checked = (("kway", kway, DEFAULT_KWAY, "k-way sizes"), ("topk", topk, DEFAULT_TOPK, "top-t cut-offs"))
    for name, values, default, what in checked:
        beyond = sorted({value for value in values if value > gallery_size})
        if not beyond:
            continue
        shown = " ".join(str(value) for value in beyond)
        if list(values) != list(default):
            raise TtdnetError(
                f"--{name} {shown}: larger than the test gallery of {gallery_size} images, so never computed; "
                f"give {what} of at most {gallery_size}"
            )
        listed = ", ".join(str(value) for value in beyond)
        notes[f"{name}_not_computed"] = f"{listed}: larger than the test gallery of {gallery_size} images"
    return notes


def validation_galleries(dataset: ThingsEEG2Dataset) -> list[np.ndarray]:
    """Galleries of one image per held-out concept: the j-th image of every concept, for each j.

    Parameters
    ----------
    dataset : ThingsEEG2Dataset
        The validation split (held-out training concepts).

    Returns
    -------
    list of numpy.ndarray of int
        Image rows of each gallery; a gallery includes only concepts that have a j-th image.

    Raises
    ------
    TtdnetError
        Fewer than two held-out concepts: no gallery can rank anything.
    """
    rows = np.unique(dataset.image_indices)
    concepts = dataset.metadata.concept_indices(dataset.partition)[rows]
    by_concept = [rows[concepts == concept] for concept in np.unique(concepts)]
    if len(by_concept) < 2:
        raise TtdnetError(
            f"the validation split holds {len(by_concept)} concept(s); a gallery of one image per held-out "
            "concept needs at least 2: raise --val_fraction, or use --model_selection last"
        )
    depth = max(len(images) for images in by_concept)
    galleries = [np.array([images[j] for images in by_concept if len(images) > j]) for j in range(depth)]
    return [gallery for gallery in galleries if len(gallery) >= 2]


def validation_keys(gallery_size: int, ks: list[int], ts: list[int]) -> list[str]:
    """The score keys :func:`validation_scores` produces for galleries of at least ``gallery_size`` images."""
    return retrieval_keys(gallery_size, ks, ts)


def check_selection_metric(metric: str, galleries: list[np.ndarray], ks: list[int], ts: list[int]) -> None:
    """Raise :class:`TtdnetError` unless :func:`validation_scores` on ``galleries`` yields ``metric``."""
    smallest = min(len(gallery) for gallery in galleries)
    available = validation_keys(smallest, ks, ts)
    if metric not in available:
        raise TtdnetError(
            f"--selection_metric {metric} cannot be computed on validation galleries of {smallest} held-out "
            f"concepts; choose one of {available}"
        )


def validation_scores(
    model: RetrievalModel,
    dataset: ThingsEEG2Dataset,
    image_features: torch.Tensor,
    galleries: list[np.ndarray],
    ks: list[int],
    ts: list[int],
    batch_size: int,
    device,
) -> dict[str, float]:
    """Mean over subjects and galleries of each exact score (keys of :func:`validation_keys`)."""
    model.eval()
    queries, subjects, rows = embed_queries(model, dataset, batch_size, device)
    position = {(int(s), int(r)): i for i, (s, r) in enumerate(zip(subjects, rows))}
    gallery_size = min(len(gallery) for gallery in galleries)
    wanted = validation_keys(gallery_size, ks, ts)
    embedded = [embed_images(model, image_features, gallery, batch_size, device) for gallery in galleries]
    totals = dict.fromkeys(wanted, 0.0)
    count = 0
    for subject in np.unique(subjects):
        for gallery, images in zip(galleries, embedded):
            mine = queries[[position[(int(subject), int(row))] for row in gallery]]
            scores = retrieval_scores((mine @ images.T).numpy(), ks=ks, ts=ts)
            for key in wanted:
                totals[key] += scores[key].value
            count += 1
    return {key: total / count for key, total in totals.items()}
