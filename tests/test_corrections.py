"""The corrections catalogue (fashion_core.corrections): add, relabel, delete, list; bad labels and
unreadable photos are one clear error and write nothing; every write is atomic; the folder is a
catalogue ``load_catalogue`` reads."""

from __future__ import annotations

import os

import numpy as np
import pytest

from fashion_core import corrections as corrections_module
from fashion_core.catalogue import load_catalogue
from fashion_core.corrections import CorrectionsStore, default_corrections_dir
from fashion_core.errors import DataError, ImageError, InvalidParameterError
from fashion_core.registry import CORRECTIONS_DIR
from tests.helpers import PHOTO_FIXTURES, constant_classifier

CLASSES = ("Shirt", "Bag", "Trouser")


def photo(name):
    return (PHOTO_FIXTURES / "images" / name).read_bytes()


PHOTOS = ["phone-06.jpg", "catalogue-02.jpg", "phone-07.jpg", "catalogue-03.jpg", "catalogue-00.jpg"]


@pytest.fixture()
def store(tmp_path):
    return CorrectionsStore(tmp_path / "corrections")


def files_in(folder):
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file() and p.name != ".lock")


def test_add_list_and_the_folder_is_a_catalogue(store):
    labels = ["Shirt", "Bag", "Trouser", "Trouser", "Shirt"]
    added = [store.add(photo(p), label, class_names=CLASSES, name=p) for p, label in zip(PHOTOS, labels)]
    listed = store.list()
    assert [c.id for c in listed] == [c.id for c in added]
    assert [c.label for c in listed] == labels and listed[0].name == "phone-06.jpg" and listed[0].added_at
    assert store.image_bytes(added[0].id) == photo(PHOTOS[0])  # the original bytes, untouched
    assert store.counts() == {"Shirt": 2, "Bag": 1, "Trouser": 2}
    assert not store.is_catalogue()  # Bag has one photo: the loader would refuse it
    store.add(photo("phone-08.jpg"), "Bag", class_names=CLASSES)
    assert store.is_catalogue()
    data = load_catalogue(store.csv_path)  # the ordinary catalogue loader reads it
    assert data.class_names == ("Bag", "Shirt", "Trouser") and len(data.y_train) + len(data.y_test) == 6


def test_the_same_photo_twice_keeps_one_row_with_the_new_label(store):
    first = store.add(photo(PHOTOS[0]), "Shirt", class_names=CLASSES)
    again = store.add(photo(PHOTOS[0]), "Bag", class_names=CLASSES)
    assert first.id == again.id and [(c.id, c.label) for c in store.list()] == [(first.id, "Bag")]


def test_labels_come_from_the_model(store, registry):
    from fashion_core.classes import FASHION_MNIST_CLASSES

    metadata = {"arch": "imported", "class_names": list(FASHION_MNIST_CLASSES), "image_shape": [28, 28, 1]}
    registry.save("const", constant_classifier(np.zeros(10)), metadata)
    store = CorrectionsStore(store.root, registry=registry)
    correction = store.add(photo(PHOTOS[0]), "Shirt", model="const")
    assert correction.model == "const"
    with pytest.raises(InvalidParameterError, match="not one of the model's classes"):
        store.add(photo(PHOTOS[1]), "Handbag", model=registry.get("const"))
    # relabel checks against the classes of the model it corrected
    with pytest.raises(InvalidParameterError):
        store.relabel(correction.id, "Handbag")
    assert store.relabel(correction.id, "Coat").label == "Coat"


def test_relabel_and_delete(store):
    a = store.add(photo(PHOTOS[0]), "Shirt", class_names=CLASSES)
    b = store.add(photo(PHOTOS[1]), "Bag", class_names=CLASSES)
    assert store.relabel(a.id, "Trouser", class_names=CLASSES).label == "Trouser"
    assert [(c.id, c.label) for c in store.list()] == [(a.id, "Trouser"), (b.id, "Bag")]
    store.delete(a.id)
    assert [c.id for c in store.list()] == [b.id]
    assert files_in(store.root) == ["images/" + b.path.split("/")[1], "labels.csv"]  # the photo went too
    for action in (lambda: store.delete(a.id), lambda: store.relabel(a.id, "Bag")):
        with pytest.raises(DataError, match="no correction"):
            action()


@pytest.mark.parametrize("label", ["Dog", "", "   ", 7, None])
def test_a_bad_label_is_one_clear_error_and_writes_nothing(store, label):
    store.add(photo(PHOTOS[0]), "Shirt", class_names=CLASSES)
    before = files_in(store.root), store.csv_path.read_bytes()
    with pytest.raises(InvalidParameterError):
        store.add(photo(PHOTOS[1]), label, class_names=CLASSES)
    assert (files_in(store.root), store.csv_path.read_bytes()) == before


@pytest.mark.parametrize("data", [b"", b"just some text, not an image", b"%PDF-1.4 pretend", photo(PHOTOS[0])[:200]])
def test_an_unreadable_photo_is_one_clear_error_and_writes_nothing(store, data):
    with pytest.raises(ImageError):
        store.add(data, "Shirt", class_names=CLASSES)
    assert store.list() == [] and files_in(store.root) == []


def test_photos_over_the_upload_limit_are_refused(store, monkeypatch):
    import fashion_core.preprocess as preprocess

    monkeypatch.setattr(preprocess, "MAX_UPLOAD_BYTES", 1000)
    with pytest.raises(ImageError, match="upload limit"):
        store.add(photo(PHOTOS[0]), "Shirt", class_names=CLASSES)
    assert store.list() == []


def test_a_write_that_fails_leaves_the_csv_as_it_was(store, monkeypatch):
    store.add(photo(PHOTOS[0]), "Shirt", class_names=CLASSES)
    before = store.csv_path.read_bytes()
    real_replace = os.replace

    def failing_replace(src, dst):
        if str(dst).endswith("labels.csv"):
            raise OSError("disk full")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError):
        store.add(photo(PHOTOS[1]), "Bag", class_names=CLASSES)
    with pytest.raises(OSError):
        store.relabel(store.list()[0].id, "Bag", class_names=CLASSES)
    assert store.csv_path.read_bytes() == before  # never half-written, no row lost
    assert not [p for p in store.root.rglob("*.tmp")]  # no temporary file left behind


def test_rows_pointing_outside_the_folder_are_ignored(store):
    store.add(photo(PHOTOS[0]), "Shirt", class_names=CLASSES)
    with open(store.csv_path, "a") as handle:
        handle.write("../../etc/passwd,Shirt,,,\n/etc/hosts,Bag,,,\n,Bag,,,\n")
    assert len(store.list()) == 1


def test_csv_for_a_model_keeps_only_its_classes(store):
    store.add(photo(PHOTOS[0]), "Shirt", class_names=CLASSES)
    store.add(photo(PHOTOS[1]), "Bag", class_names=CLASSES)
    assert store.csv_for(CLASSES) == store.csv_path  # every row fits: the store's own file
    subset = store.csv_for(("Bag", "Coat"))
    from fashion_core.catalogue import read_csv_rows

    rows, skipped = read_csv_rows(subset)
    assert [r["label"] for r in rows] == ["Bag"] and not skipped and rows[0]["file"].is_file()
    with pytest.raises(DataError, match="none of your corrections"):
        store.csv_for(("Sandal",))


def test_default_folder_is_beside_the_registry(registry, monkeypatch, tmp_path):
    assert default_corrections_dir() == registry.root / CORRECTIONS_DIR
    assert CORRECTIONS_DIR.startswith("_")  # the registry never lists it as a model
    monkeypatch.setenv(corrections_module.CORRECTIONS_ENV, str(tmp_path / "elsewhere"))
    assert CorrectionsStore().root == tmp_path / "elsewhere"
