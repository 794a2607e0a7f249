"""Calibrated confidence, saliency and the label audit: engine behaviour and CLI contracts."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fashion_core import cli
from fashion_core.errors import InvalidParameterError
from tests.helpers import PHOTO_FIXTURES, constant_classifier, png_bytes

# --- calibration ---------------------------------------------------------------------------------


def _overconfident(n=2000, seed=0):
    """Probabilities that say 95% but are right 70% of the time, and their labels."""
    rng = np.random.default_rng(seed)
    predicted = rng.integers(0, 5, n)
    labels = np.where(rng.random(n) < 0.7, predicted, (predicted + 1) % 5)
    p = np.full((n, 5), 0.05 / 4)
    p[np.arange(n), predicted] = 0.95
    return p, labels


def test_temperature_fitted_on_overconfident_answers_lowers_the_ece():
    from fashion_core.calibration import apply_temperature, calibration_report, fit_temperature

    p, y = _overconfident()
    t = fit_temperature(p, y)
    assert t > 1  # overconfident: softened
    calibrated = apply_temperature(p, t)
    assert np.allclose(calibrated.sum(axis=1), 1) and (calibrated.argmax(1) == p.argmax(1)).all()
    report = calibration_report(p, y, t)
    assert report["ece"] < report["ece_before"] and report["temperature"] == t
    assert len(report["bins"]) == 15 and sum(b["count"] for b in report["bins"]) == len(y)
    assert set(report["bins"][0]) == {"confidence", "accuracy", "count"}
    assert np.array_equal(apply_temperature(p, 1.0), p)
    with pytest.raises(InvalidParameterError):
        apply_temperature(p, -1)


def _bent(n=6000, k=4, seed=0):
    """Answers one temperature cannot calibrate: right far more often than they say in the middle
    (a 50% answer is right 75% of the time), while the confident ones are right as often as they say."""
    rng = np.random.default_rng(seed)
    predicted = rng.integers(0, k, n)
    confidence = rng.uniform(0.3, 0.99, n)
    truth_rate = np.where(confidence < 0.8, np.minimum(confidence + 0.25, 0.95), confidence)
    labels = np.where(rng.random(n) < truth_rate, predicted, (predicted + 1 + rng.integers(0, k - 1, n)) % k)
    p = np.empty((n, k))
    p[:] = ((1 - confidence) / (k - 1))[:, None]
    p[np.arange(n), predicted] = confidence
    return p, labels


def test_per_class_calibration_bends_what_one_temperature_cannot():
    from fashion_core.calibration import (Calibration, calibration_report, cross_validated_losses, fit_calibration,
                                          fit_temperature)

    p, y = _bent()
    test_p, test_y = _bent(seed=1)
    calibration, losses = fit_calibration(p, y)
    assert calibration.method == "class_temperature+top_label_beta"
    assert losses == cross_validated_losses(p, y) and losses[calibration.method] == min(losses.values())
    calibrated = calibration.apply(test_p)
    assert np.allclose(calibrated.sum(axis=1), 1) and (calibrated.argmax(1) == test_p.argmax(1)).all()
    one_temperature = calibration_report(test_p, test_y, fit_temperature(p, y))["ece"]
    assert calibration_report(test_p, test_y, calibration)["ece"] < one_temperature / 2
    assert calibration.apply(test_p[0]).shape == (4,)  # one row as well as many
    # stored and read back exactly; older or damaged files give what can be trusted of them
    assert Calibration.from_json(calibration.to_json(), num_classes=4) == calibration
    assert Calibration.from_json({"temperature": 1.7}) == Calibration(1.7)
    assert Calibration.from_json({"temperature": 1.7, "class_temperatures": [1, 2]}, num_classes=4) == Calibration(1.7)
    assert Calibration.from_json({"temperature": -3, "top_label_beta": "x"}) == Calibration()
    assert Calibration.from_json(None).apply(test_p) is not None


def test_a_calibrated_model_keeps_one_temperature_when_nothing_richer_helps():
    from fashion_core.calibration import fit_calibration

    p, y = _overconfident()  # one confidence for every answer: nothing for a per-class map to bend
    assert fit_calibration(p, y)[0].method == "temperature"
    small, _ = fit_calibration(*_bent(n=300))  # too few answers for 5 folds of 100: one temperature
    assert small.method == "temperature" and small.class_temperatures == ()


def test_coverage_accuracy_trades_answers_for_accuracy():
    from fashion_core.calibration import coverage_accuracy, coverage_curve

    p = np.array([[0.9, 0.1], [0.6, 0.4], [0.55, 0.45], [0.2, 0.8]])
    y = np.array([0, 1, 0, 1])
    assert coverage_accuracy(p, y, 0.0) == (1.0, 0.75)
    assert coverage_accuracy(p, y, 0.7) == (0.5, 1.0)
    assert coverage_accuracy(p, y, 0.99) == (0.0, None)
    assert len(coverage_curve(p, y)) == 100


def test_training_stores_a_temperature_and_the_classifier_serves_it(trained_registry):
    from fashion_core.inference import Classifier

    entry = trained_registry.get("tiny_cnn")
    calibration = entry.calibration
    assert calibration["temperature"] == entry.temperature > 0
    assert "validation split" in calibration["fitted_on"] and calibration["test_images"] > 0
    assert {"ece", "ece_before", "bins", "bins_before"} <= set(calibration)
    classifier = Classifier.from_registry("tiny_cnn", registry=trained_registry)
    assert classifier.calibration == entry.calibrator and entry.calibrator.method == calibration["method"]
    prediction = classifier.classify(png_bytes(np.full((28, 28), 200, np.uint8)))
    raw = classifier.forward(prediction.prepared.model_input[None])[0]
    assert prediction.probability == pytest.approx(float(classifier.calibrated(raw).max()))


def test_confidence_ood_reads_raw_probabilities(photo_models):
    """A temperature changes what people read, never the calibrated "none of these" flag."""
    from fashion_core.inference import Classifier

    image = png_bytes(np.full((28, 28), 200, np.uint8))
    plain = Classifier.from_registry("unsure", registry=photo_models).classify(image)
    hot = Classifier.from_registry("unsure", registry=photo_models, calibration=0.2).classify(image)
    assert plain.none_of_these and hot.none_of_these and plain.ood_score == hot.ood_score


def test_calibrate_and_evaluate_commands(models_env, capsys):
    assert cli.main(["calibrate", "tiny_ae", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["name"] == "tiny_ae" and payload["temperature"] > 0 and 0 <= payload["ece"] <= 1
    assert models_env.get("tiny_ae").temperature == pytest.approx(payload["temperature"])
    assert cli.main(["evaluate", "tiny_ae", "--json"]) == 0
    calibration = json.loads(capsys.readouterr().out)["calibration"]
    assert set(calibration) == {"ece", "ece_before", "method", "temperature", "bins"}
    assert calibration["method"] == payload["method"] == models_env.get("tiny_ae").calibrator.method
    assert calibration["temperature"] == pytest.approx(payload["temperature"]) and len(calibration["bins"]) == 15
    assert cli.main(["calibrate", "no_such_model"]) == 2
    assert "no model named" in capsys.readouterr().err


# --- saliency ------------------------------------------------------------------------------------


def test_saliency_maps_are_unit_maps_at_the_input_size(trained_registry, small_dataset):
    from fashion_core.saliency import cam_layer, faithfulness, overlay, saliency_maps

    model = trained_registry.load_classifier("tiny_cnn")
    images = small_dataset.x_test[:3]
    assert cam_layer(model) is not None
    for method in ("occlusion", "grad_cam"):
        maps = saliency_maps(model, images, [0, 1, 2], method=method, flip_tta=method == "grad_cam")
        assert maps.shape == (3, 28, 28) and maps.min() >= 0 and maps.max() <= 1
    dense = constant_classifier(np.arange(10.0))
    assert cam_layer(dense) is None
    assert saliency_maps(dense, images[:1], [0], method="auto").shape == (1, 28, 28)  # occlusion fallback
    with pytest.raises(InvalidParameterError):
        saliency_maps(dense, images[:1], [0], method="grad_cam")
    result = faithfulness(model, images, method="occlusion")
    assert result["n"] == 3 and 0 <= result["share_salient_lowers_more"] <= 1
    shown = overlay(images[0], maps[0], scale=2)
    assert shown.shape == (56, 56, 3) and shown.dtype == np.uint8


def test_classify_explain_adds_a_saliency_map(models_env, tmp_path, capsys):
    photo = sorted(PHOTO_FIXTURES.glob("images/*"))[0]
    assert cli.main(["classify", str(photo), "--model", "tiny_cnn", "--explain", "--json"]) == 0
    row = json.loads(capsys.readouterr().out)[0]
    saliency = np.asarray(row["saliency"])
    assert saliency.shape == (28, 28) and saliency.min() >= 0 and saliency.max() <= 1
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    assert cli.main(["classify", str(bad), "--model", "tiny_cnn", "--explain", "--json"]) == 2
    out = json.loads(capsys.readouterr().out)
    assert "error" in out[0] and "saliency" not in out[0]
    assert cli.main(["classify", str(photo), "--model", "nope", "--explain"]) == 2


# --- label audit ---------------------------------------------------------------------------------


def test_confident_learning_ranks_flipped_labels_first():
    from fashion_core.audit import flip_labels, rank_label_issues

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, 400)
    p = np.full((400, 4), 0.02)
    p[np.arange(400), labels] = 0.94
    noisy, flipped = flip_labels(labels, 20, 4, seed=0)
    assert (noisy[flipped] != labels[flipped]).all() and (np.delete(noisy, flipped) == np.delete(labels, flipped)).all()
    ranking = rank_label_issues(p, noisy)
    assert set(ranking["order"][:20]) == set(flipped)
    assert ranking["flagged"].sum() == 20 and (ranking["suggested"][flipped] == labels[flipped]).all()


def test_audit_labels_command_saves_a_ranked_audit(models_env, capsys, tmp_path):
    assert cli.main(["audit-labels", "--limit", "300", "--folds", "2", "--epochs", "1", "--rows", "50",
                     "--name", "tiny_audit", "--quiet", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["name"] == "tiny_audit" and payload["audited"] == 300 and len(payload["issues"]) == 50
    row = payload["issues"][0]
    assert set(row) == {"index", "given", "suggested", "score", "flagged"} and row["given"] != row["suggested"]
    scores = [r["score"] for r in payload["issues"] if r["flagged"]]
    assert scores == sorted(scores, reverse=True)
    assert models_env.load_audit("tiny_audit")["issues"] == payload["issues"]
    assert "tiny_audit" in models_env.audit_names() and "_audits" not in models_env.names()
    for bad in (["--folds", "1"], ["--folds", "50"], ["--limit", "1"], ["--name", "../x"]):
        assert cli.main(["audit-labels", "--limit", "300", *bad]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error:") and "Traceback" not in err
    assert cli.main(["audit-labels", "--data-dir", str(tmp_path / "nowhere"), "--folds", "2"]) == 2


def test_without_images_drops_training_rows(small_dataset):
    from fashion_core.audit import without_images

    cleaned = without_images(small_dataset, [0, 5, 7], note={"audit": "x"})
    assert len(cleaned.y_train) == len(small_dataset.y_train) - 3
    assert cleaned.additions["cleaned"] == {"excluded": 3, "audit": "x"}
    assert len(cleaned.y_test) == len(small_dataset.y_test)


def test_calibrate_a_photo_model_on_its_held_out_photos(photo_models, capsys):
    """Photo models fit their temperature on the validation set their training held out
    (Fashion-MNIST replay images + held-out photos), never on the test set."""
    assert cli.main(["calibrate", "sure_sneaker", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["validation_images"] > 0 and payload["test_images"] == 10000
    assert photo_models.get("sure_sneaker").temperature == pytest.approx(payload["temperature"])
