"""Calibrated confidence: temperature scaling, expected calibration error, reliability bins and
the coverage / accuracy trade-off of "only trust answers above a confidence".

Pure NumPy (+ SciPy's bounded 1-D minimiser): works on probabilities, so any caller (training,
the ``calibrate`` and ``evaluate`` commands, bench, the Evaluate page) can reuse predictions.
A temperature ``T`` rescales a model's softmax ``p`` into ``softmax(log p / T)``: the predicted
class never changes, only how sure the model says it is (``T > 1``: less sure).
"""

from __future__ import annotations

import numpy as np

from .errors import InvalidParameterError

N_BINS = 15
TEMPERATURE_BOUNDS = (0.05, 20.0)
_EPS = 1e-12


def _check(probabilities, labels=None):
    p = np.asarray(probabilities, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] < 2:
        raise InvalidParameterError(f"probabilities must be (N, K) with K ≥ 2; got shape {p.shape}.")
    if labels is None:
        return p, None
    y = np.asarray(labels).astype(int).reshape(-1)
    if len(y) != len(p):
        raise InvalidParameterError(f"{len(p)} probability rows but {len(y)} labels.")
    return p, y


def apply_temperature(probabilities, temperature):
    """``softmax(log p / T)`` row by row; ``T == 1`` returns the probabilities unchanged.

    Parameters
    ----------
    probabilities : ndarray of shape (n_samples, n_classes) or (n_classes,)
    temperature : float > 0

    Returns
    -------
    ndarray of the same shape, rows summing to 1.
    """
    p = np.asarray(probabilities, dtype=np.float64)
    t = float(temperature or 1.0)
    if t <= 0 or not np.isfinite(t):
        raise InvalidParameterError(f"temperature must be a positive number; got {temperature!r}.")
    if t == 1.0:
        return p
    logits = np.log(np.clip(p, _EPS, 1.0)) / t
    logits -= logits.max(axis=-1, keepdims=True)
    e = np.exp(logits)
    return e / e.sum(axis=-1, keepdims=True)


def negative_log_likelihood(probabilities, labels):
    """Mean cross-entropy of ``labels`` (N,) under ``probabilities`` (N, K)."""
    p, y = _check(probabilities, labels)
    return float(-np.mean(np.log(np.clip(p[np.arange(len(y)), y], _EPS, 1.0))))


def fit_temperature(probabilities, labels):
    """The temperature minimising the negative log-likelihood of ``labels`` (held-out data).

    Parameters
    ----------
    probabilities : ndarray of shape (n_samples, n_classes)
        The model's softmax on a validation split (never the test set).
    labels : ndarray of shape (n_samples,)

    Returns
    -------
    float in ``TEMPERATURE_BOUNDS`` (1.0 for an empty input).
    """
    p, y = _check(probabilities, labels)
    if len(y) == 0:
        return 1.0
    from scipy.optimize import minimize_scalar

    log_t = minimize_scalar(lambda s: negative_log_likelihood(apply_temperature(p, np.exp(s)), y),
                            bounds=tuple(np.log(TEMPERATURE_BOUNDS)), method="bounded",
                            options={"xatol": 1e-4})
    return float(np.exp(log_t.x))


def reliability_bins(probabilities, labels, n_bins=N_BINS):
    """Equal-width confidence bins: ``[{"confidence", "accuracy", "count"}]`` (``n_bins`` rows;
    empty bins have count 0 and confidence / accuracy None)."""
    p, y = _check(probabilities, labels)
    confidence = p.max(axis=1)
    correct = p.argmax(axis=1) == y
    which = np.clip(np.ceil(confidence * n_bins).astype(int) - 1, 0, n_bins - 1)
    rows = []
    for b in range(n_bins):
        members = which == b
        count = int(members.sum())
        rows.append({"confidence": float(confidence[members].mean()) if count else None,
                     "accuracy": float(correct[members].mean()) if count else None,
                     "count": count})
    return rows


def expected_calibration_error(probabilities, labels, n_bins=N_BINS):
    """ECE: the count-weighted mean |accuracy − confidence| over ``n_bins`` equal-width bins."""
    bins = reliability_bins(probabilities, labels, n_bins)
    total = sum(b["count"] for b in bins)
    if not total:
        return 0.0
    return float(sum(b["count"] * abs(b["accuracy"] - b["confidence"]) for b in bins if b["count"]) / total)


def calibration_report(probabilities, labels, temperature=1.0, n_bins=N_BINS):
    """What ``evaluate --json`` reports as ``"calibration"``: ``ece`` (after the temperature),
    ``ece_before``, ``temperature``, ``bins`` (after) and ``bins_before``."""
    p, y = _check(probabilities, labels)
    calibrated = apply_temperature(p, temperature)
    return {"ece": expected_calibration_error(calibrated, y, n_bins),
            "ece_before": expected_calibration_error(p, y, n_bins),
            "temperature": float(temperature or 1.0),
            "bins": reliability_bins(calibrated, y, n_bins),
            "bins_before": reliability_bins(p, y, n_bins)}


def coverage_accuracy(probabilities, labels, threshold):
    """``(coverage, accuracy)`` when only answers with confidence ≥ ``threshold`` are trusted:
    the share of images answered and the accuracy on them (None when none is answered)."""
    p, y = _check(probabilities, labels)
    confidence = p.max(axis=1)
    kept = confidence >= float(threshold)
    if not len(y):
        return 0.0, None
    accuracy = float(np.mean(p[kept].argmax(axis=1) == y[kept])) if kept.any() else None
    return float(kept.mean()), accuracy


def coverage_curve(probabilities, labels, thresholds=None):
    """``[{"threshold", "coverage", "accuracy"}]`` over ``thresholds`` (default 0.0 … 0.99)."""
    thresholds = np.round(np.arange(0.0, 1.0, 0.01), 2) if thresholds is None else thresholds
    return [{"threshold": float(t), **dict(zip(("coverage", "accuracy"), coverage_accuracy(probabilities, labels, t)))}
            for t in thresholds]
