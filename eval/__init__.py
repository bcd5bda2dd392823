"""Evaluation metrics and reports for reconstructions and retrieval. Builds on :mod:`ttdnet`.

Modules (importing this package is cheap; each module imports torch and friends itself):

* :mod:`~ttdnet.eval.pairing`: pair reconstructions with ground truth by name or manifest, with checks.
* :mod:`~ttdnet.eval.images`: loading by bit depth to float32 [0, 1], and the per-metric
  :class:`~ttdnet.eval.images.ResizeSpec`.
* :mod:`~ttdnet.eval.pixels`: PixCorr, MSE, PCC and SSIM (skimage-exact) for aligned pairs and all pairs.
* :mod:`~ttdnet.eval.weights`: weight-file resolution, downloads, hash checks and the offline error.
* :mod:`~ttdnet.eval.feature_backbone`: the :class:`~ttdnet.eval.feature_backbone.Backbone` interface the suite uses.
* :mod:`~ttdnet.eval.backbones`: the builders of the feature networks.
* :mod:`~ttdnet.eval.identification`: 2-way, pairwise identification and n-way, on the ranking rule of
  :mod:`ttdnet.ranking` (one definition of rank, top-k, exact and Monte-Carlo k-way for the suite and retrieval).
* :mod:`~ttdnet.eval.retrieval`: the retrieval score catalogue (which top-k / k-way keys a gallery gets).
* :mod:`~ttdnet.eval.fid`: FID and KID from feature matrices.
* :mod:`~ttdnet.eval.metrics`: the metric catalogue (groups, keys, directions, definitions).
* :mod:`~ttdnet.eval.suite`: runs the selected metrics, with :mod:`~ttdnet.eval.scoring` (one sample set) and
  :mod:`~ttdnet.eval.metric_entries` (aggregation, undefined scores); :mod:`~ttdnet.eval.report` renders the
  outputs (with the plots of :mod:`~ttdnet.eval.plots` and the bounded intervals of :mod:`~ttdnet.eval.intervals`)
  and :mod:`~ttdnet.eval.outputs` checks ``--output_dir`` and writes them as one set.
* :mod:`~ttdnet.eval.summary_runs`, :mod:`~ttdnet.eval.summary`, :mod:`~ttdnet.eval.summary_report`,
  :mod:`~ttdnet.eval.summary_command`: ``ttdnet evaluate-summary`` (runs, protocol checks, mean ± SD over
  subjects, reports).
* :mod:`~ttdnet.eval.api`: :func:`~ttdnet.eval.api.evaluate`; :mod:`~ttdnet.eval.command`: ``ttdnet evaluate``.
"""
