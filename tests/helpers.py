"""Helpers shared by test modules (fixtures live in conftest.py): paths, image bytes, constant
models and the AppTest launcher."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
# A handful of real photos (copied from ../shared/data/real-photos, a few KB each).
PHOTO_FIXTURES = REPO / "tests" / "fixtures" / "photos"
APP = str(REPO / "app.py")
TIMEOUT = 180  # the first TensorFlow import and model load take seconds on a 2-core machine


def open_app(page=None):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.run()
    if page:
        at.switch_page(page)
        at.run()
    return at


def assert_clean(at):
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def custom_setup(at):
    """On the Train page: leave the quick preset for the model zoo's own settings."""
    at.radio(key="train_setup").set_value("custom")
    at.run()
    return at


def start_training(at, name, arch="seed004_cnn", epochs=1, limit=None, wait=True):
    """On the Train page: choose ``arch`` and ``epochs`` (and a subset of ``limit`` images),
    name the model, start training and check the page shows no error; with ``wait``, wait for
    the background job (run by the app's runner thread) to end and rerun the page."""
    custom_setup(at)
    at.selectbox(key="train_arch").set_value(arch)
    at.run()
    at.number_input(key=f"train_epochs_{arch}").set_value(epochs)
    if limit is not None:
        at.toggle(key="train_use_subset").set_value(True)
        at.run()
        at.number_input(key="train_limit").set_value(limit)
    at.text_input(key=f"train_name_{arch}").set_value(name)
    at.button(key="start_training").click()
    at.run()
    assert_clean(at)
    if wait:
        wait_for_jobs()
        at.run()
        assert_clean(at)


def wait_for_jobs(timeout=600):
    """Wait until no job of the registry in use (``FASHION_MODELS_DIR``) is queued or running."""
    import time

    from fashion_core.jobs import JobStore

    store = JobStore.for_registry()
    deadline = time.time() + timeout
    while any(job.state in ("queued", "running") for job in store.list()):
        assert time.time() < deadline, "the job did not end"
        time.sleep(0.2)


def png_bytes(array):
    """Encode a uint8 array (H, W) or (H, W, 3) as PNG bytes."""
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(array, dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def constant_classifier(logits, image_shape=(28, 28, 1)):
    """A Keras classifier that answers the same probabilities, softmax(``logits``), for any image:
    tests of flags and defaults that must not depend on how well a model trained."""
    import keras

    inputs = keras.Input(shape=image_shape, name="image")
    x = keras.layers.Flatten(name="flatten")(inputs)
    x = keras.layers.Dense(8, activation="relu", kernel_initializer="zeros", name="embedding")(x)
    out = keras.layers.Dense(len(logits), activation="softmax", kernel_initializer="zeros",
                             bias_initializer=keras.initializers.Constant(np.asarray(logits, np.float32)),
                             name="probabilities")(x)
    return keras.Model(inputs, out, name="constant")


def save_photo_model(registry, name, logits, min_confidence=0.5, test_accuracy=0.9):
    """Register a constant classifier as a photo model with a confidence calibration."""
    from fashion_core.classes import FASHION_MNIST_CLASSES

    metadata = {
        "arch": "imported", "dataset": {"kind": "fashion-mnist"}, "dataset_name": "Fashion-MNIST + real photos",
        "class_names": list(FASHION_MNIST_CLASSES), "image_shape": [28, 28, 1], "test_accuracy": test_accuracy,
        "additions": {"photos": {"replay": 0, "holdout": 0.15, "seed": 0, "train_photos": 0, "outlier_photos": 0}},
        "ood": {"method": "confidence", "min_confidence": min_confidence},
    }
    return registry.save(name, constant_classifier(logits), metadata)
