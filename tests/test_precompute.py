"""Precomputed artefacts: written on save, reused by the dashboard's caches, never trusted when
stale or missing (the pages then compute in memory without writing)."""

from __future__ import annotations

import numpy as np
import pytest

from fashion_core import diskcache, precompute
from fashion_core.registry import Registry


@pytest.fixture()
def artefact_registry(trained_registry, tmp_path):
    """A private copy of the tiny registry (tests here change model files)."""
    import shutil

    root = tmp_path / "models"
    shutil.copytree(trained_registry.root, root)
    return Registry(root)


def test_save_writes_fresh_artefacts_that_match_the_model(trained_registry):
    from fashion_core.latent import encoder_for, gallery_labels
    from fashion_core.predict import predict_probabilities
    from fashion_core.runs import dataset_for_model

    for name in ("tiny_cnn", "tiny_ae"):
        entry = trained_registry.get(name)
        assert (entry.path / precompute.ARTEFACT_FILE).is_file()
        stored = precompute.load(entry, with_embeddings=True)
        assert stored is not None
        data = dataset_for_model(entry)
        assert stored["probabilities"].dtype == np.float16 and not stored["probabilities"].flags.writeable
        expected = predict_probabilities(trained_registry.load_classifier(name), data.x_test)
        np.testing.assert_allclose(stored["probabilities"], expected, atol=2e-3)
        labels, _ = gallery_labels(data)
        assert len(stored["embeddings"]) == len(stored["rows"]) == min(len(labels), precompute.MAP_GALLERY)
        assert stored["embeddings"].shape[1] == encoder_for(name, trained_registry)[0].output.shape[-1]
        assert stored["map_coords"].shape == (len(stored["map_points"]), 2)


def test_a_changed_model_file_makes_the_artefacts_stale(artefact_registry):
    entry = artefact_registry.get("tiny_cnn")
    assert precompute.load(entry) is not None
    with open(entry.model_file, "ab") as handle:  # another model under the same name
        handle.write(b"\0")
    assert precompute.load(entry) is None


def test_damaged_or_missing_artefacts_are_not_trusted_and_rebuilt(artefact_registry):
    from fashion_core.runs import precompute_and_store

    entry = artefact_registry.get("tiny_ae")
    path = entry.path / precompute.ARTEFACT_FILE
    path.write_bytes(b"not an npz")
    assert precompute.load(entry) is None
    precompute_and_store("tiny_ae", registry=artefact_registry)
    assert precompute.load(entry, with_embeddings=True) is not None
    stamp = str(precompute.load(entry)["stamp"])
    diskcache.cache_path(precompute.embeddings_cache_key("tiny_ae", stamp), ".npy").unlink()
    assert precompute.load(entry) is not None  # the small part stays usable
    assert precompute.load(entry, with_embeddings=True) is None  # embeddings: computed in memory


def test_a_photo_models_gallery_embeddings_ship_beside_it(photo_models, tmp_path, monkeypatch):
    """A fresh deploy has an empty disk cache: the Latent space page's default (photo) model
    finds its gallery embeddings beside it; an older stamp's file is removed."""
    monkeypatch.setenv("FASHION_CACHE_DIR", str(tmp_path / "empty-cache"))
    entry = photo_models.get("sure_sneaker")
    assert precompute.ships_embeddings(entry)
    stale = entry.path / f"{precompute.EMBEDDINGS_PREFIX}0123.npy"
    np.save(stale, np.zeros((2, 2), np.float16))
    rows = np.arange(5, dtype=np.int64)
    artefacts = {"probabilities": np.full((3, 10), 0.1, np.float16), "tta_probabilities": np.zeros((0, 10), np.float16),
                 "embeddings": np.arange(20, dtype=np.float32).reshape(5, 4), "rows": rows,
                 "map_coords": np.zeros((5, 2), np.float16), "map_points": rows, "stamp": np.array(precompute.stamp(entry))}
    precompute.write(entry, artefacts)
    shipped = precompute.shipped_embeddings_path(entry, precompute.stamp(entry))
    assert shipped.is_file() and not stale.exists() and not (tmp_path / "empty-cache").exists()
    stored = precompute.load(entry, with_embeddings=True)
    assert stored["embeddings"].dtype == np.float16 and not stored["embeddings"].flags.writeable
    np.testing.assert_array_equal(stored["embeddings"], artefacts["embeddings"])
    np.save(shipped, np.zeros((4, 4), np.float16))  # not the stored rows: not trusted
    assert precompute.load(entry, with_embeddings=True) is None


def test_dashboard_caches_read_the_stored_artefacts(models_env, monkeypatch):
    import streamlit as st

    from fashion_core import predict
    from ui import cache

    st.cache_resource.clear()
    calls = []
    monkeypatch.setattr(predict, "predict_batches", lambda *a, **k: calls.append(a) or pytest.fail("recomputed"))
    entry = models_env.get("tiny_cnn")
    probabilities = cache.test_probabilities("tiny_cnn", entry.metadata)
    embeddings, labels, _sources, rows = cache.gallery_embeddings("tiny_cnn", entry.metadata, precompute.MAP_GALLERY)
    coords, points = cache.projection("tiny_cnn", entry.metadata, precompute.MAP_GALLERY, "pca",
                                      min(len(labels), precompute.MAP_SAMPLE))
    stored = precompute.load(entry, with_embeddings=True)
    np.testing.assert_array_equal(probabilities, stored["probabilities"])
    np.testing.assert_array_equal(embeddings, stored["embeddings"])
    np.testing.assert_array_equal(coords, stored["map_coords"])
    assert not calls
    for array in (probabilities, embeddings, labels, rows, coords, points):
        assert not array.flags.writeable
    st.cache_resource.clear()


def test_stale_artefacts_are_recomputed_in_memory_without_writing(artefact_registry, monkeypatch):
    import streamlit as st

    from ui import cache

    monkeypatch.setenv("FASHION_MODELS_DIR", str(artefact_registry.root))
    entry = artefact_registry.get("tiny_cnn")
    path = entry.path / precompute.ARTEFACT_FILE
    stored = precompute.load(entry)["probabilities"]
    with np.load(path) as data:
        arrays = dict(data)
    arrays["stamp"] = np.array("stale")
    np.savez(path, **arrays)
    before = path.read_bytes()
    st.cache_resource.clear()
    probabilities = cache.test_probabilities("tiny_cnn", entry.metadata)
    np.testing.assert_allclose(probabilities, stored, atol=2e-3)
    assert path.read_bytes() == before  # nothing written during a render
    st.cache_resource.clear()
