"""Batched prediction: the one place that runs a Keras model over many images.

Every caller that turns a pile of images into model outputs (training's accuracy checks,
evaluation, embeddings, reconstructions, OOD calibration, bench, the pages) goes through
``predict_batches``, so they all share one batch size and one input conversion. Models are
called directly (``model(x, training=False)``), never through ``model.predict``, which sets up
a data pipeline on every call (tens of milliseconds for a single image).
"""

from __future__ import annotations

import numpy as np

from .data import to_model_input

# Inference batch: small enough that TensorFlow's CPU allocator keeps little activation memory
# (batches of 512 through fashion_net left ~650 MB resident in the dashboard process). For larger
# images the batch shrinks so that one batch holds at most PREDICT_VALUES input values (128 images
# of 48x48x3; 18 of a 128x128x3 photo model's).
PREDICT_BATCH = 128
PREDICT_VALUES = 128 * 48 * 48 * 3


def batch_size_for(image_shape, batch_size=PREDICT_BATCH):
    """The inference batch for images of ``image_shape`` (H, W, C): ``batch_size`` at most, fewer
    for large images (``PREDICT_VALUES``), never under 8."""
    values = int(np.prod(image_shape)) or 1
    return max(8, min(int(batch_size), PREDICT_VALUES // values))


def call_model(model, batch):
    """``model(batch, training=False)`` as a NumPy array; plain callables (a ``tf.function``, a
    ``Classifier.forward``) without a ``training`` argument are called with the batch alone."""
    try:
        out = model(batch, training=False)
    except TypeError:
        out = model(batch)
    return np.asarray(out)


def predict_batches(model, images, batch_size=PREDICT_BATCH, empty_shape=None):
    """Outputs of ``model`` over ``images`` in batches, concatenated.

    Parameters
    ----------
    model : keras.Model or callable (n, H, W, C) float32 → (n, ...)
    images : ndarray of shape (N, H, W, C), uint8 or float in [0, 1]
    batch_size : int
    empty_shape : tuple, optional
        Shape of one output row, for the (0, ...) result of an empty input (default: the
        model's ``output_shape``).

    Returns
    -------
    ndarray of shape (N, ...)
    """
    step = batch_size_for(np.shape(images)[1:], batch_size)
    # converted batch by batch: 10,000 photos at 128x128x3 are 2 GB as float32, 0.5 GB as uint8
    out = [call_model(model, to_model_input(images[i: i + step])) for i in range(0, len(images), step)]
    if out:
        return np.concatenate(out, axis=0)
    shape = tuple(empty_shape) if empty_shape is not None else tuple(model.output_shape[1:])
    return np.zeros((0, *shape), np.float32)


def predict_probabilities(model, images, batch_size=PREDICT_BATCH):
    """Softmax probabilities (N, K) of a classifier for uint8 or float images (N, H, W, C)."""
    return predict_batches(model, images, batch_size)


def flip_tta_probabilities(model, images, probabilities=None):
    """Average of predictions on the images and their horizontal mirror (test-time augmentation).
    ``probabilities``: the images' own predictions when the caller already has them (one pass saved)."""
    images = np.asarray(images)
    plain = predict_probabilities(model, images) if probabilities is None else probabilities
    return (plain + predict_probabilities(model, images[:, :, ::-1, :])) / 2


def test_set_predictions(model, images, flip_tta=False):
    """``(probabilities, tta_probabilities or None)`` of ``images``: what an evaluation and the
    stored artefacts both need, each pass made once."""
    probabilities = predict_probabilities(model, images)
    return probabilities, (flip_tta_probabilities(model, images, probabilities) if flip_tta else None)


def served_probabilities(model, images, flip_tta=False):
    """Probabilities (N, K) the way the model is served: with flip-TTA when it is evaluated so."""
    return (flip_tta_probabilities if flip_tta else predict_probabilities)(model, images)


def predict_classes(model, images, flip_tta=False):
    """Predicted class indices (N,), with flip-TTA when the model is evaluated that way."""
    return (flip_tta_probabilities if flip_tta else predict_probabilities)(model, images).argmax(axis=1)


def accuracy(model, images, labels, flip_tta=False):
    """Share of ``images`` whose predicted class equals ``labels`` (N,)."""
    return float(np.mean(predict_classes(model, images, flip_tta) == np.asarray(labels)))


def compiled_call(model, image_shape, flip_tta=False):
    """A ``tf.function`` calling ``model(x, training=False)`` for float32 (None, H, W, C).

    With ``flip_tta`` it averages the predictions on the image and its horizontal mirror (the
    test-time augmentation the model was evaluated with), in one batched call.
    """
    import tensorflow as tf

    signature = [tf.TensorSpec(shape=(None, *image_shape), dtype=tf.float32)]

    @tf.function(input_signature=signature, reduce_retracing=True)
    def call(x):
        if not flip_tta:
            return model(x, training=False)
        both = model(tf.concat([x, tf.reverse(x, axis=[2])], axis=0), training=False)
        plain, mirrored = tf.split(both, 2, axis=0)
        return (plain + mirrored) / 2

    return call
