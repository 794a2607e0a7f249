"""Classifier: registry loading, the preprocess → forward → postprocess stages, batching,
the photo benchmark and latency (tiny models: no assertion needs a well-trained model)."""

import io
import json
import time

import numpy as np
import pytest
from PIL import Image

from fashion_core.classes import keywords_for
from fashion_core.data import to_model_input
from fashion_core.errors import ImageError, InvalidNameError, ModelNotFoundError
from fashion_core.inference import Classifier, Prediction
from fashion_core.registry import best_model_name
from fashion_core.photo_proxy import catalogue_photo_accuracy
from fashion_core.registry import Registry
from tests.helpers import png_bytes


@pytest.fixture(scope="module")
def classifier(trained_registry):
    return Classifier.from_registry("tiny_cnn", trained_registry)


def test_best_model_name_is_highest_test_accuracy(trained_registry, tmp_path):
    accuracies = {e.name: e.metadata["test_accuracy"] for e in trained_registry.list()}
    assert best_model_name(trained_registry) == max(accuracies, key=accuracies.get)
    assert best_model_name(trained_registry, dataset_kind="folder") is None
    assert best_model_name(Registry(tmp_path / "empty")) is None


def test_from_registry_borrows_an_autoencoder_of_the_same_dataset(classifier, trained_registry):
    assert classifier.name == "tiny_cnn" and classifier.image_shape == (28, 28, 1)
    assert classifier.class_names == tuple(trained_registry.get("tiny_cnn").metadata["class_names"])
    assert classifier.ood_source == "tiny_ae"
    assert classifier.ood["reconstruction_threshold"] > 0
    own = Classifier.from_registry("tiny_ae", trained_registry)
    assert own.ood_source == "tiny_ae"


def test_from_registry_errors(trained_registry, tmp_path):
    with pytest.raises(ModelNotFoundError):
        Classifier.from_registry("missing", trained_registry)
    with pytest.raises(InvalidNameError):
        Classifier.from_registry("../escape", trained_registry)
    with pytest.raises(ModelNotFoundError):
        Classifier.from_registry(None, Registry(tmp_path / "empty"))


def test_forward_matches_the_model(classifier, small_dataset):
    x = to_model_input(small_dataset.x_test[:7])
    probabilities = classifier.forward(x)
    assert probabilities.shape == (7, 10)
    np.testing.assert_allclose(probabilities, np.asarray(classifier.model(x, training=False)), atol=1e-5)
    assert classifier.forward(x[:1]).shape == (1, 10)  # any batch size, same compiled function


def test_classify_png_bytes(classifier, small_dataset):
    image = small_dataset.x_test[3]
    prediction = classifier.classify(png_bytes(image[..., 0]), top_k=4)
    assert isinstance(prediction, Prediction)
    expected = classifier.calibrated(classifier.forward(to_model_input(image[None]))[0])  # what people read
    assert prediction.class_index == int(np.argmax(expected))
    assert prediction.class_name == classifier.class_names[prediction.class_index]
    assert prediction.probability == pytest.approx(float(expected.max()), abs=1e-5)
    assert [name for name, _ in prediction.top_k][0] == prediction.class_name and len(prediction.top_k) == 4
    assert all(a[1] >= b[1] for a, b in zip(prediction.top_k, prediction.top_k[1:]))
    assert prediction.keywords == keywords_for(prediction.class_name)
    assert prediction.ood_score is not None and prediction.ood_score >= 0
    payload = json.loads(json.dumps(prediction.to_dict()))
    assert set(payload) == {"class_index", "class_name", "probability", "top_k", "keywords", "flagged",
                            "flag_reasons", "ood_score", "none_of_these"}
    assert set(payload["top_k"][0]) == {"class", "probability"}


def test_min_confidence_flag(trained_registry):
    always = Classifier.from_registry("tiny_cnn", trained_registry, min_confidence=1.01)
    never = Classifier.from_registry("tiny_cnn", trained_registry, min_confidence=0.0)
    data = png_bytes(np.pad(np.full((20, 12), 200, np.uint8), 4))
    flagged = always.classify(data)
    assert flagged.flagged and flagged.flag_reasons[0].startswith("low confidence (")
    assert not any(r.startswith("low confidence") for r in never.classify(data).flag_reasons)


def test_without_autoencoder_no_ood_score(classifier):
    plain = Classifier(classifier.model, classifier.class_names, classifier.image_shape)
    prediction = plain.classify(np.zeros((28, 28), np.uint8))
    assert prediction.ood_score is None and prediction.to_dict()["ood_score"] is None


def test_classify_many_keeps_order_and_isolates_bad_items(classifier, small_dataset):
    good = [png_bytes(i[..., 0]) for i in small_dataset.x_test[:3]]
    items = [("a.png", good[0]), ("bad.png", b"not an image"), ("b.png", good[1]), ("empty.jpg", b""), ("c.png", good[2])]
    results = classifier.classify_many(items)
    assert [type(r).__name__ for r in results] == ["Prediction", "ImageError", "Prediction", "ImageError", "Prediction"]
    assert "bad.png" in str(results[1]) and "empty.jpg" in str(results[3])
    single = [classifier.classify(g).class_index for g in good]
    assert [results[i].class_index for i in (0, 2, 4)] == single
    assert classifier.classify_many([]) == []


def test_preprocessing_keeps_dataset_accuracy(classifier, small_dataset):
    x, y = small_dataset.x_test[:200], small_dataset.y_test[:200]
    raw = classifier.forward(to_model_input(x)).argmax(axis=1)
    prepared = np.stack([classifier.preprocess(i).model_input for i in x])
    via_path = classifier.forward(prepared).argmax(axis=1)
    assert abs(np.mean(via_path == y) - np.mean(raw == y)) <= 0.01


def test_catalogue_photo_accuracy_report(classifier, small_dataset):
    result = catalogue_photo_accuracy(classifier, small_dataset, n=120, seed=0)
    assert set(result) == {"n", "clean_accuracy", "photo_accuracy", "ratio"} and result["n"] == 120
    assert 0 <= result["photo_accuracy"] <= 1 and 0 < result["clean_accuracy"] <= 1
    assert result["ratio"] == pytest.approx(result["photo_accuracy"] / result["clean_accuracy"])


def test_latency_png_bytes_to_prediction(classifier, small_dataset, capsys):
    data = png_bytes(small_dataset.x_test[0][..., 0])
    for _ in range(5):  # warm-up (tracing)
        classifier.classify(data)
    times = []
    for _ in range(200):
        start = time.perf_counter()
        classifier.classify(data)
        times.append(time.perf_counter() - start)
    p50 = float(np.median(times)) * 1000
    with capsys.disabled():
        print(f"\nclassify latency (PNG bytes → Prediction, tiny model + OOD): p50 {p50:.1f} ms")
    assert p50 < 60  # target is ≤ 15 ms on 2 idle cores; generous for busy CI machines


def test_photo_upload_end_to_end(classifier):
    image = Image.new("RGB", (320, 240), (245, 245, 240))
    image.paste((20, 30, 120), (100, 30, 220, 210))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=85)
    prediction = classifier.classify(buffer.getvalue(), name="photo.jpg")
    assert prediction.prepared.inverted and prediction.prepared.bbox is not None
    assert prediction.prepared.model_input.shape == (28, 28, 1)
    with pytest.raises(ImageError, match="photo.jpg"):
        classifier.classify(buffer.getvalue()[:200], name="photo.jpg")
