"""Real photos: reading the labelled folder, the on-disk cache, the photo training mix, the
"none of these" calibration and flag, and the photo path through the CLI (fixture photos copied
from ../shared/data/real-photos; no assertion depends on how well a model trained)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from fashion_core import cli, diskcache, photos
from fashion_core.classes import FASHION_MNIST_CLASSES
from fashion_core.errors import DataError, InvalidParameterError
from fashion_core.inference import Classifier
from fashion_core.registry import default_photo_model_name
from fashion_core.ood import calibrate_confidence, confidence_scores
from fashion_core.training import TrainConfig, training_arrays, transfer_weights
from tests.helpers import PHOTO_FIXTURES, constant_classifier

FIXTURE_ROWS = 18


def fixture_files(domain=None, class_name=None):
    rows = photos.read_labels(PHOTO_FIXTURES)
    return [PHOTO_FIXTURES / r["file"] for r in rows
            if (domain is None or r["domain"] == domain) and (class_name is None or r["class_name"] == class_name)]


# --- the folder ------------------------------------------------------------------------------------


def test_find_photos_dir_and_labels():
    assert photos.find_photos_dir() == PHOTO_FIXTURES.resolve()  # FASHION_PHOTOS_DIR (conftest)
    rows = photos.read_labels(PHOTO_FIXTURES)
    assert len(rows) == FIXTURE_ROWS
    assert {r["domain"] for r in rows} == {"catalogue", "phone"} and {r["split"] for r in rows} == {"train", "val"}
    assert all(-1 <= r["label"] <= 9 for r in rows)


def test_missing_or_malformed_folder_is_one_clear_error(tmp_path):
    with pytest.raises(DataError, match="labels.csv"):
        photos.find_photos_dir(tmp_path)
    (tmp_path / "labels.csv").write_text("file,label\na.jpg,3\n")
    with pytest.raises(DataError, match="missing columns"):
        photos.read_labels(tmp_path)
    (tmp_path / "labels.csv").write_text("file,label,domain,split,group\na.jpg,12,phone,train,x\n")
    with pytest.raises(DataError, match="outside"):
        photos.read_labels(tmp_path)
    (tmp_path / "labels.csv").write_text("file,label,domain,split,group\na.jpg,1,phone,test,x\n")
    with pytest.raises(DataError, match="unknown split"):
        photos.read_labels(tmp_path)


def test_load_photos_runs_the_upload_path_and_caches(monkeypatch, tmp_path):
    from fashion_core.preprocess import prepare_image

    monkeypatch.setenv("FASHION_CACHE_DIR", str(tmp_path / "cache"))
    first = photos.load_photos((28, 28, 1))
    assert first.images.shape == (FIXTURE_ROWS, 28, 28, 1) and first.images.dtype == np.uint8
    assert set(first.labels[~first.in_class]) == {photos.OTHER_LABEL}
    row = 3
    expected = prepare_image((PHOTO_FIXTURES / first.files[row]).read_bytes(), (28, 28, 1)).preview
    np.testing.assert_array_equal(first.images[row], expected)  # exactly what an upload becomes

    import fashion_core.catalogue as catalogue

    def no_decoding(*args, **kwargs):
        raise AssertionError("the cache should have been used")

    monkeypatch.setattr(catalogue, "decode_files", no_decoding)
    second = photos.load_photos((28, 28, 1))
    np.testing.assert_array_equal(second.images, first.images)
    np.testing.assert_array_equal(second.groups, first.groups)
    assert len(second.where(split="val", domain="phone")) == 6


def test_damaged_cache_is_rebuilt_and_unreadable_photos_are_skipped(monkeypatch, tmp_path):
    folder = tmp_path / "photos"
    shutil.copytree(PHOTO_FIXTURES, folder)
    (folder / "images" / "phone-06.jpg").write_bytes(b"not a jpeg")
    monkeypatch.setenv("FASHION_CACHE_DIR", str(tmp_path / "cache"))
    loaded = photos.load_photos((28, 28, 1), folder)
    assert len(loaded) == FIXTURE_ROWS - 1 and loaded.skipped[0][0].endswith("phone-06.jpg")
    cached = next((tmp_path / "cache").glob("real-photos-*.npz"))
    cached.write_bytes(b"damaged")
    assert len(photos.load_photos((28, 28, 1), folder)) == FIXTURE_ROWS - 1


def test_holdout_groups_never_split_a_sender():
    loaded = photos.load_photos((28, 28, 1)).where(split="train")
    held = photos.holdout_groups(loaded, 0.5, seed=0)
    assert held.any() and (~held).any()
    assert not set(loaded.groups[held]) & set(loaded.groups[~held])
    np.testing.assert_array_equal(held, photos.holdout_groups(loaded, 0.5, seed=0))


def test_cached_array_is_read_only_and_built_once(monkeypatch, tmp_path):
    monkeypatch.setenv("FASHION_CACHE_DIR", str(tmp_path))
    calls = []

    def build():
        calls.append(1)
        return np.arange(12, dtype=np.uint8).reshape(3, 4)

    first = diskcache.cached_array("test-array", build)
    second = diskcache.cached_array("test-array", build)
    assert len(calls) == 1 and not second.flags.writeable
    np.testing.assert_array_equal(first, second)
    with pytest.raises(ValueError):
        second[0, 0] = 99


def test_cached_array_filled_in_place_leaves_nothing_behind_when_the_build_fails(monkeypatch, tmp_path):
    monkeypatch.setenv("FASHION_CACHE_DIR", str(tmp_path))

    def fill(out):
        assert isinstance(out, np.memmap)  # written straight into the (temporary) cache file
        out[:] = np.arange(12, dtype=np.uint8).reshape(3, 4)

    def broken(out):
        out[0] = 1
        raise RuntimeError("killed half-way")

    with pytest.raises(RuntimeError):
        diskcache.cached_array("half", broken, shape=(3, 4), dtype=np.uint8)
    assert list(tmp_path.iterdir()) == []  # no half array, no temporary file
    array = diskcache.cached_array("full", fill, shape=(3, 4), dtype=np.uint8)
    np.testing.assert_array_equal(array, np.arange(12).reshape(3, 4))
    assert not array.flags.writeable and [p.name for p in tmp_path.iterdir()] == [diskcache.cache_path("full", ".npy").name]


def test_a_photo_models_dataset_renders_only_the_images_read(monkeypatch, tmp_path, fashion_mnist):
    """A few rows (thumbnails, one query) are rendered on the spot, exactly as the whole set
    renders them; only whole-set use renders the set into the cache."""
    from fashion_core import latent
    from fashion_core.data import RenderedImages
    from fashion_core.loaders import load_dataset

    monkeypatch.setenv("FASHION_CACHE_DIR", str(tmp_path))
    data = load_dataset({"kind": "fashion-mnist", "image_size": 32, "color": True})
    assert isinstance(data.x_test, RenderedImages) and data.image_shape == (32, 32, 3)
    one, few, some = data.x_test[7], data.x_test[[3, 7]], data.x_test[2:5]
    assert one.shape == (32, 32, 3) and few.shape == (2, 32, 32, 3) and some.shape == (3, 32, 32, 3)
    assert latent.gallery_image(data, len(data.y_train) + 7).shape == (32, 32, 3)
    assert not data.x_test.rendered and list(tmp_path.iterdir()) == []
    whole = np.asarray(data.x_test)
    assert data.x_test.rendered and len(list(tmp_path.iterdir())) == 1 and whole.shape == (10000, 32, 32, 3)
    np.testing.assert_array_equal(whole[7], one)
    np.testing.assert_array_equal(whole[[3, 7]], few)
    np.testing.assert_array_equal(whole[2:5], some)
    assert not whole.flags.writeable and (whole[..., 0] == whole[..., 2]).all()
    with pytest.raises(IndexError):
        load_dataset({"kind": "fashion-mnist", "image_size": 32}).x_test[10000]


def test_gallery_embeddings_come_a_chunk_at_a_time(small_dataset):
    from fashion_core import latent

    def encoder(batch):
        return np.asarray(batch, np.float32).reshape(len(batch), -1)[:, :5]

    rows = np.array([0, 5, len(small_dataset.y_train) + 1, 9, 2])
    whole = latent.embed(encoder, np.stack([latent.gallery_image(small_dataset, int(r)) for r in rows]))
    np.testing.assert_array_equal(latent.embed_rows(encoder, small_dataset, rows, chunk=2), whole)
    with pytest.raises(InvalidParameterError):
        latent.embed_rows(encoder, small_dataset, rows, chunk=0)


# --- training on photos ----------------------------------------------------------------------------


def test_photo_training_dataset_mixes_fashion_mnist_photos_and_outliers(fashion_mnist):
    data = photos.photo_training_dataset((28, 28, 1), replay=300, holdout=0.3, seed=0)
    recipe = data.additions["photos"]
    assert recipe["replay"] == 300 and recipe["holdout"] == 0.3
    assert len(data.y_train) == 300 + recipe["train_photos"]
    assert len(data.x_outliers) == recipe["outlier_photos"] > 0
    assert data.spec == {"kind": "fashion-mnist"} and len(data.y_test) == 10000  # the official test set
    calibration = photos.calibration_photos((28, 28, 1), recipe)
    assert len(calibration) == recipe["validation_photos"] > 0
    assert len(data.x_val) == photos.FASHION_VALIDATION + int(calibration.in_class.sum())


def test_outliers_get_a_uniform_target_and_an_explicit_validation_set_is_used(fashion_mnist):
    data = photos.photo_training_dataset((28, 28, 1), replay=200, holdout=0.3, seed=0)
    x_train, y_train, x_val, y_val, labels = training_arrays(data, TrainConfig(arch="seed004_cnn").resolve())
    n_out = len(data.x_outliers)
    assert len(x_train) == len(data.y_train) + n_out and len(labels) == len(data.y_train)
    np.testing.assert_allclose(y_train[-n_out:], 0.1)
    np.testing.assert_allclose(y_train.sum(axis=1), 1.0)
    assert len(x_val) == len(data.y_val)


def test_transfer_weights_copies_by_name_and_adapts_channels():
    grey = constant_classifier(np.arange(10.0))
    colour = constant_classifier(np.zeros(10), image_shape=(28, 28, 3))
    copied = transfer_weights(grey, colour)
    assert "probabilities" in copied
    np.testing.assert_allclose(colour.get_layer("probabilities").get_weights()[1], np.arange(10.0))
    import keras

    conv_grey = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(4, 3, name="c")])
    conv_colour = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 3, name="c")])
    transfer_weights(conv_grey, conv_colour)
    image = np.random.default_rng(0).random((1, 8, 8, 1)).astype(np.float32)
    np.testing.assert_allclose(conv_colour(np.repeat(image, 3, axis=-1)), conv_grey(image), atol=1e-5)
    unrelated = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(4, 3, name="other")])
    with pytest.raises(InvalidParameterError, match="shares no layer"):
        transfer_weights(unrelated, conv_grey)


def test_cli_trains_a_photo_model_from_a_registry_model(models_env, capsys):
    code = cli.main(["train", "--arch", "seed004_cnn", "--epochs", "1", "--photos", "--replay", "300",
                     "--from", "tiny_cnn", "--name", "photo_tiny", "--json", "--quiet"])
    assert code == 0
    payload = json.loads(capsys.readouterr().out)
    meta = models_env.get(payload["name"]).metadata
    try:
        assert meta["parent"] == "tiny_cnn" and meta["additions"]["photos"]["replay"] == 300
        assert "--photos --replay 300" in meta["command"] and "--from tiny_cnn" in meta["command"]
        assert meta["dataset"] == {"kind": "fashion-mnist"} and meta["test_size"] == 10000
        if meta.get("ood"):  # set when a held-out photo was answered right; never a reconstruction threshold
            assert meta["ood"]["method"] == "confidence" and 0.0 <= meta["ood"]["min_confidence"] <= 1.0
        assert default_photo_model_name(models_env) == "photo_tiny"
        assert Classifier.from_registry(None, models_env).name == "photo_tiny"
    finally:
        models_env.delete("photo_tiny")


def test_cli_refuses_photos_with_a_catalogue(registry, tmp_path, capsys):
    code = cli.main(["train", "--arch", "seed004_cnn", "--photos", "--data-dir", str(tmp_path), "--name", "x"])
    assert code == 2 and "--photos" in capsys.readouterr().err


# --- "none of these" -----------------------------------------------------------------------------


def test_calibrate_confidence_keeps_the_flag_rate_on_correct_answers():
    rng = np.random.default_rng(0)
    sure = np.eye(10)[rng.integers(0, 10, 200)] * 0.9 + 0.01
    unsure = np.full((50, 10), 0.1)
    probabilities = np.concatenate([sure, unsure])
    labels = np.concatenate([sure.argmax(1), np.full(50, -1)])
    calibration = calibrate_confidence(probabilities, labels, rate=0.05)
    assert calibration["method"] == "confidence" and calibration["n_in"] == 200 and calibration["n_other"] == 50
    assert calibration["in_flagged"] <= 0.05 and calibration["other_flagged"] == 1.0
    scores = confidence_scores(probabilities, calibration)
    assert np.all(scores[200:] > 1.0) and np.all(scores[:200] <= 1.0)
    assert calibrate_confidence(unsure, np.full(50, -1)) == {}  # nothing answered right: no calibration


def test_photo_model_is_the_default_and_says_none_of_these(photo_models):
    assert default_photo_model_name(photo_models) == "sure_sneaker"
    sure = Classifier.from_registry(None, photo_models)
    assert sure.photo_trained and sure.confidence_ood and sure.autoencoder is None
    phone = fixture_files("phone")[0].read_bytes()
    answer = sure.classify(phone)
    assert answer.class_name == "Sneaker" and not answer.flagged and not answer.none_of_these
    assert answer.ood_score < 1.0

    unsure = Classifier.from_registry("unsure", photo_models)
    for result in unsure.classify_many([(f.name, f.read_bytes()) for f in fixture_files("catalogue", "other")]):
        assert result.none_of_these and result.flagged and result.ood_score > 1.0
        assert any("does not look like any of the 10 classes" in r for r in result.flag_reasons)
        assert not any(r.startswith("low confidence") for r in result.flag_reasons)  # said once, as "none of these"
        assert len(result.top_k) == 3  # the scores are still there


def test_busy_background_is_no_flag_for_a_photo_model(photo_models):
    from PIL import Image
    import io

    noise = np.random.default_rng(0).integers(0, 256, (96, 96, 3), dtype=np.uint8)
    noise[30:66, 30:66] = 250
    buffer = io.BytesIO()
    Image.fromarray(noise).save(buffer, format="PNG")
    result = Classifier.from_registry("sure_sneaker", photo_models).classify(buffer.getvalue())
    assert result.prepared.busy_background and not result.flagged


def test_classify_cli_json_on_real_photos(photo_models, capsys):
    paths = [str(p) for p in fixture_files()[:4]]
    assert cli.main(["classify", *paths, "--model", "unsure", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["path"] for r in rows] == paths
    for row in rows:
        assert row["flagged"] is True and row["none_of_these"] is True
        assert isinstance(row["ood_score"], float) and row["ood_score"] > 1.0
        assert row["flag_reasons"] and len(row["top_k"]) == 3
    assert cli.main(["classify", paths[0], "--json"]) == 0  # no --model: the photo model
    assert json.loads(capsys.readouterr().out)[0]["class_name"] == "Sneaker"


def test_photo_report_counts_domains_classes_and_flags(photo_models):
    report = photos.photo_report(Classifier.from_registry("sure_sneaker", photo_models), split="val")
    assert report["n"] == 12 and report["unreadable"] == 0
    assert report["domains"]["catalogue"]["n"] == 4 and report["domains"]["phone"]["n"] == 5
    sneaker = next(r for r in report["per_class"] if r["class"] == "Sneaker")
    assert sneaker["catalogue"] == 1.0 and sneaker["n_catalogue"] == 1 and sneaker["phone"] is None
    assert report["domains"]["catalogue"]["accuracy"] == 0.25  # one of four in-class catalogue photos is a sneaker
    assert report["other_flagged"] == 0.0 and report["correct_flagged"] == 0.0
    unsure = photos.photo_report(Classifier.from_registry("unsure", photo_models), split="val")
    assert unsure["other_flagged"] == 1.0 and unsure["n_other"] == 3


def test_photo_report_refuses_other_classes(photo_models):
    classifier = Classifier.from_registry("sure_sneaker", photo_models)
    classifier.class_names = tuple(reversed(FASHION_MNIST_CLASSES))
    with pytest.raises(InvalidParameterError):
        photos.photo_report(classifier)



def test_bench_reports_the_photo_model_beside_the_best_fashion_mnist_model(photo_models, models_env):
    from fashion_core.bench import PHOTO_TARGETS, bench_photos
    from fashion_core.registry import Registry

    for entry in models_env.list():  # a registry with both kinds of model
        shutil.copytree(entry.path, photo_models.root / entry.name)
    result = bench_photos(Registry(photo_models.root), limit=None)
    assert result["targets"] == PHOTO_TARGETS
    rows = {row["name"]: row for row in result["models"]}
    assert set(rows) == {"sure_sneaker", "tiny_ae"} or set(rows) == {"sure_sneaker", "tiny_cnn"}
    assert rows["sure_sneaker"]["photo_model"] is True
    for row in rows.values():
        assert {"domains", "per_class", "other_flagged", "correct_flagged", "fashion_mnist_test_accuracy"} <= set(row)
        assert [c["class"] for c in row["per_class"]] == list(FASHION_MNIST_CLASSES)


def test_bench_photos_without_the_folder_says_why(photo_models, monkeypatch, tmp_path):
    from fashion_core.bench import bench_photos

    monkeypatch.setenv("FASHION_PHOTOS_DIR", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    result = bench_photos(photo_models, limit=10)
    assert "skipped" in result and "labels.csv" in result["skipped"]


def test_bench_neighbours_skips_models_that_read_other_images(photo_models, small_dataset):
    """A 48-px colour photo model beside 28-px models: neighbour search is benchmarked on the
    28-px images with the models that read them, never by feeding the wrong shape."""
    from fashion_core.bench import bench_neighbours

    metadata = {"arch": "imported", "dataset": {"kind": "fashion-mnist", "image_size": 32, "color": True},
                "class_names": list(FASHION_MNIST_CLASSES), "image_shape": [32, 32, 3], "test_accuracy": 0.99}
    photo_models.save("wide_colour", constant_classifier(np.zeros(10), image_shape=(32, 32, 3)), metadata)
    result = bench_neighbours(photo_models, small_dataset, gallery_limit=600, calls=5)
    assert {row["name"] for row in result["per_encoder"]} == {"sure_sneaker", "unsure"}
