"""Calibrated confidence: temperature scaling and its per-class refinement, expected calibration
error, reliability bins and the coverage / accuracy trade-off of "only trust answers above a
confidence".

Pure NumPy (+ SciPy's minimisers): works on probabilities, so any caller (training, the
``calibrate`` and ``evaluate`` commands, bench, the Evaluate page) can reuse predictions.
A temperature ``T`` rescales a model's softmax ``p`` into ``softmax(log p / T)``: the predicted
class never changes, only how sure the model says it is (``T > 1``: less sure).

One temperature cannot bend a reliability curve: a model that is under-confident at 50% and
calibrated at 98% stays wrong somewhere. ``fit_calibration`` therefore also tries, per predicted
class, a temperature and then a top-label beta map of the confidence (Kull et al. 2017,
"Beyond sigmoids"; calibrating the top label per predicted class as in Gupta & Ramdas 2022,
"Top-label calibration"), and keeps whichever of the three scores best in k-fold
cross-validation on the validation split itself. Every step keeps the predicted class.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import InvalidParameterError

N_BINS = 15
TEMPERATURE_BOUNDS = (0.05, 20.0)
_EPS = 1e-12
#: a predicted class gets its own temperature / beta map only with this many validation answers
#: (and, for the beta map, this many right and wrong ones); fewer share the pooled fit
MIN_CLASS_ANSWERS = 100
MIN_CLASS_OUTCOMES = 10
CV_FOLDS = 5
_IDENTITY_BETA = (1.0, 1.0, 0.0)


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


def as_calibration(calibration):
    """A ``Calibration`` from one (returned as is), a bare temperature, or None (the identity)."""
    if isinstance(calibration, Calibration):
        return calibration
    return Calibration(float(calibration or 1.0))


def calibration_report(probabilities, labels, calibration=None, n_bins=N_BINS):
    """What ``evaluate --json`` reports as ``"calibration"``: ``ece`` (after ``calibration``, a
    ``Calibration`` or a bare temperature), ``ece_before``, ``method``, ``temperature``, ``bins``
    (after) and ``bins_before``."""
    p, y = _check(probabilities, labels)
    calibration = as_calibration(calibration)
    calibrated = calibration.apply(p)
    return {"ece": expected_calibration_error(calibrated, y, n_bins),
            "ece_before": expected_calibration_error(p, y, n_bins),
            "method": calibration.method,
            "temperature": float(calibration.temperature),
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


# --- per-class calibration -----------------------------------------------------------------------


def _confidence_and_runner_up(p):
    order = np.sort(p, axis=1)
    return order[:, -1], order[:, -2]


def _beta_confidence(confidence, a, b, c):
    """The top-label beta map ``sigmoid(a ln s − b ln(1 − s) + c)``; (1, 1, 0) is the identity."""
    s = np.clip(confidence, 1e-7, 1 - 1e-7)
    return 1.0 / (1.0 + np.exp(-(a * np.log(s) - b * np.log1p(-s) + c)))


def _top_label_log_loss(confidence, correct):
    q = np.clip(confidence, 1e-7, 1 - 1e-7)
    return float(-np.mean(np.where(correct, np.log(q), np.log1p(-q))))


def _fit_beta(confidence, correct):
    """(a, b, c) with a, b ≥ 0 (the map rises with the confidence) minimising the top-label
    log-loss, lightly pulled towards the identity so that a small class cannot run away."""
    from scipy.optimize import minimize

    identity = np.array(_IDENTITY_BETA)

    def loss(w):
        return _top_label_log_loss(_beta_confidence(confidence, *w), correct) + 1e-3 * np.sum((w - identity) ** 2)

    result = minimize(loss, identity, method="L-BFGS-B", bounds=[(0.0, 50.0), (0.0, 50.0), (-50.0, 50.0)])
    return tuple(float(v) for v in result.x) if result.success else _IDENTITY_BETA


def _with_top(p, new_top):
    """``p`` with each row's top probability set to ``new_top`` and the others scaled to fill the
    rest; ``new_top`` is first raised where needed so the top class stays on top."""
    predicted = p.argmax(axis=1)
    top, runner_up = _confidence_and_runner_up(p)
    rest = np.clip(1.0 - top, _EPS, None)
    new_top = np.clip(np.maximum(new_top, runner_up / (rest + runner_up) + 1e-6), 0.0, 1.0)
    out = p * ((1.0 - new_top) / rest)[:, None]
    out[np.arange(len(p)), predicted] = new_top
    return out


@dataclass(frozen=True)
class Calibration:
    """How a model's raw probabilities become the confidence people read.

    ``temperature`` is the one fitted over all validation answers (what the dashboard shows);
    ``class_temperatures`` (K values, one per predicted class) replaces it class by class when
    set; ``top_label_beta`` (K ``(a, b, c)`` triples) then maps each answer's confidence by its
    predicted class, the other probabilities scaled to fill the rest. The predicted class never
    changes. ``Calibration()`` is the identity (an uncalibrated model).
    """

    temperature: float = 1.0
    class_temperatures: tuple = ()
    top_label_beta: tuple = ()

    @property
    def method(self):
        """``temperature``, ``class_temperature`` or ``class_temperature+top_label_beta``."""
        if self.top_label_beta:
            return "class_temperature+top_label_beta"
        return "class_temperature" if self.class_temperatures else "temperature"

    def apply(self, probabilities):
        """Raw probabilities ``(..., K)`` → calibrated ones of the same shape, rows summing to 1."""
        p = np.asarray(probabilities, dtype=np.float64)
        per_class = (self.class_temperatures, self.top_label_beta)
        if not any(per_class) or any(m and len(m) != p.shape[-1] for m in per_class):
            return apply_temperature(p, self.temperature)  # (maps for another number of classes: not used)
        rows = p.reshape(-1, p.shape[-1])
        predicted = rows.argmax(axis=1)
        out = np.empty_like(rows)
        for k in np.unique(predicted):
            members = predicted == k
            t = self.class_temperatures[k] if self.class_temperatures else self.temperature
            out[members] = apply_temperature(rows[members], t)
        if self.top_label_beta:
            beta = np.asarray(self.top_label_beta, dtype=np.float64)[predicted]
            out = _with_top(out, _beta_confidence(out.max(axis=1), beta[:, 0], beta[:, 1], beta[:, 2]))
        return out.reshape(p.shape)

    def to_json(self):
        """What ``calibration.json`` stores of the map (``method``, ``temperature`` and, when set,
        ``class_temperatures`` and ``top_label_beta``)."""
        data = {"method": self.method, "temperature": float(self.temperature)}
        if self.class_temperatures:
            data["class_temperatures"] = [float(t) for t in self.class_temperatures]
        if self.top_label_beta:
            data["top_label_beta"] = [[float(v) for v in w] for w in self.top_label_beta]
        return data

    @classmethod
    def from_json(cls, data, num_classes=None):
        """The map stored in ``data`` (``calibration.json``); a missing, older (temperature-only)
        or malformed file gives what can be trusted of it, never an error."""
        data = data if isinstance(data, dict) else {}
        t = data.get("temperature")
        temperature = float(t) if isinstance(t, (int, float)) and np.isfinite(t) and t > 0 else 1.0

        def valid(values, width=None):
            try:
                array = np.asarray(values, dtype=np.float64)
            except (TypeError, ValueError):
                return ()
            shape_ok = array.ndim == (1 if width is None else 2) and (width is None or array.shape[1:] == (width,))
            if not len(array) or not shape_ok or not np.all(np.isfinite(array)) \
                    or (num_classes is not None and len(array) != num_classes):
                return ()
            return tuple(map(tuple, array.tolist())) if width else tuple(array.tolist())

        temperatures = valid(data.get("class_temperatures") or ())
        if temperatures and min(temperatures) <= 0:
            temperatures = ()
        beta = valid(data.get("top_label_beta") or (), width=3)
        if beta and temperatures and len(beta) != len(temperatures):
            beta = ()
        return cls(temperature, temperatures, beta)


def _fit_class_temperatures(p, y, pooled):
    predicted = p.argmax(axis=1)
    return tuple(fit_temperature(p[predicted == k], y[predicted == k])
                 if np.sum(predicted == k) >= MIN_CLASS_ANSWERS else pooled for k in range(p.shape[1]))


def _fit_top_label_beta(p, y):
    predicted = p.argmax(axis=1)
    confidence, correct = p.max(axis=1), predicted == y
    if min(correct.sum(), (~correct).sum()) < MIN_CLASS_OUTCOMES:
        pooled = _IDENTITY_BETA
    else:
        pooled = _fit_beta(confidence, correct)
    maps = []
    for k in range(p.shape[1]):
        members = predicted == k
        right = int(correct[members].sum())
        enough = members.sum() >= MIN_CLASS_ANSWERS and min(right, members.sum() - right) >= MIN_CLASS_OUTCOMES
        maps.append(_fit_beta(confidence[members], correct[members]) if enough else pooled)
    return tuple(maps)


CALIBRATION_METHODS = ("temperature", "class_temperature", "class_temperature+top_label_beta")


def _fit_method(p, y, method):
    temperature = fit_temperature(p, y)
    if method == "temperature":
        return Calibration(temperature)
    calibration = Calibration(temperature, _fit_class_temperatures(p, y, temperature))
    if method == "class_temperature":
        return calibration
    return Calibration(temperature, calibration.class_temperatures, _fit_top_label_beta(calibration.apply(p), y))


def cross_validated_losses(probabilities, labels, folds=CV_FOLDS, seed=0):
    """``{method: top-label log-loss}`` of each of ``CALIBRATION_METHODS`` fitted on k − 1 folds
    of held-out answers and scored on the k-th, summed over the folds (lower is better)."""
    p, y = _check(probabilities, labels)
    order = np.random.default_rng(seed).permutation(len(y))
    losses = dict.fromkeys(CALIBRATION_METHODS, 0.0)
    for fold in np.array_split(order, folds):
        held_out = np.zeros(len(y), bool)
        held_out[fold] = True
        for method in CALIBRATION_METHODS:
            q = _fit_method(p[~held_out], y[~held_out], method).apply(p[held_out])
            losses[method] += _top_label_log_loss(q.max(axis=1), q.argmax(axis=1) == y[held_out]) * len(fold)
    return {m: v / len(y) for m, v in losses.items()}


def fit_calibration(probabilities, labels, folds=CV_FOLDS, seed=0):
    """The confidence map of held-out answers (a validation split, never the test set).

    Fits the three ``CALIBRATION_METHODS`` and keeps the one with the lowest
    ``cross_validated_losses`` (the simplest on a tie); a split too small for ``folds`` folds of
    ``MIN_CLASS_ANSWERS`` answers gets one temperature. Returns ``(Calibration, losses)``.
    """
    p, y = _check(probabilities, labels)
    if len(y) < folds * MIN_CLASS_ANSWERS:
        return Calibration(fit_temperature(p, y)), {}
    losses = cross_validated_losses(p, y, folds, seed)
    best = min(CALIBRATION_METHODS, key=lambda m: (round(losses[m], 6), CALIBRATION_METHODS.index(m)))
    return _fit_method(p, y, best), losses
