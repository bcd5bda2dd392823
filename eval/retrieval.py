"""Zero-shot retrieval scores of a query × gallery similarity matrix.

One definition serves the retrieval model's validation, its test report and anything else that ranks a
gallery: full-gallery top-t and k-way top-t, exact (the expectation over all distractor draws) and, on
request, a seeded Monte-Carlo estimate with its 95% Wilson interval (within [0, 1]). The ranking rule
(ties count against the target) and the estimators live in :mod:`ttdnet.ranking`, which the
reconstruction suite's n-way identification uses too; ``docs/evaluation.md`` writes the definitions out.
"""

import dataclasses
from collections.abc import Iterator, Sequence

import numpy as np

from ttdnet import ranking


@dataclasses.dataclass
class RetrievalScore:
    """One retrieval metric: key (``top1``, ``top5_50way``, ...), value, chance and per-query scores.

    ``ci95`` is set for the Monte-Carlo keys only, with ``ci95_method`` ``"wilson"``
    (:func:`ttdnet.ranking.monte_carlo_ci`).
    """

    key: str
    value: float
    chance: float
    per_query: np.ndarray
    ci95: tuple[float, float] | None = None
    definition: str = ""
    ci95_method: str | None = None


def retrieval_keys(gallery_size: int, ks: Sequence[int], ts: Sequence[int]) -> list[str]:
    """Keys of the exact scores :func:`retrieval_scores` returns for a gallery of ``gallery_size`` images."""
    return [key for key, _, _ in _score_plan(gallery_size, ks, ts)]


def retrieval_scores(
    similarity: np.ndarray,
    ks: Sequence[int] = (2, 4, 10, 50, 100, 200),
    ts: Sequence[int] = (1, 5),
    targets: np.ndarray | None = None,
    mc_trials: int = 0,
    seed: int = 0,
) -> dict[str, RetrievalScore]:
    """Every retrieval metric from one similarity matrix.

    Parameters
    ----------
    similarity : numpy.ndarray
        ``(Q, G)`` query × gallery similarities (cosine of L2-normalised embeddings).
    ks : sequence of int
        k-way sizes; those above G are skipped.
    ts : sequence of int
        Top-t cut-offs; those above G are skipped, and combinations with t >= k (always 1).
    targets : numpy.ndarray, optional
        Gallery index of each query's target (default the diagonal).
    mc_trials : int
        If > 0, also a seeded Monte-Carlo estimate per (k, t) (key suffix ``_mc``) with its 95% Wilson interval.
    seed : int

    Returns
    -------
    dict
        ``top{t}`` (full-gallery, chance t/G) and ``top{t}_{k}way`` (exact, chance t/k), plus ``_mc`` keys,
        in the order of :func:`retrieval_keys`.
    """
    similarity = np.asarray(similarity, dtype=np.float64)
    n_gallery = similarity.shape[1]
    out: dict[str, RetrievalScore] = {}
    for key, t, k in _score_plan(n_gallery, ks, ts):
        if k is None:
            hits = ranking.top_k(similarity, t, targets)
            out[key] = RetrievalScore(
                key, float(hits.mean()), t / n_gallery, hits, definition=f"{n_gallery}-way top-{t}, ties pessimistic"
            )
            continue
        per = ranking.kway_top_exact(similarity, k, t, targets)
        out[key] = RetrievalScore(key, float(per.mean()), t / k, per, definition=f"{k}-way top-{t}, exact expectation")
        if mc_trials > 0:
            mc = ranking.kway_top_monte_carlo(similarity, k, t, mc_trials, seed, targets)
            out[key + "_mc"] = RetrievalScore(
                key + "_mc",
                mc.mean,
                t / k,
                mc.per_query,
                mc.ci95,
                definition=f"{k}-way top-{t}, {mc_trials} seeded draws per query",
                ci95_method="wilson",
            )
    return out


def _score_plan(gallery_size: int, ks: Sequence[int], ts: Sequence[int]) -> Iterator[tuple[str, int, int | None]]:
    """``(key, t, k)`` of each exact score: full-gallery top-t first (``k`` None), then each k-way top-t."""
    for t in ts:
        if t <= gallery_size:
            yield f"top{t}", t, None
    for k in ks:
        if k > gallery_size:
            continue
        for t in ts:
            if t < k:
                yield f"top{t}_{k}way", t, k
