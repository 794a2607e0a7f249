import zipfile
from pathlib import Path

import numpy as np
import pytest

from fashion_core.errors import InvalidNameError, ModelFileError, ModelNotFoundError
from fashion_core.export import export_model
from fashion_core.registry import dataset_metadata, load_keras_file, validate_name


def tiny_model(input_shape=(28, 28, 1), classes=10, lam=False):
    import keras

    inputs = keras.Input(shape=input_shape)
    x = keras.layers.Flatten()(inputs)
    if lam:
        x = keras.layers.Lambda(lambda t: t * 2.0)(x)
    outputs = keras.layers.Dense(classes, activation="softmax")(x)
    return keras.Model(inputs, outputs)


@pytest.mark.parametrize("bad", ["", "   ", "../x", "..", "a/b", "/etc/passwd", ".hidden", "a b", "x" * 65, "a..b", "név"])
def test_bad_names_refused(bad):
    with pytest.raises(InvalidNameError):
        validate_name(bad)


def test_round_trip_list_load_export_delete(registry, tmp_path):
    model = tiny_model()
    entry = registry.save("m1", model, {"arch": "test", "test_accuracy": 0.5}, history={"classifier": {"loss": [1.0]}})
    assert [e.name for e in registry.list()] == ["m1"]
    assert entry.metadata["name"] == "m1" and "created_at" in entry.metadata
    loaded = registry.load_classifier("m1")
    x = np.random.rand(2, 28, 28, 1).astype(np.float32)
    np.testing.assert_allclose(np.asarray(loaded(x)), np.asarray(model(x)), atol=1e-6)
    assert registry.history("m1")["classifier"]["loss"] == [1.0]
    out = Path(export_model("m1", tmp_path, registry=registry)["path"])
    assert out.name == "m1.keras" and zipfile.is_zipfile(out)
    with pytest.raises(InvalidNameError):
        registry.save("m1", model, {})
    registry.delete("m1")
    assert registry.list() == []
    with pytest.raises(ModelNotFoundError):
        registry.load_classifier("m1")


def test_crash_mid_save_leaves_no_visible_model(registry, monkeypatch):
    model = tiny_model()
    import fashion_core.registry as reg

    def boom(*args, **kwargs):
        raise KeyboardInterrupt("killed")  # what a kill mid-save looks like to the writer

    monkeypatch.setattr(reg, "write_json_atomic", boom)
    with pytest.raises(KeyboardInterrupt):
        registry.save("halfway", model, {"arch": "x"})
    assert registry.list() == []
    assert not (registry.root / "halfway").exists()


def test_leftover_temporary_folder_from_a_killed_process_is_ignored(registry):
    registry.root.mkdir(parents=True)
    leftover = registry.root / ".m2.abcd1234.tmp"
    leftover.mkdir()
    (leftover / "model.keras").write_bytes(b"partial")
    entries, problems = registry.scan()
    assert entries == [] and problems == []


def test_overwrite_replaces_atomically(registry):
    registry.save("m", tiny_model(), {"arch": "a", "test_accuracy": 0.1})
    registry.save("m", tiny_model(), {"arch": "b", "test_accuracy": 0.2}, overwrite=True)
    assert registry.get("m").metadata["arch"] == "b"
    assert [p.name for p in registry.root.iterdir()] == ["m"]


def test_corrupt_and_foreign_folders_are_reported_not_fatal(registry):
    registry.save("good", tiny_model(), {"arch": "a"})
    (registry.root / "foreign").mkdir()
    (registry.root / "foreign" / "notes.txt").write_text("hello")
    bad = registry.root / "badjson"
    bad.mkdir()
    (bad / "model.keras").write_bytes(b"x")
    (bad / "metadata.json").write_text("{not json")
    entries, problems = registry.scan()
    assert [e.name for e in entries] == ["good"]
    assert {p[0] for p in problems} == {"foreign", "badjson"}


def test_lambda_model_is_refused_never_executed(registry, tmp_path, fashion_mnist):
    path = tmp_path / "evil.keras"
    tiny_model(lam=True).save(path)
    with pytest.raises(ModelFileError, match="refused"):
        load_keras_file(path)
    with pytest.raises(ModelFileError):
        registry.import_model(path, "evil", dataset_metadata(fashion_mnist))
    assert registry.list() == []


def test_import_checks_shape_and_classes(registry, tmp_path, fashion_mnist):
    meta = dataset_metadata(fashion_mnist)
    wrong_shape = tmp_path / "shape.keras"
    tiny_model((32, 32, 3)).save(wrong_shape)
    with pytest.raises(ModelFileError, match="shape"):
        registry.import_model(wrong_shape, "s", meta)
    wrong_classes = tmp_path / "classes.keras"
    tiny_model(classes=7).save(wrong_classes)
    with pytest.raises(ModelFileError, match="10 classes"):
        registry.import_model(wrong_classes, "c", meta)
    good = tmp_path / "good.keras"
    tiny_model().save(good)
    entry = registry.import_model(good, "imported", meta)
    assert entry.metadata["arch"] == "imported" and entry.metadata["class_names"][0] == "T-shirt/top"


def test_not_a_zip_is_a_clear_error(tmp_path):
    path = tmp_path / "model.keras"
    path.write_text("definitely not a model")
    with pytest.raises(ModelFileError, match="zip"):
        load_keras_file(path)


def test_free_name_adds_a_number_until_the_name_is_free():
    from fashion_core.registry import free_name

    assert free_name("my net!", set()) == "my-net"
    assert free_name("my net!", {"my-net", "my-net-2"}) == "my-net-3"


def test_default_photo_model_is_the_one_best_on_held_out_photos():
    from types import SimpleNamespace

    from fashion_core.registry import default_entry

    def entry(name, photo, test, held_out=None):
        return SimpleNamespace(name=name, is_photo_model=photo, test_accuracy=test, heldout_photo_accuracy=held_out,
                               dataset_spec={"kind": "fashion-mnist"}, metadata={})

    plain = entry("plain", False, 0.95)
    sharp = entry("sharp_on_mnist", True, 0.94, 0.60)
    photo = entry("good_on_photos", True, 0.92, 0.75)
    assert default_entry([plain, sharp, photo]).name == "good_on_photos"
    assert default_entry([plain, entry("a", True, 0.90), entry("b", True, 0.91)]).name == "b"  # no held-out figure: test
    assert default_entry([plain]).name == "plain"


def test_a_trained_model_is_saved_without_its_optimizer_state(registry, tmp_path):
    import keras

    from fashion_core import zoo
    from fashion_core.registry import without_optimizer

    model = zoo.build("seed004_cnn", (28, 28, 1), 10).classifier
    model.compile(keras.optimizers.AdamW(1e-3), "sparse_categorical_crossentropy")
    x = np.random.default_rng(0).random((16, 28, 28, 1)).astype("float32")
    model.fit(x, np.arange(16) % 10, verbose=0)
    model.save(tmp_path / "with_optimizer.keras")
    entry = registry.save("trained", model, {"arch": "seed004_cnn"})
    assert entry.model_file.stat().st_size < 0.6 * (tmp_path / "with_optimizer.keras").stat().st_size
    np.testing.assert_allclose(registry.load_classifier("trained").predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)
    plain = zoo.build("seed004_cnn", (28, 28, 1), 10).classifier
    assert without_optimizer(plain) is plain
