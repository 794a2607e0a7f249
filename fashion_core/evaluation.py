"""Evaluation: accuracy, loss, top-k, confusion matrix, per-class metrics and the mistakes.

Works on probabilities (``evaluate_probabilities``) so callers can reuse predictions; the result
is a plain JSON-able dict stored with the model so the dashboard never recomputes it.
"""

from __future__ import annotations

import numpy as np

from .calibration import calibration_report
from .predict import test_set_predictions

MAX_MISTAKES_STORED = 500


def evaluate_probabilities(probabilities, y_true, class_names, top_k=(2, 3, 5)):
    """Metrics of predicted ``probabilities`` (n_samples, n_classes) against ``y_true``.

    Returns
    -------
    dict with ``accuracy``, ``loss`` (cross-entropy), ``top_k_accuracy`` ({k: acc}),
    ``confusion_matrix`` (rows = true class), ``per_class`` (list of dicts: ``class``,
    ``precision``, ``recall``, ``f1``, ``specificity``, ``support``), ``macro_f1``,
    ``mistakes`` (most confident wrong answers first: ``index``, ``true``, ``predicted``,
    ``confidence``), ``n_samples``.
    """
    from sklearn.metrics import (
        accuracy_score,
        confusion_matrix,
        log_loss,
        precision_recall_fscore_support,
        top_k_accuracy_score,
    )

    probabilities = np.asarray(probabilities, dtype=np.float64)
    y_true = np.asarray(y_true).astype(int)
    n_classes = len(class_names)
    labels = np.arange(n_classes)
    y_pred = probabilities.argmax(axis=1)
    cm = confusion_matrix(y_true, y_pred, labels=labels)
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0
    )
    total = cm.sum()
    per_class = []
    for i, name in enumerate(class_names):
        tp = cm[i, i]
        fp = cm[:, i].sum() - tp
        fn = cm[i, :].sum() - tp
        tn = total - tp - fp - fn
        per_class.append({
            "class": name,
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "specificity": float(tn / (tn + fp)) if tn + fp else 0.0,
            "support": int(support[i]),
        })
    top_k_accuracy = {
        str(k): float(top_k_accuracy_score(y_true, probabilities, k=k, labels=labels))
        for k in top_k if k < n_classes
    }
    wrong = np.flatnonzero(y_pred != y_true)
    confidence = probabilities[wrong, y_pred[wrong]]
    order = wrong[np.argsort(-confidence)][:MAX_MISTAKES_STORED]
    mistakes = [
        {"index": int(i), "true": int(y_true[i]), "predicted": int(y_pred[i]),
         "confidence": float(probabilities[i, y_pred[i]])}
        for i in order
    ]
    clipped = np.clip(probabilities, 1e-7, 1.0)
    clipped = clipped / clipped.sum(axis=1, keepdims=True)
    return {
        "n_samples": int(len(y_true)),
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "loss": float(log_loss(y_true, clipped, labels=labels)),
        "top_k_accuracy": top_k_accuracy,
        "confusion_matrix": cm.astype(int).tolist(),
        "per_class": per_class,
        "macro_f1": float(np.mean(f1)),
        "mistakes": mistakes,
        "class_names": list(class_names),
    }


def evaluate_model(model, dataset, tta=False, calibration=None, predictions=None):
    """Evaluate a classifier on ``dataset``'s test set; with ``tta`` also on flip-TTA predictions.

    ``calibration`` (``calibration.calibration_report``) covers the probabilities as served
    (flip-TTA when ``tta``) with ``calibration`` (a ``calibration.Calibration``; None:
    uncalibrated). ``predictions``:
    ``predict.test_set_predictions`` of this model and test set, when the caller has them.
    """
    probs, served = predictions or test_set_predictions(model, dataset.x_test, tta)
    result = evaluate_probabilities(probs, dataset.y_test, dataset.class_names)
    result["dataset"] = dataset.name
    if tta:
        result["flip_tta_accuracy"] = float(np.mean(served.argmax(axis=1) == dataset.y_test))
    else:
        served = probs
    result["calibration"] = calibration_report(served, dataset.y_test, calibration)
    return result


def most_confused_pair(confusion_matrix):
    """(true, predicted) class indices of the largest off-diagonal cell of a confusion matrix."""
    matrix = np.asarray(confusion_matrix)
    off_diagonal = matrix - np.diag(np.diag(matrix))
    true, predicted = np.unravel_index(int(off_diagonal.argmax()), matrix.shape)
    return int(true), int(predicted)


def cell_members(probabilities, y_true, true_class, predicted_class, limit=None):
    """Indices of the images of ``true_class`` predicted as ``predicted_class``, the most
    confident first (at most ``limit``).

    Parameters
    ----------
    probabilities : ndarray of shape (n_samples, n_classes)
    y_true : ndarray of shape (n_samples,)
    """
    probabilities = np.asarray(probabilities)
    predicted = probabilities.argmax(axis=1)
    members = np.flatnonzero((np.asarray(y_true) == true_class) & (predicted == predicted_class))
    return members[np.argsort(-probabilities[members, predicted_class])][:limit]
