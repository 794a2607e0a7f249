"""Export a registry model for deployment: ``.keras``, a TensorFlow SavedModel or TFLite, each
with a small ``preprocessing.json`` beside it (input size, channels, light-background inversion,
class names, temperature, flip-TTA): what a deployed model needs to see what the studio's models
see.

    python -m fashion_core export NAME PATH --format keras|savedmodel|tflite

``keras`` copies the registry file (``PATH`` a file or folder). ``savedmodel`` writes a folder
(TF Serving, ``tf.saved_model.load(PATH).serve(x)``). ``tflite`` writes ``PATH`` (a ``.tflite``
file) for phones and edge devices. Both graphs are traced in inference mode, so training-time
augmentation and dropout are not in them.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tempfile
import zipfile
from pathlib import Path

from . import litert
from .errors import InvalidParameterError
from .preprocess import recipe
from .registry import Registry

FORMATS = ("keras", "savedmodel", "tflite")
SUFFIXES = {"keras": ".keras", "savedmodel": "", "tflite": ".tflite"}
PREPROCESSING_FILE = "preprocessing.json"


def check_format(fmt):
    if fmt not in FORMATS:
        raise InvalidParameterError(f"unknown export format {fmt!r}; choose one of: {', '.join(FORMATS)}.")
    return fmt


CALIBRATION_NOTE = (
    "fashion_core.calibration.Calibration.from_json(calibration).apply(p) reproduces it; by hand: take the "
    "predicted class k = argmax p; divide log p by class_temperatures[k] (or temperature when absent) and "
    "renormalise; with top_label_beta, map the top probability c to 1 / (1 + exp(-(a ln c - b ln(1 - c) + m))) "
    "with (a, b, m) = top_label_beta[k], never below what keeps class k on top, and scale the other classes "
    "to fill the rest")


def preprocessing_facts(entry):
    """``preprocessing.json``: the input recipe plus what the model's answers mean."""
    return {
        "model": entry.name,
        "class_names": list(entry.metadata.get("class_names") or []),
        "output": "softmax probabilities in class_names order",
        "temperature": entry.temperature,
        "temperature_note": "divide log-probabilities by it and renormalise for calibrated confidence "
                            "(the whole calibration when calibration.method is 'temperature')",
        "calibration": entry.calibrator.to_json(),
        "calibration_note": CALIBRATION_NOTE,
        "flip_tta": entry.uses_flip_tta,
        "flip_tta_note": "average the probabilities of the image and its left-right mirror" if entry.uses_flip_tta else None,
        **recipe(entry.metadata.get("image_shape") or (28, 28, 1)),
    }


def _write_tflite(model, path):
    Path(path).write_bytes(litert.flatbuffer(model))


def export_model(name, destination, fmt="keras", registry=None):
    """Write registry model ``name`` to ``destination`` in ``fmt`` plus its preprocessing JSON.

    ``destination`` is a file path (``keras``, ``tflite``) or a folder to create (``savedmodel``);
    an existing folder receives ``NAME.keras`` / ``NAME.tflite`` / ``NAME/``. The model is first
    written to a temporary sibling and moved into place, so a failed export leaves nothing behind.
    Returns ``{"name", "format", "path", "preprocessing"}``.
    """
    check_format(fmt)
    registry = registry or Registry()
    entry = registry.get(name)
    destination = Path(destination).expanduser()
    if destination.is_dir() and (fmt != "savedmodel" or any(destination.iterdir())):
        destination = destination / f"{name}{SUFFIXES[fmt]}"
    if fmt == "savedmodel" and destination.exists() and any(destination.iterdir()):
        raise InvalidParameterError(f"{destination}: folder exists and is not empty.")
    if not destination.parent.is_dir():
        raise InvalidParameterError(f"{destination.parent}: no such folder.")
    staging = Path(tempfile.mkdtemp(prefix=f".{destination.name}-", dir=destination.parent))
    try:
        target = staging / "model"
        if fmt == "keras" and not entry.is_ensemble:
            shutil.copyfile(entry.model_file, target)
        elif fmt == "keras":  # one self-contained file: the members' weights inside
            registry.load_classifier(name).save(target.with_suffix(".keras"))
            os.replace(target.with_suffix(".keras"), target)
        else:
            model = registry.load_classifier(name)
            (litert.write_savedmodel if fmt == "savedmodel" else _write_tflite)(model, target)
        facts = preprocessing_facts(entry)
        if fmt == "savedmodel":
            (target / PREPROCESSING_FILE).write_text(json.dumps(facts, indent=1))
            if destination.exists():
                destination.rmdir()
            os.replace(target, destination)
            preprocessing = destination / PREPROCESSING_FILE
        else:
            preprocessing = destination.with_name(destination.stem + "." + PREPROCESSING_FILE)
            (staging / PREPROCESSING_FILE).write_text(json.dumps(facts, indent=1))
            os.replace(staging / PREPROCESSING_FILE, preprocessing)
            os.replace(target, destination)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return {"name": name, "format": fmt, "path": str(destination), "preprocessing": str(preprocessing)}


def export_archive(name, fmt="keras", registry=None):
    """``(file name, bytes)`` of a zip holding the exported model and its preprocessing JSON
    (the Models page's download)."""
    check_format(fmt)
    with tempfile.TemporaryDirectory() as tmp:
        out = export_model(name, Path(tmp) / f"{name}{SUFFIXES[fmt]}", fmt, registry=registry)
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            root = Path(tmp)
            for path in sorted(root.rglob("*")):
                if path.is_file():
                    archive.write(path, path.relative_to(root).as_posix())
    return f"{name}-{fmt}.zip", buffer.getvalue()
