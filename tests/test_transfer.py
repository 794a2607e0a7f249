"""Transfer to a catalogue's own classes (issue 17): the ``split`` and ``keywords`` catalogue
columns, ``train --data-dir CAT --from MODEL`` (lineage, schedule, keywords in metadata and in
``classify --json``), bad ``--from`` values, the ImageNet path with a stand-in weights file the
test writes, and the Train / Models / Classify pages. Mechanism only: never how well it learnt."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from fashion_core.cli import main
from tests.helpers import APP, TIMEOUT, assert_clean

CLASSES = ("Boxes", "Rings", "Stripes")


def make_catalogue(folder, per_class=12, n_test=2, split=True, keywords=True):
    """A tiny generated product catalogue (light background, three shapes) as a CSV; returns its path."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    rows = []
    yy, xx = np.mgrid[:40, :40]
    for c, name in enumerate(CLASSES):
        for i in range(per_class):
            image = np.full((40, 40, 3), 255, np.uint8)
            colour = rng.integers(0, 180, 3)
            if c == 0:
                image[8:32, 8:32] = colour
            elif c == 1:
                image[(np.hypot(yy - 20, xx - 20) > 8) & (np.hypot(yy - 20, xx - 20) < 15)] = colour
            else:
                image[5:35:5, 5:35] = colour
            path = folder / f"{name}_{i}.png"
            Image.fromarray(image).save(path)
            row = {"path": path.name, "label": name}
            if split:
                row["split"] = "test" if i < n_test else "train"
            if keywords:
                row["keywords"] = f"{name.lower()}; shape {c}" + ("; rare" if i == 0 else "")
            rows.append(row)
    path = folder / "catalogue.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def save_backbone(registry, name="tiny_photo", shape=(16, 16, 3), parent=None, photo=False):
    """An untrained, narrow fashion_net saved as a registry classifier (a backbone to start from)."""
    from fashion_core import zoo
    from fashion_core.classes import FASHION_MNIST_CLASSES

    model = zoo.build("fashion_net", shape, 10, width=4).classifier
    metadata = {"arch": "fashion_net", "class_names": list(FASHION_MNIST_CLASSES), "image_shape": list(shape),
                "hyper_parameters": {"build_options": {"width": 4}}, "train_seconds": 10.0, "train_size": 1000,
                "epochs_run": {"classifier": 2}, "test_accuracy": 0.9}
    if parent:
        metadata["parent"] = parent
    if photo:
        metadata["additions"] = {"photos": {"replay": 0, "holdout": 0.15, "seed": 0}}
    return registry.save(name, model, metadata)


# --- the catalogue's own split and keywords ------------------------------------------------------


def test_split_column_fixes_the_split_and_keywords_column_gives_class_keywords(tmp_path):
    from fashion_core.catalogue import load_catalogue

    data = load_catalogue(make_catalogue(tmp_path / "cat"), image_size=16, color=True)
    assert len(data.y_test) == 2 * len(CLASSES) and len(data.y_train) == 10 * len(CLASSES)
    assert data.class_keywords["Rings"][:2] == ("rings", "shape 1")  # most frequent first
    again = load_catalogue(tmp_path / "cat" / "catalogue.csv", image_size=16, color=True, test_fraction=0.5)
    np.testing.assert_array_equal(again.x_test, data.x_test)  # the column wins over test_fraction


def test_without_split_column_the_seeded_split_as_before(tmp_path):
    from fashion_core.catalogue import load_catalogue

    data = load_catalogue(make_catalogue(tmp_path / "cat", split=False, keywords=False), image_size=16)
    assert len(data.y_test) == round(0.2 * 12) * len(CLASSES) and data.class_keywords == {}


@pytest.mark.parametrize("bad, message", [("valid", "split must be 'train' or 'test'"), ("no_test", "without readable")])
def test_bad_split_column_is_one_clear_error(tmp_path, bad, message):
    from fashion_core.catalogue import load_catalogue
    from fashion_core.errors import DataError

    path = make_catalogue(tmp_path / "cat", n_test=0 if bad == "no_test" else 2)
    if bad == "valid":
        path.write_text(path.read_text().replace(",test,", ",valid,", 1))
    with pytest.raises(DataError, match=message):
        load_catalogue(path, image_size=16)


def test_folder_catalogue_keywords_file(tmp_path):
    from fashion_core.catalogue import load_catalogue

    for name in ("Bags", "Shoes"):
        (tmp_path / "shop" / name).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(np.full((20, 20, 3), 40 * i, np.uint8)).save(tmp_path / "shop" / name / f"{i}.png")
    (tmp_path / "shop" / "keywords.csv").write_text("class,keywords\nBags,tote; clutch\n")
    data = load_catalogue(tmp_path / "shop", image_size=16)
    assert data.class_names == ("Bags", "Shoes") and data.class_keywords == {"Bags": ("tote", "clutch")}


def test_keywords_for_prefers_the_catalogue():
    from fashion_core.classes import keywords_for

    assert keywords_for("Bag", {"Bag": ["tote"]}) == ("tote",)
    assert keywords_for("Bag")[0] == "bag" and keywords_for("Kurtas") == ("kurtas",)


def test_product_catalogue_rows_take_test_from_val_only():
    from fashion_core.photos import find_photos_dir, product_catalogue_rows, read_labels

    rows = product_catalogue_rows(article_types=("Tshirts", "Jeans"), per_class=300)
    split_of = {str(find_photos_dir() / r["file"]): r["split"] for r in read_labels(find_photos_dir())}
    assert rows and {r["label"] for r in rows} == {"Tshirts", "Jeans"}
    assert all(split_of[r["path"]] == ("val" if r["split"] == "test" else "train") for r in rows)
    assert all(r["keywords"] for r in rows)


# --- train --from onto a catalogue ---------------------------------------------------------------


def test_train_from_a_registry_model_records_lineage_schedule_keywords(registry, tmp_path, capsys):
    save_backbone(registry, parent="grand_parent")
    csv_path = make_catalogue(tmp_path / "cat")
    code = main(["train", "--data-dir", str(csv_path), "--from", "tiny_photo", "--epochs", "1", "--head-epochs", "1",
                 "--name", "shop", "--json", "--quiet"])
    payload = json.loads(capsys.readouterr().out)
    assert code == 0
    assert payload["parent"] == "tiny_photo" and payload["lineage"] == ["tiny_photo", "grand_parent"]
    assert payload["train_seconds"] > 0 and payload["wall_seconds"] >= payload["train_seconds"]
    entry = registry.get("shop")
    meta = entry.metadata
    assert meta["image_shape"] == [16, 16, 3]  # loaded at the backbone's own input
    assert meta["class_names"] == list(CLASSES) and entry.lineage == ["tiny_photo", "grand_parent"]
    assert meta["schedule"]["head_epochs"] == 1 and meta["schedule"]["freeze_bn"] is True
    assert set(meta["epochs_run"]) == {"head", "classifier"}
    assert "--from tiny_photo" in meta["command"] and "--head-epochs 1" in meta["command"]
    assert meta["class_keywords"]["Boxes"][:2] == ["boxes", "shape 0"]

    assert main(["classify", str(tmp_path / "cat" / "Rings_0.png"), "--model", "shop", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)[0]
    assert result["keywords"] == meta["class_keywords"][result["class_name"]]

    assert main(["list", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["shop"]["lineage"] == "tiny_photo ← grand_parent"


def run_cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "fashion_core", *args], capture_output=True, text=True, timeout=600,
                          env=env)


def test_bad_from_values_one_line_exit_2(registry, tmp_path):
    import os

    import keras

    csv_path = str(make_catalogue(tmp_path / "cat"))
    autoencoder = keras.Sequential([keras.Input((16, 16, 1)), keras.layers.Conv2D(1, 3, padding="same", name="rec")])
    registry.save("just_ae", autoencoder, {"arch": "conv_autoencoder", "image_shape": [16, 16, 1]})
    from fashion_core import zoo  # a Flatten → Dense network: its weights fit its own 28x28 input only

    registry.save("flat_net", zoo.build("seed003_cnn", (28, 28, 1), 10).classifier,
                  {"arch": "seed003_cnn", "class_names": [str(i) for i in range(10)], "image_shape": [28, 28, 1]})
    env = {**os.environ, "FASHION_MODELS_DIR": str(registry.root)}
    cases = {
        ("--from", "no_such_model"): "unknown model 'no_such_model'",
        ("--from", "just_ae"): "not a classifier",
        ("--from", "imagenet:mobilenet_v3_small", "--image-size", "16", "--weights", csv_path): "at least 32x32",
        ("--from", "imagenet:nope"): "unknown ImageNet backbone",
        ("--from", "flat_net", "--image-size", "64"): "takes only 28x28 images",
    }
    for extra, message in cases.items():
        result = run_cli("train", "--data-dir", csv_path, *extra, "--epochs", "1", "--name", "x", env=env)
        assert result.returncode == 2, (extra, result.stderr)
        assert "Traceback" not in result.stderr and result.stderr.strip().count("\n") == 0, result.stderr
        assert message in result.stderr, (extra, result.stderr)


def test_imagenet_offline_without_weights_says_so_in_one_line(registry, tmp_path, monkeypatch, capsys):
    from keras.src.utils import file_utils

    def offline(*args, **kwargs):
        raise Exception("URL fetch failure: Name or service not known")

    monkeypatch.setattr(file_utils, "get_file", offline)
    code = main(["train", "--data-dir", str(make_catalogue(tmp_path / "cat")), "--from", "imagenet:mobilenet_v3_small",
                 "--epochs", "1", "--name", "x"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0 and "--weights FILE" in err and "offline" in err


@pytest.mark.slow
def test_imagenet_backbone_from_a_local_weights_file(registry, tmp_path, capsys):
    import keras

    weights = tmp_path / "stand_in.weights.h5"  # the same architecture, untrained: stands in for ImageNet's file
    keras.applications.MobileNetV3Small(include_top=False, weights=None, input_shape=(32, 32, 3),
                                        pooling="avg").save_weights(weights)
    code = main(["train", "--data-dir", str(make_catalogue(tmp_path / "cat")), "--from", "imagenet:mobilenet_v3_small",
                 "--weights", str(weights), "--image-size", "32", "--epochs", "1", "--head-epochs", "1",
                 "--name", "mnv3", "--json", "--quiet"])
    payload = json.loads(capsys.readouterr().out)
    assert code == 0 and payload["parent"] == "imagenet:mobilenet_v3_small"
    meta = registry.get("mnv3").metadata
    assert meta["image_shape"] == [32, 32, 3] and meta["lineage"] == ["imagenet:mobilenet_v3_small"]
    assert f"--weights {weights}" in meta["command"]


# --- pages ---------------------------------------------------------------------------------------


def test_train_page_start_from_lists_backbones_and_preselects_the_photo_model(registry, tmp_path):
    from streamlit.testing.v1 import AppTest

    save_backbone(registry, "plain_net")
    save_backbone(registry, "tiny_photo", photo=True)
    csv_path = make_catalogue(tmp_path / "cat")
    spec = {"kind": "folder", "path": str(csv_path), "image_size": 16, "color": True, "test_fraction": 0.2, "seed": 0}
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.run()
    # The sidebar (app.py) runs on every page: choose the catalogue there, as a person would.
    at.session_state["data_source_kind"] = "folder"
    at.session_state["catalogue_path"] = str(csv_path)
    at.session_state["catalogue_image_size"] = 16
    at.session_state["catalogue_color"] = True
    at.session_state["data_spec"] = spec
    at.switch_page("views/train.py")
    at.run()
    assert_clean(at)
    start = at.selectbox(key="train_start_from")
    assert start.value == "tiny_photo"
    assert {"(from scratch)", "plain_net", "tiny_photo", "imagenet:mobilenet_v3_small"} <= set(start.options)
    info = " ".join(i.value for i in at.info)
    assert "Expected time" in info and "images/s" in info and "tiny_photo" in info


def test_models_page_shows_lineage(registry):
    from tests.helpers import open_app

    save_backbone(registry, "child_net", parent="photo_net")
    registry.update_metadata("child_net", lineage=["photo_net", "fashion_net"])
    at = open_app("views/models.py")
    assert_clean(at)
    assert any("fine-tuned from photo_net ← fashion_net" in c.value for c in at.caption)


def test_classify_page_shows_a_catalogue_models_keywords(registry, tmp_path):
    from tests.helpers import constant_classifier, open_app

    logits = np.array([0.0, 5.0, 0.0])
    registry.save("shop_const", constant_classifier(logits, (16, 16, 3)), {
        "arch": "imported", "class_names": list(CLASSES), "image_shape": [16, 16, 3], "test_accuracy": 0.9,
        "dataset": {"kind": "folder", "path": str(tmp_path), "image_size": 16, "color": True},
        "class_keywords": {"Rings": ["hoop", "ring box"]}})
    at = open_app("views/classify.py")
    at.selectbox(key="classify_model").set_value("shop_const")
    at.run()
    make_catalogue(tmp_path / "cat")
    photo = (tmp_path / "cat" / "Rings_0.png").read_bytes()
    at.get("file_uploader")[0].set_value([("ring.png", photo, "image/png")])
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("`hoop` · `ring box`" in m.value for m in at.markdown), [m.value for m in at.markdown]


def test_the_preselected_start_is_the_best_photo_model_small_enough_to_be_quick(registry):
    from fashion_core.transfer import default_start_from

    save_backbone(registry, "plain_net", shape=(28, 28, 1))
    assert default_start_from(registry.list()) == "plain_net"  # no photo model: the best classifier
    save_backbone(registry, "big_photo", shape=(96, 96, 3), photo=True)
    registry.update_metadata("big_photo", ood={"method": "confidence", "min_confidence": 0.5, "in_accuracy": 0.95})
    assert default_start_from(registry.list()) == "big_photo"  # the only photo model, whatever its size
    save_backbone(registry, "small_photo", shape=(48, 48, 3), photo=True)
    registry.update_metadata("small_photo", ood={"method": "confidence", "min_confidence": 0.5, "in_accuracy": 0.85})
    assert default_start_from(registry.list()) == "small_photo"  # quick beats a little more accurate


def test_continuing_an_autoencoder_model_keeps_its_decoder(trained_registry, registry, small_dataset):
    """``--from`` a model of the same two-stage architecture with no autoencoder epochs: the saved
    autoencoder is the parent's (its decoder carried over), not a random one."""
    import shutil

    from fashion_core.runs import train_and_save
    from fashion_core.training import TrainConfig

    shutil.copytree(trained_registry.root / "tiny_ae", registry.root / "tiny_ae")
    config = TrainConfig(arch="conv_autoencoder", epochs=1, batch_size=64, pretrain_epochs=0, fine_tune_epochs=0,
                         init_from="tiny_ae", limit=600)
    train_and_save(small_dataset, config, "tiny_ae_more", registry=registry)
    parent, child = registry.load_autoencoder("tiny_ae"), registry.load_autoencoder("tiny_ae_more")
    for layer in ("dec1_conv", "dec4_conv", "reconstruction_conv"):
        for a, b in zip(parent.get_layer(layer).get_weights(), child.get_layer(layer).get_weights()):
            np.testing.assert_array_equal(a, b)
    assert registry.get("tiny_ae_more").metadata["parent"] == "tiny_ae"


def test_a_model_continued_under_its_own_name_keeps_its_earlier_run(trained_registry, registry, small_dataset):
    """``--from NAME --name NAME --overwrite``: the new metadata says how the earlier run went
    (``continued_from``) and chains both commands; it does not call itself its own parent."""
    import shutil

    from fashion_core.runs import train_and_save
    from fashion_core.training import TrainConfig

    shutil.copytree(trained_registry.root / "tiny_cnn", registry.root / "tiny_cnn")
    earlier = registry.get("tiny_cnn").metadata
    config = TrainConfig(arch="seed004_cnn", epochs=1, batch_size=64, learning_rate=1e-4, init_from="tiny_cnn", limit=600)
    train_and_save(small_dataset, config, "tiny_cnn", registry=registry, overwrite=True, command="second")
    meta = registry.get("tiny_cnn").metadata
    assert meta["continued_from"]["test_accuracy"] == earlier["test_accuracy"]
    assert meta["continued_from"]["command"] == earlier["command"]
    assert meta["command"] == f"{earlier['command']} && second"
    assert "parent" not in meta and not registry.get("tiny_cnn").lineage
