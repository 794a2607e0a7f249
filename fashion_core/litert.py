"""Serving a classifier through LiteRT (TensorFlow Lite's runtime; XNNPACK kernels on the CPU).

One photo through ``photo_lite0`` (two 128x128x3 images with flip-TTA) takes about 12 ms through
TensorFlow's graph executor on this 2-core CPU and about 3 ms through LiteRT, with the same
probabilities (largest difference ~3e-7); ``python -m fashion_core bench`` times a photo both ways
(``single_image``: ``p50_ms``, ``tensorflow_p50_ms``, ``litert_speedup``). The
flatbuffer is written beside the model when its artefacts are precomputed (``served-STAMP.tflite``,
named by ``precompute.stamp`` so a file made from other weights is never used), and only for the
models whose single-image latency people wait for: photo models (``ModelEntry.is_photo_model``).
Without the file, or without the ``ai-edge-litert`` package, serving falls back to
``predict.compiled_call`` — same answers, slower. A LiteRT file holds operators only: loading one
runs no Python code.

LiteRT interpreters are not thread-safe and each holds its own copy of the weights (XNNPACK packs
them: about 20 MB for Lite0), so calls borrow one from a small pool (``InterpreterPool``): at most
``POOL_SIZE`` exist per model, made when first needed, and a call waits for one when all are busy —
more at once would only share the same CPU cores, and would hold more memory.
"""

from __future__ import annotations

import os
import queue
import tempfile
import threading
from pathlib import Path

import numpy as np

FILE_PREFIX = "served-"
FILE_SUFFIX = ".tflite"
THREADS = 2  # per interpreter: a single photo gains little from more, and sessions run side by side
POOL_SIZE = 2  # interpreters per model at most (calls beyond wait their turn)


def available():
    """Whether the LiteRT runtime (the ``ai-edge-litert`` package) can be imported."""
    try:
        from ai_edge_litert.interpreter import Interpreter  # noqa: F401
    except ImportError:
        return False
    return True


def write_savedmodel(model, folder):
    """A SavedModel whose ``serve`` endpoint calls the model in inference mode (a traced
    ``training=False``, so training-time augmentation and dropout are not in the graph)."""
    import keras
    import tensorflow as tf

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(name="serve", fn=lambda images: model(images, training=False),
                         input_signature=[tf.TensorSpec((None, *model.input_shape[1:]), tf.float32)])
    archive.write_out(str(folder), verbose=False)


def flatbuffer(model, encoder=None):
    """A LiteRT (TFLite) flatbuffer of ``model`` in inference mode, float32, batch size free (the
    SavedModel of ``write_savedmodel``, converted). Used by ``export --format tflite`` too.

    With ``encoder`` (a Keras model built on ``model``'s own layers, same input: ``latent.
    classifier_encoder``) the flatbuffer has a second output, the embedding, and holds the shared
    weights once: the Latent space page then embeds a photo without TensorFlow."""
    import tensorflow as tf

    if encoder is not None:
        import keras

        inputs = keras.Input(tuple(model.input_shape[1:]), name="image")
        model = keras.Model(inputs, [model(inputs), encoder(inputs)], name=f"{model.name}_served")

    with tempfile.TemporaryDirectory() as tmp:
        write_savedmodel(model, Path(tmp) / "saved")
        return tf.lite.TFLiteConverter.from_saved_model(str(Path(tmp) / "saved")).convert()


def path_for(entry, entry_stamp):
    return Path(entry.path) / f"{FILE_PREFIX}{entry_stamp}{FILE_SUFFIX}"


def wanted(entry):
    """Whether ``entry`` is served through LiteRT (see the module docstring)."""
    return bool(entry.is_photo_model)


def write(entry, model, entry_stamp, encoder=None):
    """Write ``model``'s flatbuffer (with ``encoder``'s embedding as a second output) for ``entry``
    atomically and remove stale ones. Returns the path."""
    target = path_for(entry, entry_stamp)
    content = flatbuffer(model, encoder)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(content)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    for old in Path(entry.path).glob(f"{FILE_PREFIX}*{FILE_SUFFIX}"):
        if old != target:
            old.unlink(missing_ok=True)
    return target


def load(entry, entry_stamp):
    """The flatbuffer (bytes) made from ``entry``'s current model files, or None (missing, stale,
    unreadable, or LiteRT not installed). Nothing is written."""
    if not available():
        return None
    try:
        return path_for(entry, entry_stamp).read_bytes()
    except OSError:
        return None


class InterpreterPool:
    """Interpreters of one flatbuffer, lent to one call at a time.

    ``run(batch)`` borrows an idle interpreter — or makes one (about 7 ms for Lite0) while fewer
    than ``size`` exist, or else waits for one to come back — sizes its input to the batch when it
    differs from the last one, runs it and gives it back.
    """

    def __init__(self, content, size=POOL_SIZE, threads=THREADS):
        from ai_edge_litert.interpreter import Interpreter

        self._content = bytes(content)
        self._make = lambda: Interpreter(model_content=self._content, num_threads=threads)
        self._idle = queue.LifoQueue()
        self._size = max(1, int(size))
        self._lock = threading.Lock()
        first = self._prepared(self._make())  # fail now (a damaged file), not on the first photo
        # the last dimension of each output in order: [classes] or [classes, embedding dims]
        self.output_widths = [int(d["shape"][-1]) for d in _in_order(first.get_output_details())]
        self._idle.put(first)
        self.made = 1

    @staticmethod
    def _prepared(interpreter):
        interpreter.allocate_tensors()
        interpreter.batch = None
        return interpreter

    def _borrow(self):
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            pass
        with self._lock:
            make = self.made < self._size
            self.made += int(make)
        if not make:
            return self._idle.get()  # all busy: the next one given back
        try:
            return self._prepared(self._make())
        except BaseException:
            with self._lock:
                self.made -= 1
            raise

    def run(self, batch):
        """(N, H, W, C) float32 → the model's outputs [(N, ...), ...] as NumPy arrays, in the
        model's order (a converted SavedModel names them ``...:0``, ``...:1``)."""
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        interpreter = self._borrow()
        try:
            inp = interpreter.get_input_details()[0]
            if interpreter.batch != len(batch):
                interpreter.resize_tensor_input(inp["index"], batch.shape, strict=False)
                interpreter.allocate_tensors()
                interpreter.batch = len(batch)
            interpreter.set_tensor(inp["index"], batch)
            interpreter.invoke()
            return [np.array(interpreter.get_tensor(d["index"])) for d in _in_order(interpreter.get_output_details())]
        finally:
            self._idle.put(interpreter)


def _in_order(details):
    def position(detail):
        tail = str(detail.get("name", "")).rsplit(":", 1)[-1]
        return int(tail) if tail.isdigit() else 0
    return sorted(details, key=position)


def compiled_call(content, flip_tta=False):
    """A callable (N, H, W, C) float32 → (N, K) probabilities through LiteRT, like
    ``predict.compiled_call``: with ``flip_tta`` the image and its mirror go through in one batch
    and their probabilities are averaged."""
    pool = InterpreterPool(content)

    def call(batch):
        batch = np.asarray(batch, dtype=np.float32)
        if not flip_tta:
            return pool.run(batch)[0]
        both = pool.run(np.concatenate([batch, batch[:, :, ::-1, :]], axis=0))[0]
        return (both[: len(batch)] + both[len(batch):]) / 2

    def embed(batch):
        """(N, H, W, C) → (N, D) embeddings (the image as it is: no mirror), from the same
        interpreters; None when the flatbuffer has no embedding output."""
        return pool.run(np.asarray(batch, dtype=np.float32))[1]

    call.pool = pool
    call.embed = embed if len(pool.output_widths) > 1 else None
    call.plain = lambda batch: pool.run(np.asarray(batch, dtype=np.float32))[0]  # no mirror: saliency's probes
    return call
