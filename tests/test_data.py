import gzip
import struct

import numpy as np
import pytest

from fashion_core import data
from fashion_core.errors import DataError
from fashion_core.loaders import load_dataset


def write_idx(path, array, magic):
    header = struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in array.shape)
    with gzip.open(path, "wb") as handle:
        handle.write(header + array.astype(np.uint8).tobytes())


def fake_fashion_dir(folder, n_train=60000, n_test=10000, truncate=None, bad_magic=None):
    folder.mkdir(parents=True, exist_ok=True)
    for key, filename in data.FASHION_MNIST_FILES.items():
        n = n_train if "train" in key else n_test
        if key.startswith("x"):
            arr, magic = np.zeros((n, 28, 28), np.uint8), data.IDX_IMAGES_MAGIC
        else:
            arr, magic = (np.arange(n) % 10).astype(np.uint8), data.IDX_LABELS_MAGIC
        if bad_magic == key:
            magic = 1234
        write_idx(folder / filename, arr, magic)
        if truncate == key:
            raw = gzip.open(folder / filename).read()
            with gzip.open(folder / filename, "wb") as handle:
                handle.write(raw[: len(raw) - 100])
    return folder


def test_real_dataset_shapes(fashion_mnist):
    assert fashion_mnist.image_shape == (28, 28, 1)
    assert fashion_mnist.num_classes == 10
    assert fashion_mnist.x_train.shape == (60000, 28, 28, 1)
    assert fashion_mnist.x_test.dtype == np.uint8
    assert set(np.unique(fashion_mnist.y_test)) == set(range(10))
    assert fashion_mnist.class_names[9] == "Ankle boot"
    assert (fashion_mnist.class_counts("test") == 1000).all()


def test_read_idx_rejects_truncated_file(tmp_path):
    folder = fake_fashion_dir(tmp_path / "fm", n_train=60000, truncate="x_test")
    with pytest.raises(DataError, match="truncated or corrupt"):
        data.load_fashion_mnist(folder)


def test_read_idx_rejects_wrong_magic(tmp_path):
    folder = fake_fashion_dir(tmp_path / "fm", bad_magic="y_train")
    with pytest.raises(DataError, match="magic number 1234"):
        data.load_fashion_mnist(folder)


def test_read_idx_rejects_non_gzip_garbage(tmp_path):
    path = tmp_path / "x.gz"
    path.write_bytes(b"this is not gzip at all")
    with pytest.raises(DataError):
        data.read_idx(path)


def test_read_idx_rejects_wrong_count(tmp_path):
    path = tmp_path / "labels.gz"
    write_idx(path, np.zeros(5, np.uint8), data.IDX_LABELS_MAGIC)
    with pytest.raises(DataError, match="5 items, expected 10"):
        data.read_idx(path, data.IDX_LABELS_MAGIC, 10)


def test_lookup_order_explicit_then_env_then_cache(tmp_path, monkeypatch):
    explicit = fake_fashion_dir(tmp_path / "explicit")
    env_dir = fake_fashion_dir(tmp_path / "env")
    keras_home = tmp_path / "keras_home"
    cache = fake_fashion_dir(keras_home / "datasets" / "fashion-mnist")
    monkeypatch.setenv("KERAS_HOME", str(keras_home))
    monkeypatch.setenv("FASHION_MNIST_DIR", str(env_dir))
    assert data.find_fashion_mnist_dir(explicit) == explicit
    assert data.find_fashion_mnist_dir() == env_dir
    monkeypatch.delenv("FASHION_MNIST_DIR")
    assert data.find_fashion_mnist_dir() == cache


def test_explicit_folder_without_files_is_an_error(tmp_path):
    with pytest.raises(DataError, match="does not contain"):
        data.find_fashion_mnist_dir(tmp_path)


def test_offline_without_files_says_how_to_fix(tmp_path, monkeypatch):
    monkeypatch.delenv("FASHION_MNIST_DIR", raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "empty"))
    monkeypatch.setattr(data, "_download_with_keras", lambda: None)  # what offline looks like
    with pytest.raises(DataError, match="FASHION_MNIST_DIR"):
        data.load_fashion_mnist()
    with pytest.raises(DataError, match="FASHION_MNIST_DIR"):
        data.load_fashion_mnist(allow_download=False)


def test_validation_split_is_seeded_stratified_and_disjoint(fashion_mnist):
    y = fashion_mnist.y_train[:2000]
    a_train, a_val = data.train_validation_split(len(y), 0.2, seed=3, labels=y)
    b_train, b_val = data.train_validation_split(len(y), 0.2, seed=3, labels=y)
    assert np.array_equal(a_val, b_val)
    assert len(np.intersect1d(a_train, a_val)) == 0
    assert len(a_val) == 400
    assert set(np.unique(y[a_val])) == set(range(10))
    with pytest.raises(DataError):
        data.train_validation_split(10, 1.5)


def test_validation_split_of_a_tiny_catalogue_is_plain_not_a_traceback():
    """20 classes of 3 images, 10% held out: 6 validation images cannot hold every class, so the
    split is a plain seeded one (scikit-learn refuses to stratify it)."""
    labels = np.repeat(np.arange(20), 3)
    train_idx, val_idx = data.train_validation_split(len(labels), 0.1, seed=0, labels=labels)
    assert len(val_idx) == 6 and len(train_idx) == 54 and not np.intersect1d(train_idx, val_idx).size
    with pytest.raises(DataError):
        data.train_validation_split(1, 0.1, labels=np.array([0]))


def test_subset_and_model_input(fashion_mnist):
    small = fashion_mnist.subset(500, seed=1)
    assert len(small.y_train) == 500 and small.image_shape == (28, 28, 1)
    x = data.to_model_input(small.x_test[:4])
    assert x.dtype == np.float32 and 0.0 <= x.min() and x.max() <= 1.0


def test_subset_spec_reloads_the_same_images(fashion_mnist):
    small = fashion_mnist.subset(300, seed=4)
    assert small.spec["subset"] == {"limit": 300, "seed": 4}
    again = load_dataset(small.spec)
    assert np.array_equal(again.x_test, small.x_test) and np.array_equal(again.y_train, small.y_train)
