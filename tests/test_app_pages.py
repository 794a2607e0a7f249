"""Every dashboard page renders with a tiny registry, and its main interaction works (AppTest)."""

from __future__ import annotations

import io

import numpy as np
import streamlit as st
from PIL import Image

from tests.helpers import assert_clean, custom_setup, open_app, png_bytes, start_training

def test_home_lists_models_and_samples(models_env):
    at = open_app()
    assert_clean(at)
    assert "Fashion Studio" in at.title[0].value
    table = at.dataframe[0].value
    assert {"tiny_cnn", "tiny_ae"} <= set(table["name"])
    captions = [c for image in at.image for c in image.captions]
    assert sum("images" in c for c in captions) == 10  # one sample tile per class


def test_home_without_dataset_explains_how_to_provide_it(registry, monkeypatch, tmp_path):
    import fashion_core.data as data

    monkeypatch.setenv("FASHION_MNIST_DIR", str(tmp_path / "nowhere"))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setattr(data, "_download_with_keras", lambda: None)
    st.cache_resource.clear()  # datasets are cached per process; forget the one other tests loaded
    at = open_app()
    assert not at.exception
    assert any("FASHION_MNIST_DIR" in e.value for e in at.error)
    assert any("How to provide Fashion-MNIST offline" in m.value for m in at.markdown)
    at.switch_page("views/models.py")
    at.run()
    assert not at.exception
    st.cache_resource.clear()


def test_empty_registry_pages_point_to_train(registry):
    for page in ("views/evaluate.py", "views/latent.py", "views/classify.py"):
        at = open_app(page)
        assert not at.exception
        assert any("no models" in i.value for i in at.info), page


def test_models_page_says_a_model_was_trained_further(trained_registry, registry):
    import shutil

    shutil.copytree(trained_registry.root / "tiny_cnn", registry.root / "tiny_cnn")
    registry.update_metadata("tiny_cnn", continued_from={"test_accuracy": 0.927, "accelerator": "NVIDIA H100",
                                                         "command": "python -m fashion_core train ..."})
    at = open_app("views/models.py")
    assert_clean(at)
    assert any("trained further from its own earlier run (92.70% on an NVIDIA H100)" in c.value for c in at.caption)


def test_train_one_epoch_on_a_subset_registers_a_model(models_env):
    at = open_app("views/train.py")
    assert_clean(at)
    start_training(at, "app_trained", limit=500)
    assert "app_trained" in models_env.names()
    assert any("Test accuracy" == m.label for m in at.metric)
    assert models_env.evaluation("app_trained")["n_samples"] > 0
    models_env.delete("app_trained")


def test_train_rejects_a_bad_name_before_training(models_env):
    at = custom_setup(open_app("views/train.py"))
    at.text_input(key="train_name_seed004_cnn").set_value("../escape")
    at.button(key="start_training").click()
    at.run()
    assert not at.exception
    assert any("invalid model name" in e.value for e in at.error)
    assert "escape" not in " ".join(models_env.names())


def test_train_offers_vgg16_from_imagenet_a_local_file_or_scratch(models_env, tmp_path, monkeypatch):
    """VGG16's ImageNet weights: Keras' download (pre-selected once cached), a local copy of Keras'
    file (a missing one is one clear message) or none at all."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))  # nothing cached: from scratch by default
    at = custom_setup(open_app("views/train.py"))
    at.selectbox(key="train_arch").set_value("vgg16_transfer")
    at.run()
    assert_clean(at)
    assert at.radio(key="train_vgg16_weights").value == "scratch"
    at.radio(key="train_vgg16_weights").set_value("file")
    at.run()
    at.text_input(key="train_vgg16_file").set_value(str(tmp_path / "missing.h5"))
    at.run()
    assert not at.exception
    assert [e.value for e in at.error] and all("file not found" in e.value for e in at.error)
    (tmp_path / "keras" / "models").mkdir(parents=True)
    (tmp_path / "keras" / "models" / "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5").write_bytes(b"cached")
    fresh = custom_setup(open_app("views/train.py"))
    fresh.selectbox(key="train_arch").set_value("vgg16_transfer")
    fresh.run()
    assert fresh.radio(key="train_vgg16_weights").value == "imagenet"
    assert any("Already in Keras' cache" in c.value for c in fresh.caption)


def test_evaluate_a_model_and_pick_a_confusion_cell(models_env):
    at = open_app("views/evaluate.py")
    at.multiselect(key="evaluate_models").set_value(["tiny_cnn"])
    at.run()
    assert_clean(at)
    assert any(m.label == "Accuracy" for m in at.metric)
    at.selectbox(key="cm_true_tiny_cnn").set_value(6)
    at.selectbox(key="cm_pred_tiny_cnn").set_value(6)
    at.run()
    assert_clean(at)
    assert any("true **Shirt**, predicted **Shirt**" in c.value for c in at.caption)


def test_evaluate_runs_only_the_open_tab_and_keeps_the_cell(models_env):
    at = open_app("views/evaluate.py")
    at.multiselect(key="evaluate_models").set_value(["tiny_cnn"])
    at.run()
    assert_clean(at)
    assert len(at.get("vega_lite_chart")) == 1 and not at.get("plotly_chart")  # only the confusion matrix
    assert not any(m.label == "ECE before" for m in at.metric)
    at.selectbox(key="cm_true_tiny_cnn").set_value(6)
    at.selectbox(key="cm_pred_tiny_cnn").set_value(0)
    at.run()
    at.session_state["evaluate_view"] = "Calibration"
    at.run()
    assert_clean(at)
    assert any(m.label == "ECE before" for m in at.metric)
    assert not any("predicted **" in c.value for c in at.caption)  # the confusion tab did not run
    assert at.query_params["true"] in ("Shirt", ["Shirt"])  # the link still names the chosen cell
    at.run()  # a rerun inside another tab drops the selectboxes' state, not the cell
    at.session_state["evaluate_view"] = "Confusion matrix"
    at.run()
    assert at.selectbox(key="cm_true_tiny_cnn").value == 6 and at.selectbox(key="cm_pred_tiny_cnn").value == 0


def test_evaluate_compares_two_models(models_env):
    at = open_app("views/evaluate.py")
    at.multiselect(key="evaluate_models").set_value(["tiny_cnn", "tiny_ae"])
    at.run()
    assert_clean(at)
    assert set(at.dataframe[0].value["model"]) == {"tiny_cnn", "tiny_ae"}


def test_latent_space_neighbours_of_a_test_image(models_env):
    at = open_app("views/latent.py")
    at.selectbox(key="latent_model").set_value("tiny_ae")
    at.run()
    assert_clean(at)
    at.number_input(key="latent_test_index").set_value(3)
    at.number_input(key="latent_k").set_value(5)
    at.run()
    assert_clean(at)
    assert any("nearest neighbours of test image 3" in h.value for h in at.subheader)
    assert any(m.label == "Precision@5" for m in at.metric)


def test_latent_space_searches_a_saved_catalogue_index(models_env, tmp_path):
    """A catalogue index saved by ``batch --embed`` (its file format, built here without Ray) is
    offered as a gallery of the model that made it, and its photos are searched."""
    from pathlib import Path

    from fashion_core import batch, latent
    from fashion_core.inference import Classifier
    from fashion_core.neighbours import NeighbourIndex
    from fashion_core.registry import Registry
    from tests.helpers import PHOTO_FIXTURES

    registry = Registry()
    photos = sorted(str(p) for p in (PHOTO_FIXTURES / "images").glob("*.jpg"))
    classifier = Classifier.from_registry("tiny_cnn", registry=registry)
    answers = classifier.classify_many([(p, Path(p).read_bytes()) for p in photos])
    vectors = latent.embed(latent.encoder_for("tiny_cnn", registry)[0], np.stack([a.prepared.model_input for a in answers]))
    path = NeighbourIndex(vectors, np.array([a.class_index for a in answers])).save(
        tmp_path / batch.INDEX, paths=np.array(photos), class_names=np.array(classifier.class_names),
        model=np.array("tiny_cnn"), source=np.array("my shop"))
    batch.record_index(registry, path, "tiny_cnn", "my shop", len(photos))

    at = open_app("views/latent.py")
    at.selectbox(key="latent_model").set_value("tiny_cnn")
    at.run()
    gallery = at.selectbox(key="latent_gallery")
    choice = f"index:{Path(path).resolve()}"
    assert choice in gallery.options or any("my shop" in o for o in gallery.options)
    gallery.set_value(choice)
    at.run()
    assert_clean(at)
    at.number_input(key="latent_catalogue_row").set_value(2)
    at.number_input(key="latent_k").set_value(3)
    at.run()
    assert_clean(at)
    assert any("The 3 nearest catalogue photos" in h.value for h in at.subheader)
    assert any(m.label == "Same class in the 3 nearest" for m in at.metric)
    assert any("my shop" in c.value and f"{len(photos)} photos" in c.value for c in at.caption)


def test_classify_an_uploaded_image_and_a_bad_file(models_env, fashion_mnist):
    at = open_app("views/classify.py")
    assert_clean(at)
    garment = png_bytes(255 - fashion_mnist.x_test[0, ..., 0])  # dark garment on white, like a photo
    uploader = at.get("file_uploader")[0]
    uploader.set_value([("shirt.png", garment, "image/png"), ("broken.png", b"not an image", "image/png")])
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("broken.png" in e.value for e in at.error)
    assert any(e.label.startswith("shirt.png →") for e in at.expander)
    assert "shirt.png" in set(at.dataframe[0].value["file"])
    bars = at.get("progress")  # the top 3 classes, the most likely first and in bold
    assert len(bars) == 3 and bars[0].proto.text.startswith("**")
    values = [b.proto.value for b in bars]
    assert values == sorted(values, reverse=True)


def test_classify_a_webcam_photo(models_env, fashion_mnist):
    at = open_app("views/classify.py")
    at.toggle(key="classify_use_camera").set_value(True)
    at.run()
    buffer = io.BytesIO()
    Image.fromarray(np.repeat(255 - fashion_mnist.x_test[1], 3, axis=-1)).save(buffer, format="JPEG")
    at.camera_input(key="classify_camera").set_value(("photo.jpg", buffer.getvalue(), "image/jpeg"))
    at.run()
    assert_clean(at)
    assert any(e.label.startswith("webcam photo →") for e in at.expander)


def test_models_page_deletes_with_confirmation(models_env, small_dataset):
    from fashion_core.runs import train_and_save
    from fashion_core.training import TrainConfig

    train_and_save(small_dataset, TrainConfig(arch="seed003_cnn", epochs=1, limit=200), "to_delete", registry=models_env)
    at = open_app("views/models.py")
    assert_clean(at)
    at.selectbox(key="delete_model").set_value("to_delete")
    at.run()
    assert at.button(key="delete_button").disabled
    at.checkbox(key="delete_confirm_to_delete").check()
    at.run()
    at.button(key="delete_button").click()
    at.run()
    assert "to_delete" not in models_env.names()
