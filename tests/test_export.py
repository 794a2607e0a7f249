"""Export for deployment: every format reloads outside the studio and answers like the registry
model; the preprocessing a deployed model needs is written beside it; bad input is one line."""

import json
import zipfile

import numpy as np
import pytest

from fashion_core import zoo
from fashion_core.errors import InvalidParameterError
from fashion_core.export import FORMATS, export_archive, export_model
from fashion_core.registry import load_keras_file
from tests.test_cli import run_cli

pytestmark = pytest.mark.slow  # TensorFlow conversions take seconds


@pytest.fixture()
def augmented_model(registry):
    """A small fashion_net (its augmentation layers are random ops a TFLite graph cannot hold),
    random weights, in the temporary registry."""
    model = zoo.build("fashion_net", (28, 28, 1), 10, width=4).classifier
    registry.save("small_net", model, {"arch": "fashion_net", "class_names": [f"c{i}" for i in range(10)],
                                      "image_shape": [28, 28, 1], "test_accuracy": 0.5, "flip_tta_accuracy": 0.5})
    return registry


def _images():
    return np.random.default_rng(0).random((16, 28, 28, 1)).astype(np.float32)


def _tflite_probabilities(path, images):
    import tensorflow as tf

    interpreter = tf.lite.Interpreter(model_path=str(path))
    index = interpreter.get_input_details()[0]["index"]
    interpreter.resize_tensor_input(index, images.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(index, images)
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])


@pytest.mark.parametrize("fmt", FORMATS)
def test_export_round_trip_same_answers(augmented_model, tmp_path, fmt):
    import tensorflow as tf

    registry = augmented_model
    images = _images()
    expected = np.asarray(registry.load_classifier("small_net")(images, training=False))
    out = export_model("small_net", tmp_path / {"keras": "m.keras", "savedmodel": "m", "tflite": "m.tflite"}[fmt],
                       fmt, registry=registry)
    if fmt == "keras":
        got = np.asarray(load_keras_file(out["path"])(images, training=False))
    elif fmt == "savedmodel":
        loaded = tf.saved_model.load(out["path"])  # keep a reference: its variables live on it
        got = loaded.serve(images).numpy()
    else:
        got = _tflite_probabilities(out["path"], images)
    assert (got.argmax(axis=1) == expected.argmax(axis=1)).all()
    np.testing.assert_allclose(got, expected, atol=1e-4)
    facts = json.loads(open(out["preprocessing"]).read())
    assert facts["input_shape"] == [28, 28, 1] and facts["class_names"][0] == "c0"
    assert facts["value_range"] == [0.0, 1.0] and facts["flip_tta"] is True
    assert facts["light_background_inversion"]["level"] > 0
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no staging left behind


def test_archive_holds_model_and_preprocessing(augmented_model):
    import io

    name, data = export_archive("small_net", "keras", registry=augmented_model)
    assert name == "small_net-keras.zip"
    names = zipfile.ZipFile(io.BytesIO(data)).namelist()
    assert sorted(names) == ["small_net.keras", "small_net.preprocessing.json"]


def test_bad_export_input(augmented_model, tmp_path):
    with pytest.raises(InvalidParameterError):
        export_model("small_net", tmp_path / "x", "onnx", registry=augmented_model)
    with pytest.raises(InvalidParameterError):
        export_model("small_net", tmp_path / "no" / "such" / "m.keras", "keras", registry=augmented_model)
    for args in (["export", "small_net", str(tmp_path / "m"), "--format", "onnx"],
                 ["export", "missing_model", str(tmp_path / "m.keras")]):
        result = run_cli(*args)
        assert result.returncode == 2, result.stderr
        assert "Traceback" not in result.stderr and result.stderr.strip().count("\n") == 0
