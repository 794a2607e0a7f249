"""Saliency, calibrated confidence, the label audit, "compare all models" and "you are here" in
the dashboard (AppTest, tiny registry)."""

from __future__ import annotations

import numpy as np

from tests.helpers import assert_clean, open_app, png_bytes

VIEW_KEY = "evaluate_view"  # the key of the Evaluate page's lazy tabs (views/evaluate.py runs on import)


def test_classify_shows_saliency_and_compares_all_models(models_env, fashion_mnist):
    at = open_app("views/classify.py")
    at.selectbox(key="classify_model").set_value("tiny_cnn")
    at.run()
    at.get("file_uploader")[0].set_value([("shirt.png", png_bytes(255 - fashion_mnist.x_test[0, ..., 0]), "image/png")])
    at.toggle(key="classify_explain").set_value(True)
    at.toggle(key="classify_compare_all").set_value(True)
    at.run()
    assert_clean(at)
    captions = [c for image in at.image for c in image.captions]
    assert any(c.startswith("What drove") for c in captions), captions
    table = at.dataframe[-1].value
    assert set(table["model"]) == set(models_env.names())
    assert any("agree" in m.value for m in [*at.success, *at.warning])
    assert any("Calibrated probabilities" in c.value for c in at.caption)


def test_evaluate_calibration_tab_and_saliency_on_mistakes(models_env):
    at = open_app("views/evaluate.py")
    at.multiselect(key="evaluate_models").set_value(["tiny_cnn"])
    at.run()
    at.session_state[VIEW_KEY] = "Calibration"
    at.run()
    assert_clean(at)
    labels = {m.label for m in at.metric}
    assert {"ECE before", "ECE after", "Temperature", "Answers trusted", "Accuracy of those"} <= labels
    at.slider(key="trust_tiny_cnn").set_value(0.9)
    at.run()
    assert_clean(at)
    trusted = next(m for m in at.metric if m.label == "Answers trusted")
    assert trusted.value.endswith("%")
    at.session_state[VIEW_KEY] = "Worst mistakes"
    at.run()
    at.toggle(key="mistakes_saliency_tiny_cnn").set_value(True)
    at.run()
    assert_clean(at)
    at.session_state[VIEW_KEY] = "Confusion matrix"
    at.run()
    at.toggle(key="cm_saliency_tiny_cnn").set_value(True)
    at.run()
    assert_clean(at)


def _fake_audit(dataset):
    """A saved audit of three Fashion-MNIST training images (no training needed)."""
    rows = [{"index": i, "given": int(dataset.y_train[i]), "suggested": (int(dataset.y_train[i]) + 1) % 10,
             "score": 0.9 - 0.1 * r, "flagged": True} for r, i in enumerate((5, 17, 42))]
    return {"arch": "seed003_cnn", "folds": 3, "epochs": 1, "seed": 0, "limit": None, "dataset": {"kind": "fashion-mnist"},
            "dataset_name": "Fashion-MNIST", "class_names": list(dataset.class_names), "audited": 100, "flagged": 3,
            "flagged_per_class": {}, "seconds": 1.0, "issues": rows}


def test_audit_tab_marks_labels_and_trains_without_the_wrong_ones(models_env, fashion_mnist):
    models_env.save_audit("fake_audit", _fake_audit(fashion_mnist))
    at = open_app("views/evaluate.py")
    at.multiselect(key="evaluate_models").set_value(["tiny_cnn"])
    at.session_state[VIEW_KEY] = "Suspicious labels"
    at.run()
    at.selectbox(key="audit_name").set_value("fake_audit")
    at.run()
    assert_clean(at)
    assert any("of 100 training labels" in c.value for c in at.caption)
    at.radio(key="audit_fake_audit_5").set_value("wrong")
    at.radio(key="audit_fake_audit_17").set_value("fine")
    at.run()
    at.button(key="audit_save").click()
    at.run()
    assert_clean(at)
    assert models_env.load_audit("fake_audit")["decisions"] == {"5": "wrong", "17": "fine"}
    at.number_input(key="audit_train_epochs").set_value(1)
    at.number_input(key="audit_train_limit").set_value(300)
    at.text_input(key="audit_train_name").set_value("cleaned_tiny")
    at.button(key="audit_train").click()
    at.run()
    assert_clean(at)
    try:
        meta = models_env.get("cleaned_tiny").metadata
        assert meta["additions"]["cleaned"] == {"excluded": 1, "audit": "fake_audit"}
    finally:
        models_env.delete("cleaned_tiny")


def test_latent_map_shows_an_uploaded_photo(models_env, fashion_mnist):
    at = open_app("views/latent.py")
    at.selectbox(key="latent_model").set_value("tiny_ae")
    at.run()
    at.radio(key="latent_query_source").set_value("Upload")
    at.run()
    at.get("file_uploader")[0].set_value([("coat.png", png_bytes(fashion_mnist.x_test[2, ..., 0]), "image/png")])
    at.run()
    assert_clean(at)
    spec = at.get("vega_lite_chart")[0].proto.spec
    assert "your photo" in spec and "star" in spec
    assert any("The star is coat.png" in c.value for c in at.caption)


def test_place_on_map_weights_the_nearest_points():
    from fashion_core.latent import place_on_map

    coords = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    embeddings = np.array([[0.0], [1.0], [5.0]])
    xy, nearest = place_on_map(coords, embeddings, np.array([0.1]), k=2)
    assert list(nearest) == [0, 1] and 0 < xy[0] < 5 and xy[1] == 0
