import numpy as np
import pytest

from fashion_core.evaluation import evaluate_probabilities


def test_metrics_on_a_known_confusion():
    names = ("a", "b", "c")
    y_true = np.array([0, 0, 1, 1, 2, 2])
    probs = np.array([
        [0.9, 0.05, 0.05],
        [0.2, 0.7, 0.1],   # a predicted as b (confident mistake)
        [0.1, 0.8, 0.1],
        [0.1, 0.6, 0.3],
        [0.1, 0.1, 0.8],
        [0.5, 0.3, 0.2],   # c predicted as a, and not in the top 2
    ])
    result = evaluate_probabilities(probs, y_true, names, top_k=(2,))
    assert result["accuracy"] == pytest.approx(4 / 6)
    assert result["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    per = {row["class"]: row for row in result["per_class"]}
    assert per["b"]["precision"] == pytest.approx(2 / 3)
    assert per["b"]["recall"] == pytest.approx(1.0)
    assert per["a"]["specificity"] == pytest.approx(3 / 4)  # one of four non-a predicted as a
    assert per["c"]["support"] == 2
    assert result["top_k_accuracy"]["2"] == pytest.approx(5 / 6)
    assert [m["index"] for m in result["mistakes"]] == [1, 5]  # most confident wrong answer first
    assert result["mistakes"][0] == {"index": 1, "true": 0, "predicted": 1, "confidence": pytest.approx(0.7)}
    expected_loss = -np.mean(np.log(probs[np.arange(6), y_true]))
    assert result["loss"] == pytest.approx(expected_loss, rel=1e-4)


def test_trained_model_evaluation_is_stored(trained_registry):
    evaluation = trained_registry.evaluation("tiny_cnn")
    assert evaluation["n_samples"] == sum(row["support"] for row in evaluation["per_class"])
    assert np.array(evaluation["confusion_matrix"]).sum() == evaluation["n_samples"]
    meta = trained_registry.get("tiny_cnn").metadata
    assert meta["test_accuracy"] == evaluation["accuracy"]
    assert meta["class_names"][0] == "T-shirt/top" and meta["image_shape"] == [28, 28, 1]
    assert meta["command"].startswith("python -m fashion_core train --arch seed004_cnn")
    assert trained_registry.get("tiny_ae").has_autoencoder
