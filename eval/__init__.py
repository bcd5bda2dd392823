"""Evaluation metrics and reports for reconstructions and retrieval. Builds on :mod:`ttdnet`.

Modules (importing this package is cheap; each module imports torch and friends itself):

* :mod:`~ttdnet.eval.pairing`: pair reconstructions with ground truth by name or manifest, with checks.
* :mod:`~ttdnet.eval.images`: loading to float32 [0, 1] and the per-metric :class:`~ttdnet.eval.images.ResizeSpec`.
* :mod:`~ttdnet.eval.pixels`: PixCorr, MSE, PCC and SSIM (skimage-exact) for aligned pairs and all pairs.
* :mod:`~ttdnet.eval.backbones`: the feature networks, weight-file resolution and the offline error.
* :mod:`~ttdnet.eval.identification`: 2-way, pairwise identification, exact and Monte-Carlo n-way.
* :mod:`~ttdnet.eval.retrieval`: top-k and k-way top-t from a similarity matrix (exact and seeded MC).
* :mod:`~ttdnet.eval.fid`: FID and KID from feature matrices.
* :mod:`~ttdnet.eval.metrics`: the metric catalogue (groups, keys, directions, definitions).
* :mod:`~ttdnet.eval.suite`: runs the selected metrics; :mod:`~ttdnet.eval.report` writes the outputs.
* :mod:`~ttdnet.eval.api`: :func:`~ttdnet.eval.api.evaluate`; :mod:`~ttdnet.eval.command`: ``ttdnet evaluate``.
"""
