"""Linear baselines for zero-shot EEG-to-image retrieval, on the same files and protocol as ``train-retrieval``.

* :func:`ridge_baseline`: ridge regression from the EEG to the image features, then cosine retrieval
  (the decoding baseline of the field).
* :func:`encoding_baseline`: a Gaussian encoding model, reduced-rank ridge regression from the image features
  to the EEG with a shrunk residual covariance, ranking a gallery by Mahalanobis distance (the model-based
  baseline; under a linear-Gaussian truth with linear features it is the Bayes rule).

Both select their hyper-parameters on the validation split (held-out training concepts, galleries of one
image per concept, the mean top-1 over galleries: the rule ``train-retrieval`` uses) and score the test
split once. Inputs are the arrays of :func:`protocol_arrays`: the EEG flattened to ``(n, C·T)``, averaged
over repetitions like the trainer (training: mean of the training repetitions; validation: mean of the
training repetitions; test: mean of the test repetitions), and the image features standardised per layer
and dimension with training-split statistics, layers concatenated.
"""

import dataclasses
import time

import numpy as np

from ttdnet.simulate.linear_gaussian import ceiling_scores


RIDGE_ALPHAS = tuple(float(a) for a in np.logspace(-3, 3, 7))
"""Ridge penalties tried, in units of the mean squared singular value of the inputs."""
ENCODING_RANKS = (8, 16, 32, 64, 128, 256)
"""Ranks tried by the reduced-rank encoding model (capped at the number of features)."""
SHRINKAGES = (0.1, 0.3, 0.5, 0.8)
"""Covariance shrinkage intensities tried besides Ledoit-Wolf's own."""


@dataclasses.dataclass
class ProtocolArrays:
    """One subject's data in the retrieval protocol, as float64 arrays.

    Attributes
    ----------
    train_eeg, val_eeg, test_eeg : numpy.ndarray, shapes (n_train, C·T), (n_val, C·T), (n_test, C·T)
        Repetition means; standardised with the training split's mean and std per channel-time.
    train_rows, val_rows, test_rows : numpy.ndarray of int
        Image row of each EEG sample (into the features of its partition).
    val_galleries : list of numpy.ndarray of int
        Image rows of each validation gallery (one image per held-out concept).
    train_features, test_features : numpy.ndarray, shapes (n_training_images, P), (n_test_images, P)
        Standardised features, layers concatenated.
    """

    train_eeg: np.ndarray
    train_rows: np.ndarray
    val_eeg: np.ndarray
    val_rows: np.ndarray
    val_galleries: list
    test_eeg: np.ndarray
    test_rows: np.ndarray
    train_features: np.ndarray
    test_features: np.ndarray


@dataclasses.dataclass
class BaselineResult:
    """Test scores of a baseline, the selected hyper-parameters and the validation score of every choice."""

    name: str
    test: dict
    selected: dict
    validation: list
    seconds: float


def _validation_top1(scores_for, arrays: ProtocolArrays) -> float:
    """Mean top-1 over the validation galleries; ``scores_for(queries, gallery_rows)`` gives (n, n) scores."""
    position = {int(row): i for i, row in enumerate(arrays.val_rows)}
    values = []
    for gallery in arrays.val_galleries:
        queries = arrays.val_eeg[[position[int(row)] for row in gallery]]
        values.append(ceiling_scores(scores_for(queries, gallery), topk=(1,))["top1"])
    return float(np.mean(values))


def _test_scores(scores_for, arrays: ProtocolArrays) -> dict:
    order = np.argsort(arrays.test_rows)
    return ceiling_scores(scores_for(arrays.test_eeg[order], arrays.test_rows[order]), topk=(1, 5))


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=1, keepdims=True).clip(1e-12)
    b = b / np.linalg.norm(b, axis=1, keepdims=True).clip(1e-12)
    return a @ b.T


def ridge_baseline(arrays: ProtocolArrays, alphas=RIDGE_ALPHAS) -> BaselineResult:
    """Ridge EEG → features (one SVD, every penalty), cosine retrieval; penalty chosen on validation."""
    started = time.perf_counter()
    x, y = arrays.train_eeg, arrays.train_features[arrays.train_rows]
    u, s, vt = np.linalg.svd(x, full_matrices=False)
    uty = u.T @ y
    scale = np.mean(s**2)
    validation, best = [], None
    for alpha in alphas:
        weights = vt.T @ ((s / (s**2 + alpha * scale))[:, None] * uty)
        score = _validation_top1(lambda q, rows, w=weights: _cosine(q @ w, arrays.train_features[rows]), arrays)
        validation.append({"alpha": alpha, "val_top1": score})
        if best is None or score > best[0]:
            best = (score, alpha, weights)
    _, alpha, weights = best
    test = _test_scores(lambda q, rows: _cosine(q @ weights, arrays.test_features[rows]), arrays)
    return BaselineResult("ridge", test, {"alpha": alpha}, validation, time.perf_counter() - started)


def _mahalanobis_scores(queries: np.ndarray, means: np.ndarray, covariance: np.ndarray) -> np.ndarray:
    from scipy.linalg import cho_factor, cho_solve

    factor = cho_factor(covariance, lower=True)
    solved = cho_solve(factor, means.T).T  # Σ⁻¹ μ_j, (n_gallery, P)
    return 2 * queries @ solved.T - np.sum(means * solved, axis=1)[None, :]


def encoding_baseline(
    arrays: ProtocolArrays, alphas=RIDGE_ALPHAS, ranks=ENCODING_RANKS, shrinkages=SHRINKAGES
) -> BaselineResult:
    """Reduced-rank ridge features → EEG, shrunk residual covariance, Mahalanobis ranking.

    Chosen on validation one after the other: the penalty (full rank, Ledoit-Wolf covariance), the rank at
    that penalty, then the shrinkage of the residual covariance towards the scaled identity (Ledoit-Wolf's
    own intensity or one of ``shrinkages``). The covariance is that of the training residuals, whose
    queries average as many repetitions as the validation queries; adapting it to the 80-repetition test
    queries by subtracting the estimated trial noise was measured to hurt (the difference of two estimated
    C·T × C·T covariances is too noisy), so it is used as it is.
    """
    from sklearn.covariance import ledoit_wolf_shrinkage

    started = time.perf_counter()
    f, x = arrays.train_features[arrays.train_rows], arrays.train_eeg
    u, s, vt = np.linalg.svd(f, full_matrices=False)
    utx = u.T @ x
    scale = np.mean(s**2)
    validation = []

    def fit(alpha: float, rank: int | None) -> tuple[np.ndarray, np.ndarray, float]:
        weights = vt.T @ ((s / (s**2 + alpha * scale))[:, None] * utx)  # (P, C·T)
        if rank is not None:
            _, _, components = np.linalg.svd(f @ weights, full_matrices=False)
            weights = weights @ (components[:rank].T @ components[:rank])
        residuals = x - f @ weights
        return weights, np.cov(residuals, rowvar=False, bias=True), float(ledoit_wolf_shrinkage(residuals))

    def shrunk(sample: np.ndarray, intensity: float) -> np.ndarray:
        return (1 - intensity) * sample + intensity * np.trace(sample) / len(sample) * np.eye(len(sample))

    def validate(weights: np.ndarray, covariance: np.ndarray, **choice) -> float:
        score = _validation_top1(
            lambda q, rows: _mahalanobis_scores(q, arrays.train_features[rows] @ weights, covariance), arrays
        )
        validation.append({**choice, "val_top1": score})
        return score

    def at_full_rank(alpha: float) -> float:
        weights, sample, intensity = fit(alpha, None)
        return validate(weights, shrunk(sample, intensity), alpha=alpha, rank="full", shrinkage="ledoit-wolf")

    alpha = max(alphas, key=at_full_rank)
    best = None
    for rank in [None, *sorted({r for r in ranks if r < min(f.shape[1], x.shape[1])})]:
        weights, sample, intensity = fit(alpha, rank)
        score = validate(weights, shrunk(sample, intensity), alpha=alpha, rank=rank or "full", shrinkage="ledoit-wolf")
        if best is None or score > best[0]:
            best = (score, rank, weights, sample, intensity)
    _, rank, weights, sample, ledoit = best
    intensities = {"ledoit-wolf": ledoit, **{f"{value:g}": value for value in shrinkages}}
    chosen = max(
        intensities,
        key=lambda name: validate(
            weights, shrunk(sample, intensities[name]), alpha=alpha, rank=rank or "full", shrinkage=name
        ),
    )
    covariance = shrunk(sample, intensities[chosen])
    test = _test_scores(
        lambda q, rows: _mahalanobis_scores(q, arrays.test_features[rows] @ weights, covariance), arrays
    )
    selected = {"alpha": alpha, "rank": rank or "full", "shrinkage": f"{chosen} ({intensities[chosen]:.3f})"}
    return BaselineResult("gaussian-encoding", test, selected, validation, time.perf_counter() - started)


def protocol_arrays(
    dataset_root,
    features_path,
    subject: str,
    *,
    channels=None,
    tmin=None,
    tmax=None,
    val_fraction: float = 0.1,
    split_seed: int = 0,
    cache_dir=None,
) -> ProtocolArrays:
    """Read one subject's splits like ``train-retrieval`` (intra protocol, repetitions averaged).

    Raises
    ------
    ttdnet.errors.TtdnetError
        The feature file does not belong to the dataset (paths differ), or the validation split is too small.
    """
    from ttdnet.data import ThingsEEG2Dataset
    from ttdnet.stages.feature_file import read_feature_file
    from ttdnet.stages.retrieval_eval import validation_galleries

    features = read_feature_file(features_path)

    def dataset(split):
        return ThingsEEG2Dataset(
            dataset_root, split=split, subjects=[subject], channels=channels, tmin=tmin, tmax=tmax,
            average_repetitions=True, val_fraction=val_fraction, split_seed=split_seed, cache_dir=cache_dir,
        )  # fmt: skip

    def stack(data):
        eeg = np.stack([data[i].eeg.numpy().reshape(-1) for i in range(len(data))]).astype(np.float64)
        return eeg, np.asarray(data.image_indices)

    train, val, test = dataset("train"), dataset("val"), dataset("test")
    for split, probe in (("training", train), ("test", test)):
        features.check_paths(split, probe.metadata.relative_paths(split))
    train_eeg, train_rows = stack(train)
    val_eeg, val_rows = stack(val)
    test_eeg, test_rows = stack(test)
    mean, std = train_eeg.mean(axis=0), train_eeg.std(axis=0).clip(1e-12)

    training = features.features["training"].float().numpy()
    seen = training[np.unique(train_rows)]
    feature_mean, feature_std = seen.mean(axis=0), seen.std(axis=0)
    feature_std = np.where(feature_std > 1e-6, feature_std, 1.0)  # zero padding stays 0

    def standardised(values: np.ndarray) -> np.ndarray:
        return ((values - feature_mean) / feature_std).reshape(len(values), -1).astype(np.float64)

    return ProtocolArrays(
        train_eeg=(train_eeg - mean) / std,
        train_rows=train_rows,
        val_eeg=(val_eeg - mean) / std,
        val_rows=val_rows,
        val_galleries=validation_galleries(val),
        test_eeg=(test_eeg - mean) / std,
        test_rows=test_rows,
        train_features=standardised(training),
        test_features=standardised(features.features["test"].float().numpy()),
    )
