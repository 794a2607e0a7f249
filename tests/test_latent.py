"""Latent space: encoders from the registry, exact neighbour search, 2-D maps, reconstructions."""

from __future__ import annotations

import numpy as np
import pytest

from fashion_core import latent, neighbours
from fashion_core.errors import InvalidParameterError, ModelNotFoundError
from fashion_core.neighbours import NeighbourIndex, precision_at_k


def _brute_force(gallery, queries, k, exclude=None):
    d = np.sqrt(((queries[:, None, :].astype(np.float64) - gallery[None, :, :]) ** 2).sum(-1))
    if exclude is not None:
        d[np.arange(len(queries)), exclude] = np.inf
    order = np.argsort(d, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(d, order, axis=1), order


def _clustered(n=3000, dims=192, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n)
    centres = rng.normal(0, 4, (10, dims))
    scale = np.linspace(1.5, 0.05, dims)  # decaying variance, like real embeddings
    return (centres[labels] + rng.normal(0, 1, (n, dims)) * scale).astype(np.float32), labels


@pytest.mark.parametrize("dims", [16, 192, 300])
def test_batch_query_matches_brute_force(dims):
    x, labels = _clustered(n=1500, dims=dims)
    index = NeighbourIndex(x, labels)
    queries = x[:40]
    distances, indices = index.query(queries, k=7, exclude=np.arange(40))
    assert distances.shape == indices.shape == (40, 7)
    assert np.all(indices != np.arange(40)[:, None])  # the query itself is skipped
    assert np.all(np.diff(distances, axis=1) >= -1e-5)
    if dims <= neighbours.MAX_INDEX_DIMS:  # rotation only: distances are exact
        ref_d, ref_i = _brute_force(x, queries, 7, exclude=np.arange(40))
        np.testing.assert_allclose(distances, ref_d, rtol=1e-3, atol=1e-3)
        assert np.mean(indices == ref_i) > 0.99
    else:
        assert index.dims == neighbours.MAX_INDEX_DIMS


def test_single_queries_on_a_big_gallery_use_hnsw_and_find_the_true_neighbours():
    x, labels = _clustered(n=4000, dims=192)
    assert NeighbourIndex(x, labels).kind == "exact"  # small: every query is exact
    index = NeighbourIndex(x, labels, approximate=True)
    assert index.kind == "hnsw"
    ref_d, ref_i = _brute_force(x, x[:20], 10, exclude=np.arange(20))
    recalls = []
    for i in range(20):
        d, j = index.query(x[i], k=10, exclude=[i])
        assert d.shape == j.shape == (1, 10) and i not in j[0]
        assert not index.last_query_exact
        assert np.all(np.diff(d[0]) >= -1e-5)
        recalls.append(len(set(j[0]) & set(ref_i[i])) / 10)
    assert np.mean(recalls) >= 0.95
    exact_d, exact_i = index.query(x[:1], k=10, exclude=[0], exact=True)
    assert index.last_query_exact
    np.testing.assert_array_equal(exact_i[0], ref_i[0])
    np.testing.assert_allclose(exact_d[0], ref_d[0], rtol=1e-3, atol=1e-3)
    batch_d, batch_i = index.query(x[:10], k=10, exclude=np.arange(10))  # batches are exact
    np.testing.assert_array_equal(batch_i, ref_i[:10])


def test_the_stored_vectors_are_a_read_only_copy():
    x, labels = _clustered(n=300, dims=16)
    for approximate in (False, True):
        index = NeighbourIndex(x, labels, approximate=approximate)
        np.testing.assert_array_equal(index.vectors, x)
        assert not index.vectors.flags.writeable and not index.labels.flags.writeable
    assert labels.flags.writeable  # the caller's arrays are left as they were


def test_query_validates_its_arguments():
    x, labels = _clustered(n=50, dims=8)
    index = NeighbourIndex(x, labels)
    with pytest.raises(InvalidParameterError, match="k must be"):
        index.query(x[:1], k=0)
    with pytest.raises(InvalidParameterError, match="k must be"):
        index.query(x[:1], k=50, exclude=[0])
    with pytest.raises(InvalidParameterError, match=r"\(Q, 8\)"):
        index.query(np.zeros((1, 9)), k=3)
    with pytest.raises(InvalidParameterError, match="exclude"):
        index.query(x[:2], k=3, exclude=[0])
    with pytest.raises(InvalidParameterError, match="beyond"):
        index.query(x[:1], k=3, exclude=[50])
    with pytest.raises(InvalidParameterError, match="labels"):
        NeighbourIndex(x, labels[:10])
    with pytest.raises(InvalidParameterError, match="NaN"):
        NeighbourIndex(np.full((3, 2), np.nan), [0, 1, 2])


def test_precision_at_k_counts_agreeing_labels():
    gallery = np.array([[0.0, 0], [0, 1], [10, 10], [10, 11]], np.float32)
    index = NeighbourIndex(gallery, np.array([0, 0, 1, 1]))
    assert precision_at_k(index, np.array([[0, 0.5], [10, 10.5]]), np.array([0, 1]), k=2) == 1.0
    assert precision_at_k(index, np.array([[0, 0.5]]), np.array([1]), k=2) == 0.0
    assert precision_at_k(index, gallery, np.array([0, 0, 1, 1]), k=1, exclude=np.arange(4)) == 1.0


def test_project_2d_pca_and_tsne():
    x, _ = _clustered(n=400, dims=20)
    coords, rows = latent.project_2d(x)
    assert coords.shape == (400, 2) and coords.dtype == np.float32
    np.testing.assert_array_equal(rows, np.arange(400))
    coords, rows = latent.project_2d(x[:, :5], method="tsne", sample=60, seed=1)
    assert coords.shape == (60, 2) and len(set(rows)) == 60 and np.all(np.diff(rows) > 0)
    assert np.all(np.isfinite(coords))
    big = np.zeros((latent.MAX_TSNE_ROWS + 1, 3), np.float32)
    with pytest.raises(InvalidParameterError, match="t-SNE"):
        latent.project_2d(big, method="tsne")
    with pytest.raises(InvalidParameterError, match="projection"):
        latent.project_2d(x, method="umap")


def test_gallery_is_train_then_test(small_dataset):
    images, labels, sources = latent.gallery(small_dataset)
    n_train, n_test = len(small_dataset.y_train), len(small_dataset.y_test)
    assert images.shape == (n_train + n_test, *small_dataset.image_shape) and images.dtype == np.uint8
    np.testing.assert_array_equal(labels[:n_train], small_dataset.y_train)
    np.testing.assert_array_equal(images[n_train:], small_dataset.x_test)
    assert list(np.unique(sources[:n_train])) == ["train"] and list(np.unique(sources[n_train:])) == ["test"]


def test_encoders_from_the_registry(trained_registry, small_dataset):
    options = dict(latent.encoder_options(trained_registry))
    assert options == {"tiny_ae": "autoencoder latent (256-d)", "tiny_cnn": "penultimate layer 'embedding' (64-d)"}
    for name, dims in (("tiny_ae", 256), ("tiny_cnn", 64)):
        encoder, description = latent.encoder_for(name, trained_registry)
        vectors = latent.embed(encoder, small_dataset.x_test[:50], batch_size=16)
        assert vectors.shape == (50, dims) and vectors.dtype == np.float32
        same_as_float = latent.embed(encoder, small_dataset.x_test[:50].astype(np.float32) / 255.0)
        np.testing.assert_allclose(vectors, same_as_float, rtol=1e-4, atol=1e-5)
    with pytest.raises(ModelNotFoundError):
        latent.encoder_for("missing", trained_registry)


def test_precision_at_k_is_the_label_agreement_of_the_true_neighbours(trained_registry, small_dataset):
    encoder, _ = latent.encoder_for("tiny_cnn", trained_registry)
    gallery = latent.embed(encoder, small_dataset.x_train)
    queries = latent.embed(encoder, small_dataset.x_test)
    index = NeighbourIndex(gallery, small_dataset.y_train)
    precision = precision_at_k(index, queries, small_dataset.y_test, k=10)
    g, q = gallery.astype(np.float64), queries.astype(np.float64)
    d2 = (q ** 2).sum(1)[:, None] + (g ** 2).sum(1)[None, :] - 2 * q @ g.T
    found = np.argsort(d2, axis=1, kind="stable")[:, :10]
    expected = np.mean(small_dataset.y_train[found] == small_dataset.y_test[:, None])
    assert precision == pytest.approx(expected, abs=0.01)  # how well it trained is bench's business


def test_reconstruct(trained_registry, small_dataset):
    images = small_dataset.x_test[:5]
    out = latent.reconstruct(trained_registry.load_autoencoder("tiny_ae"), images)
    assert out.shape == images.shape and out.dtype == np.uint8
    assert np.abs(out.astype(float) - images).mean() < np.abs(255.0 - images).mean()  # closer than the negative
    assert latent.reconstruct(trained_registry.load_autoencoder("tiny_cnn"), images) is None


@pytest.mark.parametrize("approximate", [False, True])
def test_a_saved_index_loads_and_answers_the_same(tmp_path, approximate):
    x, labels = _clustered(n=600, dims=300)  # wider than MAX_INDEX_DIMS: the PCA travels too
    index = NeighbourIndex(x, labels, approximate=approximate)
    paths = np.array([f"photo-{i}.jpg" for i in range(600)])
    saved = index.save(tmp_path / "index.npz", paths=paths)
    assert [p.name for p in tmp_path.iterdir()] == ["index.npz"]  # no temporary file left
    loaded, extra = NeighbourIndex.load(saved)
    assert loaded.kind == index.kind and len(loaded) == 600 and loaded.dims == index.dims
    np.testing.assert_array_equal(extra["paths"], paths)
    for q in (x[:1], x[:10]):
        for a, b in zip(index.query(q, k=5, exclude=np.arange(len(q))), loaded.query(q, k=5, exclude=np.arange(len(q)))):
            np.testing.assert_array_equal(a, b)
    (tmp_path / "broken.npz").write_bytes(b"not an index")
    with pytest.raises(InvalidParameterError, match="not a saved neighbour index"):
        NeighbourIndex.load(tmp_path / "broken.npz")
