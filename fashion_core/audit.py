"""Suspicious training labels: out-of-fold probabilities and confident learning.

Every training image is predicted by a model that never saw it (k-fold: each fold's model is
trained on the other k-1 parts), then ranked by how strongly those out-of-fold probabilities
dispute its given label (Northcutt et al., "Confident learning", 2021):

- per class ``j`` a threshold ``t_j``: the mean probability of ``j`` over the images labelled ``j``
  (how sure the models are, on average, about that class);
- an image is *flagged* when another class ``k`` reaches its own threshold (``p_k ≥ t_k``) and is
  the most likely such class: the off-diagonal of the confident joint;
- ``score`` = 1 − p(given label): the higher, the more suspicious (self-confidence ranking).

``audit_labels`` returns a JSON-able dict; the registry stores it by name
(``Registry.save_audit``) so the dashboard shows a saved audit and never recomputes one.
"""

from __future__ import annotations

import time
from dataclasses import asdict

import numpy as np

from .data import Dataset, sample_indices
from .errors import InvalidParameterError
from .predict import predict_probabilities

DEFAULT_ARCH = "seed003_cnn"
DEFAULT_FOLDS = 3
DEFAULT_EPOCHS = 3
MAX_FOLDS = 20
STORED_ROWS = 300  # a saved audit keeps the most suspicious rows, not all 60,000


def check_folds(folds):
    """``folds`` as an int in 2..MAX_FOLDS, else ``InvalidParameterError``."""
    if isinstance(folds, bool) or not isinstance(folds, (int, np.integer)) or not 2 <= folds <= MAX_FOLDS:
        raise InvalidParameterError(f"folds must be a whole number from 2 to {MAX_FOLDS}; got {folds!r}.")
    return int(folds)


def out_of_fold_probabilities(images, labels, config, folds=DEFAULT_FOLDS, class_names=None, progress=None,
                              verbose=0, say=None):
    """Probabilities (N, K) of every image from the fold model that did not train on it.

    Parameters
    ----------
    images : ndarray of shape (N, H, W, C), uint8
    labels : ndarray of shape (N,), the given labels
    config : training.TrainConfig
        Architecture and knobs of each fold's model (``limit`` is ignored: pass the images).
    folds : int, 2..20
    class_names : sequence of K str (default: "class 0", ...)
    say : callable(str), optional
        One line per fold (CLI progress).
    """
    from sklearn.model_selection import StratifiedKFold

    from .training import TrainConfig, train

    folds = check_folds(folds)
    labels = np.asarray(labels).astype(int)
    n_classes = len(class_names) if class_names else int(labels.max()) + 1
    counts = np.bincount(labels, minlength=n_classes)
    if counts.min() < folds:
        raise InvalidParameterError(f"every class needs at least {folds} images for {folds}-fold out-of-fold "
                                    f"predictions; the smallest has {int(counts.min())}.")
    config = TrainConfig(**{**asdict(config.resolve()), "limit": None})
    names = tuple(class_names or (f"class {i}" for i in range(n_classes)))
    probabilities = np.zeros((len(labels), n_classes), np.float32)
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=config.seed)
    for fold, (train_idx, held_idx) in enumerate(splitter.split(np.zeros(len(labels)), labels), start=1):
        if say:
            say(f"fold {fold}/{folds}: training {config.arch} on {len(train_idx)} images, predicting {len(held_idx)}")
        fold_data = Dataset(name=f"fold {fold}", class_names=names, x_train=images[train_idx], y_train=labels[train_idx],
                            x_test=images[held_idx[:1]], y_test=labels[held_idx[:1]])
        model = train(fold_data, config, progress=progress, verbose=verbose).model
        probabilities[held_idx] = predict_probabilities(model, images[held_idx])
    return probabilities


def rank_label_issues(probabilities, labels):
    """Confident-learning ranking of the given ``labels`` (N,) under out-of-fold
    ``probabilities`` (N, K).

    Returns
    -------
    dict: ``order`` (N,) row indices, most suspicious first; ``score`` (N,) 1 − p(given);
    ``suggested`` (N,) the class the models believe (the confident class when flagged, else the
    most likely other class); ``flagged`` (N,) bool; ``thresholds`` (K,) per-class thresholds.
    """
    p = np.asarray(probabilities, dtype=np.float64)
    y = np.asarray(labels).astype(int)
    n, k = p.shape
    rows = np.arange(n)
    thresholds = np.array([p[y == j, j].mean() if np.any(y == j) else 1.0 for j in range(k)])
    above = np.where(p >= thresholds[None, :], p, -1.0)
    confident = above.argmax(axis=1)
    has_confident = above.max(axis=1) >= 0
    flagged = has_confident & (confident != y)
    others = p.copy()
    others[rows, y] = -1.0
    suggested = np.where(flagged, confident, others.argmax(axis=1))
    score = 1.0 - p[rows, y]
    order = np.lexsort((-score, ~flagged))  # flagged first, then by score
    return {"order": order, "score": score, "suggested": suggested, "flagged": flagged, "thresholds": thresholds}


def audit_labels(dataset, config, folds=DEFAULT_FOLDS, limit=None, stored_rows=STORED_ROWS, progress=None,
                 verbose=0, say=None):
    """Audit ``dataset``'s training labels: out-of-fold probabilities → ranked suspicious labels.

    ``limit`` audits a seeded sample (``data.sample_indices(n, limit, config.seed)``) of the
    training images; ``index`` always refers to ``dataset.x_train``.

    Returns
    -------
    dict (JSON-able): ``arch``, ``folds``, ``epochs``, ``seed``, ``limit``, ``dataset`` (recipe),
    ``dataset_name``, ``class_names``, ``audited`` (images), ``flagged`` (count),
    ``flagged_per_class`` ({given class: count}), ``seconds``, ``issues``: the ``stored_rows``
    most suspicious ``{"index", "given", "suggested", "score", "flagged"}``, most suspicious first.
    """
    started = time.perf_counter()
    config = config.resolve()
    rows = sample_indices(len(dataset.y_train), limit, config.seed)
    labels = dataset.y_train[rows]
    probabilities = out_of_fold_probabilities(dataset.x_train[rows], labels, config, folds, dataset.class_names,
                                              progress=progress, verbose=verbose, say=say)
    ranking = rank_label_issues(probabilities, labels)
    flagged = ranking["flagged"]
    issues = [{"index": int(rows[i]), "given": int(labels[i]), "suggested": int(ranking["suggested"][i]),
               "score": round(float(ranking["score"][i]), 5), "flagged": bool(flagged[i])}
              for i in ranking["order"][:stored_rows]]
    per_class = np.bincount(labels[flagged], minlength=dataset.num_classes)
    spec = {k: v for k, v in dataset.spec.items()}
    return {"arch": config.arch, "folds": int(folds), "epochs": int(config.epochs), "seed": int(config.seed),
            "limit": int(limit) if limit else None, "dataset": spec, "dataset_name": dataset.name,
            "class_names": list(dataset.class_names), "audited": int(len(rows)), "flagged": int(flagged.sum()),
            "flagged_per_class": {name: int(c) for name, c in zip(dataset.class_names, per_class)},
            "seconds": round(time.perf_counter() - started, 1), "issues": issues}


def flip_labels(labels, count, n_classes, seed=0):
    """``(noisy labels, flipped indices)``: ``count`` seeded labels changed to another class."""
    labels = np.asarray(labels).astype(int)
    rng = np.random.default_rng(seed)
    flipped = np.sort(rng.choice(len(labels), size=int(count), replace=False))
    noisy = labels.copy()
    noisy[flipped] = (labels[flipped] + rng.integers(1, n_classes, size=len(flipped))) % n_classes
    return noisy, flipped


def without_images(dataset, indices, note=None):
    """A copy of ``dataset`` without the training images ``indices`` (labels judged wrong); the
    test set is unchanged. ``additions["cleaned"]`` records how many were left out."""
    drop = np.zeros(len(dataset.y_train), bool)
    drop[np.asarray(list(indices), dtype=int)] = True
    keep = ~drop
    return Dataset(name=f"{dataset.name} (cleaned)", class_names=dataset.class_names,
                   x_train=dataset.x_train[keep], y_train=dataset.y_train[keep],
                   x_test=dataset.x_test, y_test=dataset.y_test, spec=dataset.spec, source=dataset.source,
                   additions={**dataset.additions, "cleaned": {"excluded": int(drop.sum()), **(note or {})}})
