"""A synthetic "catalogue photo" benchmark: how much accuracy survives the photo path?

Each test image is turned back into something like the product photo Fashion-MNIST was made
from: negated (dark garment on white), upscaled to a few hundred pixels, tinted (off-white
backdrop, coloured garment), placed off-centre on a larger canvas, with sensor noise and JPEG
compression. The photos then go through the full preprocessing path. It is a proxy: real shop
photos have texture, shadows and folds this cannot imitate.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from .data import sample_indices, to_model_input
from .predict import predict_batches
from .errors import ImageError

PHOTO_SIDE_RANGE = (200, 420)  # longest side of the garment after upscaling, pixels
CANVAS_GROWTH_RANGE = (1.15, 1.6)  # canvas side / garment side
BACKDROP_RANGE = (220, 256)  # off-white backdrop, per channel
GARMENT_COLOUR_RANGE = (0, 70)  # dark, tinted garment colour, per channel
NOISE_SIGMA_RANGE = (1.0, 6.0)
JPEG_QUALITY_RANGE = (55, 92)


def _photo_of(image, rng):
    """One uint8 (H, W, C) dataset image → JPEG bytes of a synthetic catalogue photo."""
    image = np.asarray(image, dtype=np.uint8)
    h, w = image.shape[:2]
    side = int(rng.integers(*PHOTO_SIDE_RANGE))
    scale = side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    if image.shape[-1] == 1:
        ink = Image.fromarray(image[..., 0]).resize(size, Image.BICUBIC)
        ink = np.asarray(ink, dtype=np.float32)[..., None] / 255.0
    else:  # colour: the darkness of the garment is its luminance; its colour becomes the tint
        ink = np.asarray(Image.fromarray(image).convert("L").resize(size, Image.BICUBIC), np.float32)[..., None] / 255.0

    canvas_side = int(side * rng.uniform(*CANVAS_GROWTH_RANGE))
    backdrop = rng.integers(*BACKDROP_RANGE, size=3).astype(np.float32)
    garment = rng.integers(*GARMENT_COLOUR_RANGE, size=3).astype(np.float32)
    canvas_h = max(canvas_side, size[1]) + int(rng.integers(0, side // 4 + 1))
    canvas_w = max(canvas_side, size[0]) + int(rng.integers(0, side // 4 + 1))
    ink_canvas = np.zeros((canvas_h, canvas_w, 1), np.float32)
    top = int(rng.integers(0, canvas_h - size[1] + 1))  # off-centre anywhere on the canvas
    left = int(rng.integers(0, canvas_w - size[0] + 1))
    ink_canvas[top: top + size[1], left: left + size[0]] = ink
    # The garment's brightness in the dataset is its "ink" on the white page of the negative.
    photo = backdrop * (1.0 - ink_canvas) + garment * ink_canvas
    photo += rng.standard_normal(photo.shape, dtype=np.float32) * np.float32(rng.uniform(*NOISE_SIGMA_RANGE))
    buffer = io.BytesIO()
    Image.fromarray(np.clip(np.rint(photo), 0, 255).astype(np.uint8)).save(
        buffer, format="JPEG", quality=int(rng.integers(*JPEG_QUALITY_RANGE)))
    return buffer.getvalue()


def make_catalogue_photos(images, seed=0):
    """Synthetic catalogue photos of dataset images.

    Parameters
    ----------
    images : ndarray of shape (N, H, W, C), uint8, background 0
    seed : int

    Returns
    -------
    list of N bytes objects (JPEG files, RGB, a few hundred pixels per side)
    """
    rng = np.random.default_rng(seed)
    return [_photo_of(image, rng) for image in np.asarray(images)]


def catalogue_photo_accuracy(classifier, dataset, n=1000, seed=0):
    """Accuracy of ``classifier`` on clean test arrays vs. the same images as synthetic photos.

    Parameters
    ----------
    classifier : inference.Classifier
    dataset : data.Dataset
    n : int
        Number of test images (a seeded random sample).

    Returns
    -------
    dict
        ``{"n", "clean_accuracy", "photo_accuracy", "ratio"}``; ratio = photo / clean
        (target ≥ 0.95).
    """
    n = int(min(n, len(dataset.y_test)))
    if n < 1:
        raise ImageError("the dataset has no test images for the photo benchmark.")
    idx = sample_indices(len(dataset.y_test), n, seed)
    images, labels = dataset.x_test[idx], dataset.y_test[idx]
    clean = predict_batches(classifier.forward, to_model_input(images)).argmax(axis=1)
    photos = make_catalogue_photos(images, seed=seed)
    prepared = np.stack([classifier.preprocess(photo, name=f"photo {i}").model_input for i, photo in enumerate(photos)])
    photo = predict_batches(classifier.forward, prepared).argmax(axis=1)
    clean_accuracy = float(np.mean(clean == labels))
    photo_accuracy = float(np.mean(photo == labels))
    return {
        "n": n,
        "clean_accuracy": clean_accuracy,
        "photo_accuracy": photo_accuracy,
        "ratio": photo_accuracy / clean_accuracy if clean_accuracy > 0 else 0.0,
    }
