"""Shared fixtures: the real Fashion-MNIST files (small subsets), a temporary registry and a
tiny trained model. Tests never touch the network or the repository's own models/ folder."""

from __future__ import annotations

import os
import tempfile

import numpy as np
import pytest

from tests.helpers import PHOTO_FIXTURES, REPO, save_photo_model

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
SHARED_DATA = REPO.parent / "shared" / "data" / "fashion-mnist"
if "FASHION_MNIST_DIR" not in os.environ and SHARED_DATA.is_dir():
    os.environ["FASHION_MNIST_DIR"] = str(SHARED_DATA)
# A handful of real photos (copied from ../shared/data/real-photos, a few KB each) stand in for the
# whole folder, and preprocessed arrays are cached in a folder of this test session.
os.environ["FASHION_PHOTOS_DIR"] = str(PHOTO_FIXTURES)
os.environ["FASHION_CACHE_DIR"] = tempfile.mkdtemp(prefix="fashion-cache-")


@pytest.fixture(scope="session")
def fashion_mnist():
    """The full Fashion-MNIST dataset (read once per test session)."""
    from fashion_core.data import load_fashion_mnist

    if not os.environ.get("FASHION_MNIST_DIR"):
        pytest.skip("FASHION_MNIST_DIR is not set and ../shared/data/fashion-mnist is missing")
    return load_fashion_mnist(allow_download=False)


@pytest.fixture(scope="session")
def small_dataset(fashion_mnist):
    """1,500 training and 300 test images: enough for 1-epoch smoke training."""
    return fashion_mnist.subset(1500, seed=0)


@pytest.fixture()
def registry(tmp_path, monkeypatch):
    """An empty registry in a temporary folder, also exported as FASHION_MODELS_DIR."""
    from fashion_core.registry import Registry

    root = tmp_path / "models"
    monkeypatch.setenv("FASHION_MODELS_DIR", str(root))
    return Registry(root)


@pytest.fixture(scope="session")
def trained_registry(tmp_path_factory, small_dataset):
    """A registry holding two tiny trained models: a classifier (seed004_cnn) and an
    autoencoder model (conv_autoencoder), each 1 epoch on the small subset."""
    from fashion_core.registry import Registry
    from fashion_core.runs import train_and_save
    from fashion_core.training import TrainConfig

    root = tmp_path_factory.mktemp("trained") / "models"
    registry = Registry(root)
    train_and_save(small_dataset, TrainConfig(arch="seed004_cnn", epochs=1, batch_size=64, learning_rate=1e-3), "tiny_cnn", registry=registry)
    train_and_save(small_dataset, TrainConfig(arch="conv_autoencoder", epochs=1, batch_size=64, fine_tune_epochs=0), "tiny_ae", registry=registry)
    return registry


@pytest.fixture()
def models_env(trained_registry, monkeypatch):
    """Point FASHION_MODELS_DIR at the trained registry (for CLI and dashboard tests)."""
    monkeypatch.setenv("FASHION_MODELS_DIR", str(trained_registry.root))
    return trained_registry


@pytest.fixture()
def photo_models(registry):
    """A registry with two constant photo models: ``sure_sneaker`` (always Sneaker, ~100%) and
    ``unsure`` (always 10% for every class: "none of these")."""
    sneaker = np.zeros(10)
    sneaker[7] = 12.0
    save_photo_model(registry, "sure_sneaker", sneaker, test_accuracy=0.95)
    save_photo_model(registry, "unsure", np.zeros(10), test_accuracy=0.5)
    return registry

