"""Shared fixtures: the real Fashion-MNIST files (small subsets), a temporary registry and a
tiny trained model. Tests never touch the network or the repository's own models/ folder."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data" / "fashion-mnist"
if "FASHION_MNIST_DIR" not in os.environ and SHARED_DATA.is_dir():
    os.environ["FASHION_MNIST_DIR"] = str(SHARED_DATA)


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


def png_bytes(array):
    """Encode a uint8 array (H, W) or (H, W, 3) as PNG bytes."""
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.asarray(array, dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()
