"""``bench --quick --json`` runs on a tiny registry and reports every field with sane values."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from fashion_core import cli
from fashion_core.bench import format_report, run_benchmark
from fashion_core.errors import InvalidParameterError
from fashion_core.data import load_fashion_mnist, sample_indices, to_model_input

pytestmark = pytest.mark.slow


def _finite_positive(value):
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


def _fraction(value):
    return isinstance(value, (int, float)) and 0.0 <= value <= 1.0


def _accuracy_on_bench_sample(registry, name, settings):
    """A model's accuracy on bench's seeded test sample, by one unbatched call and scikit-learn."""
    from sklearn.metrics import accuracy_score

    dataset = load_fashion_mnist()
    idx = sample_indices(len(dataset.y_test), settings["test_images"])
    probabilities = np.asarray(registry.load_classifier(name)(to_model_input(dataset.x_test[idx]), training=False))
    return accuracy_score(dataset.y_test[idx], probabilities.argmax(axis=1))


def test_bench_quick_json(models_env, capsys):
    assert cli.main(["bench", "--quick", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)

    assert result["quick"] is True and result["date"] and _finite_positive(result["seconds"])
    assert set(result["machine"]) == {"cpu_count", "platform", "processor", "python", "tensorflow", "keras"}
    assert result["machine"]["cpu_count"] >= 1
    settings = result["settings"]
    assert settings["test_images"] == 1000
    assert settings["latency_calls"] >= 50

    models = {row["name"]: row for row in result["models"]}
    assert set(models) == {"tiny_cnn", "tiny_ae"}
    for row in models.values():
        assert set(row) == {"name", "arch", "params", "test_accuracy", "flip_tta_accuracy",
                            "images_per_second", "speed_vs_seed003"}
        assert _fraction(row["test_accuracy"])
        assert abs(row["test_accuracy"] - _accuracy_on_bench_sample(models_env, row["name"], settings)) <= 1 / settings["test_images"]
        assert row["flip_tta_accuracy"] is None  # neither tiny model uses flip-TTA
        assert _finite_positive(row["images_per_second"]) and _finite_positive(row["speed_vs_seed003"])
    assert "untrained" in result["seed003"]["source"] and _finite_positive(result["seed003"]["images_per_second"])

    single = result["single_image"]
    assert single["model"] in models and single["calls"] == settings["latency_calls"]
    assert 0 < single["p50_ms"] <= single["p95_ms"] and single["target_p50_ms"] == 15.0

    nb = result["neighbours"]
    assert nb["encoder"] in models and nb["k"] == 10 and nb["encoder_description"]
    assert {r["name"] for r in nb["per_encoder"]} == set(models)
    assert nb["precision_at_k"] == max(r["precision_at_k"] for r in nb["per_encoder"])
    assert all(_fraction(r["precision_at_k"]) for r in nb["per_encoder"])
    assert nb["gallery_images"] == settings["gallery_images"] and nb["gallery_images"] > 1000
    assert 0 < nb["query_p50_ms"] <= nb["query_p95_ms"] and _fraction(nb["recall_vs_brute_force"])

    training = result["training"]
    assert training["arch"] == "fashion_net" and training["images"] == settings["training_images"]
    assert _finite_positive(training["images_per_second"])

    photo = result["photo_proxy"]
    assert photo["n"] == settings["photo_images"] and photo["model"] == single["model"]
    assert _fraction(photo["clean_accuracy"]) and _fraction(photo["photo_accuracy"]) and photo["ratio"] >= 0

    calibration = result["calibration"]
    assert calibration["target_ece"] == 0.015 and calibration["n_bins"] == 15
    assert {r["name"] for r in calibration["models"]} == set(models)
    for row in calibration["models"]:
        assert set(row) == {"name", "temperature", "method", "ece_before", "ece"}
        assert _fraction(row["ece_before"]) and _fraction(row["ece"]) and _finite_positive(row["temperature"])

    saliency = result["saliency"]
    assert saliency["model"] in models and saliency["n"] == settings["saliency_images"] == 40
    assert saliency["hide_fraction"] == 0.2 and saliency["target_share"] == 0.8
    assert saliency["default_method"] == "occlusion" and _fraction(saliency["share_salient_lowers_more"])
    assert {m["method"] for m in saliency["methods"]} == {"occlusion", "grad_cam"}
    for method in saliency["methods"]:
        assert _fraction(method["share_salient_lowers_more"]) and method["seconds"] >= 0

    ann = result["ann"]
    assert ann["n"] == 5_000 and ann["dims"] == 64 and ann["k"] == 10 and "HNSW" in ann["index"]
    assert _finite_positive(ann["build_seconds"]) and _finite_positive(ann["query_ms_p50"])
    assert _finite_positive(ann["exact_query_ms_p50"]) and _fraction(ann["recall_at_10"])
    assert ann["queries"] == settings["latency_calls"] and ann["targets"] == {"recall_at_10": 0.95, "query_ms_p50": 5.0}
    assert result["suites"][-1] == "ann" and len(result["suites"]) == 10

    table = format_report(result)
    assert "tiny_cnn" in table and "precision@10" in table and "p50" in table and "img/s" in table
    assert "ECE" in table and "most salient" in table and "recall@10" in table


def test_a_suite_runs_alone_and_save_replaces_only_its_keys(registry, tmp_path, capsys):
    saved = tmp_path / "bench.json"
    saved.write_text(json.dumps({"date": "earlier", "models": ["kept"], "suites": ["models"], "ann": {"n": 1}}))
    assert cli.main(["bench", "--quick", "--suite", "ann", "--json", "--save", str(saved)]) == 0  # no models needed
    result = json.loads(capsys.readouterr().out)
    assert result["suites"] == ["ann"] and set(result) >= {"ann", "machine", "settings"} and "models" not in result
    merged = json.loads(saved.read_text())
    assert merged["models"] == ["kept"] and merged["date"] == "earlier"  # what the suite did not run stays
    assert merged["ann"] == result["ann"] and merged["suites"] == ["models", "ann"]
    with pytest.raises(InvalidParameterError, match="unknown bench suite 'nothing'"):
        run_benchmark(quick=True, suites=["nothing"])


def test_bench_refuses_an_empty_registry(registry, capsys):
    assert cli.main(["bench", "--quick"]) == 2
    assert "no Fashion-MNIST models" in capsys.readouterr().err


def test_calibration_covers_the_photo_models_at_their_own_input_size(photo_models):
    """Photo models answer the same ten classes on the same test images, rendered at their own
    size: bench measures their calibration too; a model with other classes is left out."""
    from fashion_core.bench import calibration_models, shipped_models
    from tests.helpers import save_photo_model

    entry = photo_models.get("sure_sneaker")
    photo_models.update_metadata("sure_sneaker", dataset={"kind": "fashion-mnist", "image_size": 32, "color": True})
    save_photo_model(photo_models, "other_classes", np.zeros(10))
    photo_models.update_metadata("other_classes", class_names=[f"c{i}" for i in range(10)],
                                 dataset={"kind": "fashion-mnist", "image_size": 32, "color": True})
    native = shipped_models(photo_models)
    assert [e.name for e in native] == ["unsure"]
    assert [e.name for e in calibration_models(photo_models, native)] == ["unsure", entry.name]
