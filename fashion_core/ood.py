"""Out-of-distribution scores: how badly an autoencoder trained on garments reconstructs an image.

An autoencoder reconstructs what looks like its training data well and anything else (noise,
text, faces) badly. ``calibrate`` measures the reconstruction error on the test set after
training and stores a threshold far above it with the model (``metadata["ood"]``); the score of
an image is its error divided by that threshold, so a score above 1 means "does not look like
one of the garment types".
"""

from __future__ import annotations

import numpy as np

from .data import to_model_input
from .predict import PREDICT_BATCH, predict_batches

# The threshold is this multiple of the test set's 99th percentile error: "far above" what real
# garments give, so a garment is rarely flagged while noise/text/faces (typically 3–10x) are.
THRESHOLD_FACTOR = 1.5


def errors_from_reconstructions(x, reconstructions):
    """Mean squared error per image: (N, H, W, C) twice → (N,)."""
    x = np.asarray(x, dtype=np.float32)
    reconstructions = np.asarray(reconstructions, dtype=np.float32)
    return np.mean((x - reconstructions) ** 2, axis=tuple(range(1, x.ndim))).astype(np.float64)


def reconstruction_errors(autoencoder, x, batch_size=PREDICT_BATCH):
    """Mean squared reconstruction error per image.

    Parameters
    ----------
    autoencoder : keras.Model (or any callable (N, H, W, C) → (N, H, W, C))
    x : ndarray of shape (N, H, W, C), uint8 or float32 in [0, 1]

    Returns
    -------
    ndarray of shape (N,), float64
    """
    x = to_model_input(x)
    if not len(x):
        return np.zeros((0,), np.float64)
    return errors_from_reconstructions(x, predict_batches(autoencoder, x, batch_size))


def threshold_from_errors(errors, factor=THRESHOLD_FACTOR):
    """The calibration record for a set of in-distribution errors (N,)."""
    errors = np.asarray(errors, dtype=np.float64)
    p50, p99 = (float(v) for v in np.percentile(errors, [50, 99]))
    return {
        "reconstruction_threshold": factor * p99,
        "test_p50": p50,
        "test_p99": p99,
        "threshold_factor": factor,
        "n": int(len(errors)),
    }


def calibrate(bundle, dataset):
    """OOD calibration of a freshly trained model on ``dataset.x_test``.

    Parameters
    ----------
    bundle : zoo.ModelBundle
        ``bundle.autoencoder`` may be None (then nothing is calibrated).
    dataset : data.Dataset

    Returns
    -------
    dict
        ``{"ood": {"reconstruction_threshold", "test_p50", "test_p99", "n", ...}}`` to merge
        into metadata.json, or ``{}`` without an autoencoder or test images.
    """
    autoencoder = getattr(bundle, "autoencoder", None)
    if autoencoder is None or not len(dataset.x_test):
        return {}
    return {"ood": threshold_from_errors(reconstruction_errors(autoencoder, dataset.x_test))}


def ood_score(error, calibration):
    """error / threshold (>1 means out of distribution); None without a usable calibration."""
    threshold = (calibration or {}).get("reconstruction_threshold")
    if not threshold or threshold <= 0:
        return None
    return float(error) / float(threshold)


# --- confidence calibrated on real photos ------------------------------------------------------------
#
# A model trained with real photos of *other* things (outlier exposure: a uniform target) answers
# them with a flat distribution. Its top probability then separates "one of the classes" from
# "none of these"; the threshold is set on held-out photos so that only a small share of the
# correctly classified in-class photos falls under it.

CONFIDENCE_FLAG_RATE = 0.05  # share of correctly classified in-class photos the flag may catch


def calibrate_confidence(probabilities, labels, rate=CONFIDENCE_FLAG_RATE):
    """The "none of these" threshold from held-out photos.

    Parameters
    ----------
    probabilities : ndarray of shape (n, K)
    labels : ndarray of shape (n,), int
        Class index, or -1 for photos of none of the classes.
    rate : float
        Share of the correctly classified in-class photos allowed under the threshold.

    Returns
    -------
    dict
        ``{"method": "confidence", "min_confidence", "rate", "n_in", "n_other", "in_accuracy",
        "in_flagged", "other_flagged"}`` (the last three measured on these photos;
        ``in_accuracy`` ranks photo models: ``registry.default_entry``).
    """
    probabilities = np.asarray(probabilities, dtype=np.float64)
    labels = np.asarray(labels)
    top = probabilities.max(axis=1)
    inside = labels >= 0
    correct = inside & (probabilities.argmax(axis=1) == labels)
    if not correct.any():
        return {}
    threshold = float(np.quantile(top[correct], rate))
    return {
        "method": "confidence",
        "min_confidence": threshold,
        "rate": float(rate),
        "n_in": int(inside.sum()),
        "n_other": int((~inside).sum()),
        "in_accuracy": float(np.mean(correct[inside])),
        "in_flagged": float(np.mean(top[correct] < threshold)),
        "other_flagged": float(np.mean(top[~inside] < threshold)) if (~inside).any() else None,
    }


def confidence_scores(probabilities, calibration):
    """(N, K) probabilities → (N,) scores, (1 - top) / (1 - threshold): above 1 means flagged."""
    top = np.asarray(probabilities, dtype=np.float64).max(axis=1)
    return (1.0 - top) / max(1e-6, 1.0 - float(calibration["min_confidence"]))
