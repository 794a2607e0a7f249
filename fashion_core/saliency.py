"""Saliency: which input pixels drove a classifier's answer, and how faithful that map is.

Two methods, both giving an (H, W) map in [0, 1] at the model's input size (aligned with "what
the model sees"):

- ``grad_cam``: gradients of the class's log-probability with respect to the last convolutional
  block's activations, weighted and upsampled (Selvaraju et al. 2017). One backward pass per
  batch; needs a convolutional layer.
- ``occlusion``: how much the class's probability drops when a patch of the image is set to the
  background, slid over the image. Works for any model; one forward pass per patch position.

``saliency_maps(method="auto")`` uses Grad-CAM where the model has a convolutional block and
occlusion otherwise. ``faithfulness`` measures a map instead of assuming it: hiding the most
salient pixels should lower the predicted class's probability more than hiding random ones.
TensorFlow is imported lazily.
"""

from __future__ import annotations

import numpy as np

from .data import to_model_input
from .errors import InvalidParameterError
from .predict import PREDICT_BATCH, predict_probabilities, served_probabilities

METHODS = ("auto", "grad_cam", "occlusion")
# Measured, not assumed (``bench``'s "saliency" block): hiding the 20% most occlusion-salient
# pixels lowered the answer's probability more than hiding a random 20% for 84.4% of 500 test
# images with fashion_net (flip-TTA), Grad-CAM's maps for 58.6%; on the other shipped models
# occlusion scored 88-100% (40 images each), Grad-CAM 47-65% (200 images). Occlusion is
# therefore what the dashboard and ``classify --explain`` show; Grad-CAM is the fast option.
DEFAULT_METHOD = "occlusion"
HIDE_FRACTION = 0.2
_CONV_TYPES = ("Conv2D", "DepthwiseConv2D", "SeparableConv2D", "Conv2DTranspose")


def _has_conv(layer):
    if type(layer).__name__ in _CONV_TYPES:
        return True
    return any(_has_conv(inner) for inner in getattr(layer, "layers", []) or [])


def cam_layer(model):
    """The top-level layer whose (N, h, w, c) output Grad-CAM weighs: the last one with a spatial
    output (h, w ≥ 2) at or after the first convolutional layer; None without convolutions."""
    layers = list(model.layers)
    first = next((i for i, layer in enumerate(layers) if _has_conv(layer)), None)
    if first is None:
        return None
    for layer in reversed(layers[first:]):
        shape = getattr(getattr(layer, "output", None), "shape", None)
        if shape is not None and len(shape) == 4 and (shape[1] or 0) >= 2 and (shape[2] or 0) >= 2:
            return layer
    return None


def _gradient_model(model):
    """``keras.Model`` image → (activations of ``cam_layer``, probabilities), or None."""
    import keras

    layer = cam_layer(model)
    if layer is None:
        return None
    try:
        return keras.Model(model.inputs, [layer.output, model.outputs[0]])
    except (ValueError, TypeError, AttributeError):  # a layer outside the model's own graph
        return None


def _resize(maps, height, width):
    """(N, h, w) → (N, height, width) by bilinear interpolation."""
    import tensorflow as tf

    return tf.image.resize(np.asarray(maps, np.float32)[..., None], (height, width), method="bilinear").numpy()[..., 0]


def _normalise(maps):
    """Each map scaled to [0, 1] (a flat map becomes zeros)."""
    maps = np.maximum(np.asarray(maps, np.float32), 0.0)
    top = maps.reshape(len(maps), -1).max(axis=1).reshape(-1, 1, 1)
    return np.divide(maps, top, out=np.zeros_like(maps), where=top > 0)


def grad_cam(model, images, class_indices, gradient_model=None):
    """Grad-CAM maps (N, H, W) in [0, 1], or None when the model has no convolutional block.

    Parameters
    ----------
    model : keras.Model, (N, H, W, C) float32 in [0, 1] → (N, K) softmax
    images : ndarray of shape (N, H, W, C), uint8 or float in [0, 1]
    class_indices : sequence of N ints
    """
    import tensorflow as tf

    grad_model = gradient_model or _gradient_model(model)
    if grad_model is None:
        return None
    x = to_model_input(images)
    classes = np.asarray(class_indices, dtype=np.int32).reshape(-1)
    out = []
    for i in range(0, len(x), PREDICT_BATCH):
        batch = tf.convert_to_tensor(x[i: i + PREDICT_BATCH])
        with tf.GradientTape() as tape:
            activations, probabilities = grad_model(batch, training=False)
            picked = tf.gather(probabilities, classes[i: i + PREDICT_BATCH], axis=1, batch_dims=1)
            score = tf.reduce_sum(tf.math.log(picked + 1e-12))
        grads = tape.gradient(score, activations)
        weights = tf.reduce_mean(grads, axis=(1, 2), keepdims=True)
        out.append(tf.nn.relu(tf.reduce_sum(weights * activations, axis=-1)).numpy())
    maps = np.concatenate(out) if out else np.zeros((0, 1, 1), np.float32)
    return _normalise(_resize(maps, x.shape[1], x.shape[2]))


def background_value(images):
    """The background of each image (N, 1, 1, C): the median of its border pixels (0 for
    Fashion-MNIST's black backdrop)."""
    x = to_model_input(images)
    border = np.concatenate([x[:, 0], x[:, -1], x[:, :, 0], x[:, :, -1]], axis=1)
    return np.median(border, axis=1)[:, None, None, :]


def occlusion(model, images, class_indices, patch=None, stride=None):
    """Occlusion maps (N, H, W) in [0, 1]: the drop of the class's probability when a
    ``patch`` × ``patch`` square is set to the background, averaged over the positions covering
    each pixel (default patch: a seventh of the image side, stride half a patch)."""
    x = to_model_input(images)
    n, height, width = x.shape[:3]
    patch = int(patch or max(2, height // 7))
    stride = int(stride or max(1, patch // 2))
    classes = np.asarray(class_indices, dtype=int).reshape(-1)
    background = background_value(x)
    base = predict_probabilities(model, x)[np.arange(n), classes]
    positions = [(r, c) for r in range(0, max(1, height - patch + 1), stride) for c in range(0, max(1, width - patch + 1), stride)]
    maps = np.zeros((n, height, width), np.float32)
    counts = np.zeros((height, width), np.float32)
    for r, c in positions:
        counts[r: r + patch, c: c + patch] += 1
    for j in range(n):
        variants = np.repeat(x[j: j + 1], len(positions), axis=0)
        for k, (r, c) in enumerate(positions):
            variants[k, r: r + patch, c: c + patch] = background[j]
        drops = base[j] - predict_probabilities(model, variants)[:, classes[j]]
        for k, (r, c) in enumerate(positions):
            maps[j, r: r + patch, c: c + patch] += drops[k]
    maps = np.divide(maps, counts, out=np.zeros_like(maps), where=counts > 0)
    return _normalise(maps)


def saliency_maps(model, images, class_indices, method="auto", flip_tta=False):
    """(N, H, W) maps in [0, 1] of the pixels that drove ``class_indices`` (N,).

    ``method``: "grad_cam", "occlusion" or "auto" (Grad-CAM when the model has a convolutional
    block, else occlusion). With ``flip_tta`` (models served on the image and its mirror) the
    map is the mean of the image's map and the mirrored image's map flipped back.
    """
    if method not in METHODS:
        raise InvalidParameterError(f"unknown saliency method {method!r}; choose one of {', '.join(METHODS)}.")
    x = to_model_input(images)
    if x.ndim != 4:
        raise InvalidParameterError(f"images must be (N, H, W, C); got shape {x.shape}.")

    def one_view(view):
        maps = grad_cam(model, view, class_indices) if method in ("auto", "grad_cam") else None
        if maps is None:
            if method == "grad_cam":
                raise InvalidParameterError("Grad-CAM needs a convolutional layer; this model has none (use occlusion).")
            maps = occlusion(model, view, class_indices)
        return maps

    maps = one_view(x)
    if flip_tta:
        maps = _normalise((maps + one_view(x[:, :, ::-1])[:, :, ::-1]) / 2)
    return maps


def method_used(model, method="auto"):
    """The method ``saliency_maps`` actually runs for ``model``: "grad_cam" or "occlusion"."""
    if method == "auto":
        return "grad_cam" if _gradient_model(model) is not None else "occlusion"
    return method


def hide(images, masks):
    """Copies of ``images`` (N, H, W, C) with the pixels of boolean ``masks`` (N, H, W) set to
    each image's background."""
    x = to_model_input(images).copy()
    background = np.broadcast_to(background_value(x), x.shape)
    x[masks] = background[masks]
    return x


def top_mask(maps, fraction=HIDE_FRACTION, seed=0):
    """Boolean masks (N, H, W) of the ``fraction`` most salient pixels of each map (ties broken
    at random, seeded)."""
    maps = np.asarray(maps, np.float32)
    n, h, w = maps.shape
    k = max(1, int(round(fraction * h * w)))
    jitter = np.random.default_rng(seed).random(maps.shape) * 1e-6
    flat = (maps + jitter).reshape(n, -1)
    order = np.argsort(-flat, axis=1)[:, :k]
    masks = np.zeros_like(flat, dtype=bool)
    np.put_along_axis(masks, order, True, axis=1)
    return masks.reshape(n, h, w)


def random_mask(shape, fraction=HIDE_FRACTION, seed=0):
    """Boolean masks (N, H, W) of a random ``fraction`` of the pixels of each image (seeded)."""
    n, h, w = shape
    k = max(1, int(round(fraction * h * w)))
    rng = np.random.default_rng(seed)
    masks = np.zeros((n, h * w), bool)
    for i in range(n):
        masks[i, rng.permutation(h * w)[:k]] = True
    return masks.reshape(n, h, w)


def faithfulness(model, images, method="auto", fraction=HIDE_FRACTION, seed=0, flip_tta=False):
    """How faithful a saliency method is on ``images``.

    For each image, the predicted class's probability is measured after hiding (setting to
    background) the ``fraction`` most salient pixels, and after hiding a random ``fraction``.

    Returns
    -------
    dict: ``method`` (the one that ran), ``n``, ``hide_fraction``, ``share_salient_lowers_more``
    (share of images where hiding the salient pixels lowers the probability more),
    ``mean_drop_salient``, ``mean_drop_random``.
    """
    x = to_model_input(images)
    if not len(x):
        raise InvalidParameterError("faithfulness needs at least one image.")

    def predict(batch):  # the probabilities as served (flip-TTA for models served that way)
        return served_probabilities(model, batch, flip_tta)

    probabilities = predict(x)
    predicted = probabilities.argmax(axis=1)
    rows = np.arange(len(x))
    maps = saliency_maps(model, x, predicted, method=method, flip_tta=flip_tta)
    salient = predict(hide(x, top_mask(maps, fraction, seed)))[rows, predicted]
    random = predict(hide(x, random_mask(maps.shape, fraction, seed)))[rows, predicted]
    base = probabilities[rows, predicted]
    drop_salient, drop_random = base - salient, base - random
    return {"method": method_used(model, method), "n": int(len(x)), "hide_fraction": float(fraction),
            "share_salient_lowers_more": float(np.mean(drop_salient > drop_random)),
            "mean_drop_salient": float(drop_salient.mean()), "mean_drop_random": float(drop_random.mean())}


# --- drawing -------------------------------------------------------------------------------------

# A perceptual dark-to-bright ramp (black → purple → orange → pale yellow), like "inferno".
_RAMP = np.array([[0, 0, 4], [40, 11, 84], [101, 21, 110], [159, 42, 99], [212, 72, 66],
                  [245, 125, 21], [250, 193, 39], [252, 255, 164]], dtype=np.float32)


def colour_map(saliency):
    """(H, W) values in [0, 1] → (H, W, 3) uint8 colours (dark: unimportant, bright: important)."""
    s = np.clip(np.asarray(saliency, np.float32), 0.0, 1.0) * (len(_RAMP) - 1)
    low = np.floor(s).astype(int)
    high = np.minimum(low + 1, len(_RAMP) - 1)
    t = (s - low)[..., None]
    return np.rint(_RAMP[low] * (1 - t) + _RAMP[high] * t).astype(np.uint8)


def overlay(image, saliency, alpha=0.55, scale=1):
    """The image (H, W) / (H, W, C) uint8 or float with the colour-mapped saliency blended over
    it, as (H·scale, W·scale, 3) uint8 for display."""
    base = np.asarray(image)
    base = np.rint(base * 255).astype(np.uint8) if base.dtype != np.uint8 else base
    if base.ndim == 3 and base.shape[-1] == 1:
        base = base[..., 0]
    if base.ndim == 2:
        base = np.repeat(base[..., None], 3, axis=2)
    heat = colour_map(saliency)
    if heat.shape[:2] != base.shape[:2]:
        raise InvalidParameterError(f"saliency {heat.shape[:2]} does not match the image {base.shape[:2]}.")
    blended = np.rint((1 - alpha) * base.astype(np.float32) + alpha * heat.astype(np.float32)).astype(np.uint8)
    if scale > 1:
        blended = np.repeat(np.repeat(blended, int(scale), axis=0), int(scale), axis=1)
    return blended
