"""Out-of-distribution scores and flags: calibration, scores, and plainly-not-garment images."""

import io

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from fashion_core.data import to_model_input
from fashion_core.inference import Classifier
from fashion_core.ood import calibrate, ood_score, reconstruction_errors, threshold_from_errors
from fashion_core.zoo import ModelBundle


def encode(image):
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def noise_photo(seed=0):
    return encode(Image.fromarray(np.random.default_rng(seed).integers(0, 256, (240, 320, 3), dtype=np.uint8)))


def text_page():
    image = Image.new("RGB", (400, 300), "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=28)
    for i, line in enumerate(["Invoice 2024-118", "Total due: 42.00", "Thank you for", "your order!"]):
        draw.text((20, 20 + 60 * i), line, fill="black", font=font)
    return encode(image)


def face_like():
    image = Image.new("RGB", (300, 300), "white")
    draw = ImageDraw.Draw(image)
    draw.ellipse((50, 30, 250, 270), outline="black", width=10)
    draw.ellipse((100, 100, 130, 130), fill="black")
    draw.ellipse((170, 100, 200, 130), fill="black")
    draw.arc((100, 150, 200, 220), start=20, end=160, fill="black", width=10)
    return encode(image)


def test_reconstruction_errors_are_mean_squared_error():
    x = np.random.default_rng(0).random((5, 6, 6, 1)).astype(np.float32)
    assert reconstruction_errors(lambda batch: batch, x).tolist() == [0.0] * 5
    errors = reconstruction_errors(lambda batch: np.zeros_like(batch), x, batch_size=2)
    np.testing.assert_allclose(errors, np.mean(x ** 2, axis=(1, 2, 3)), rtol=1e-6)
    uint8 = (x * 255).astype(np.uint8)  # uint8 input is scaled like the model contract
    assert reconstruction_errors(lambda b: b, uint8).shape == (5,)


def test_threshold_and_score():
    calibration = threshold_from_errors(np.linspace(0.0, 1.0, 101))
    assert calibration["test_p50"] == pytest.approx(0.5) and calibration["test_p99"] == pytest.approx(0.99)
    assert calibration["reconstruction_threshold"] > calibration["test_p99"] and calibration["n"] == 101
    assert ood_score(calibration["reconstruction_threshold"] * 2, calibration) == pytest.approx(2.0)
    assert ood_score(0.1, {}) is None and ood_score(0.1, None) is None


def test_calibrate_without_autoencoder_is_empty(small_dataset):
    assert calibrate(ModelBundle(classifier=None), small_dataset) == {}


def test_training_stores_calibration_with_the_model(trained_registry, small_dataset):
    ood = trained_registry.get("tiny_ae").metadata["ood"]
    assert ood["n"] == len(small_dataset.y_test)
    assert 0 < ood["test_p50"] <= ood["test_p99"] < ood["reconstruction_threshold"]
    assert "ood" not in trained_registry.get("tiny_cnn").metadata  # no autoencoder of its own


@pytest.fixture(scope="module")
def classifier(trained_registry):
    return Classifier.from_registry("tiny_cnn", trained_registry)


def test_real_garments_are_rarely_out_of_distribution(classifier, fashion_mnist, small_dataset):
    seen = {image.tobytes() for image in small_dataset.x_test}  # the calibration images
    unseen = [image for image in fashion_mnist.x_test[:1200] if image.tobytes() not in seen][:1000]
    x = to_model_input(np.stack(unseen))
    scores = classifier.ood_scores(x)
    assert np.mean(scores > 1.0) < 0.05


def test_binary_noise_scores_far_above_garments(classifier, small_dataset):
    garments = classifier.ood_scores(to_model_input(small_dataset.x_test[:200]))
    noise = (np.random.default_rng(0).random((20, 28, 28, 1)) > 0.5).astype(np.float32)
    assert np.min(classifier.ood_scores(noise)) > np.percentile(garments, 99)


def test_score_threshold_drives_the_flag(classifier):
    image = np.pad(np.full((20, 12), 200, np.uint8), 4)
    strict = Classifier(classifier.model, classifier.class_names, classifier.image_shape, min_confidence=0,
                        autoencoder=classifier.autoencoder, ood={"reconstruction_threshold": 1e-12})
    lenient = Classifier(classifier.model, classifier.class_names, classifier.image_shape, min_confidence=0,
                         autoencoder=classifier.autoencoder, ood={"reconstruction_threshold": 1e6})
    flagged = strict.classify(image)
    assert flagged.flagged and flagged.ood_score > 1
    assert "does not look like any of the 10 classes" in flagged.flag_reasons and flagged.none_of_these
    assert not lenient.classify(image).flagged


def test_plainly_not_garments_are_flagged(classifier):
    blank, noise = classifier.classify_many([("blank", encode(Image.new("RGB", (300, 400), "white"))),
                                             ("noise", noise_photo())])
    assert blank.flagged and any("blank" in r for r in blank.flag_reasons)
    assert noise.flagged and any("busy background" in r for r in noise.flag_reasons)
    for name, data in (("text", text_page()), ("face", face_like())):
        prediction = classifier.classify(data, name=name)
        assert prediction.flagged, (name, prediction.to_dict())
        assert prediction.ood_score is not None


def test_catalogue_garments_are_not_flagged_as_odd(classifier, small_dataset):
    """Garments photographed on white: no busy-background or blank flags, OOD score in range."""
    from fashion_core.photo_proxy import make_catalogue_photos

    photos = make_catalogue_photos(small_dataset.x_test[:30], seed=3)
    predictions = classifier.classify_many([(f"p{i}", p) for i, p in enumerate(photos)])
    assert not any(p.prepared.busy_background or p.prepared.blank for p in predictions)
    assert np.mean([p.ood_score > 1 for p in predictions]) <= 0.1
