"""Latent space: encoders, gallery embeddings, nearest-neighbour search, 2-D maps, reconstructions.

Used by the dashboard's Latent space page and by ``bench``. An *encoder* turns images into
vectors: the autoencoder's latent layer (``zoo.LATENT_LAYER``, flattened) for autoencoder-based
models, otherwise the classifier's penultimate layer (``zoo.EMBEDDING_LAYER`` when present).
Nearest-neighbour search over the vectors is ``neighbours.NeighbourIndex`` (NumPy only).
"""

from __future__ import annotations

import numpy as np

from . import zoo
from .data import sample_indices, to_model_input
from .errors import InvalidParameterError, ModelFileError
from .neighbours import MAX_INDEX_DIMS
from .predict import PREDICT_BATCH, predict_batches

MAX_TSNE_ROWS = 3000


def _registry(registry):
    from .registry import Registry

    return registry or Registry()


def _flattened_model(inputs, output, name):
    import keras

    if len(output.shape) > 2:
        output = keras.layers.Flatten(name=f"{name}_flat")(output)
    return keras.Model(inputs, output, name=name)


def _describe(kind, dims):
    reduced = f", PCA to {MAX_INDEX_DIMS}-d in the index" if dims > MAX_INDEX_DIMS else ""
    return f"{kind} ({dims}-d{reduced})"


def _embedding_layer(classifier, name):
    layer_names = [layer.name for layer in classifier.layers]
    if zoo.EMBEDDING_LAYER in layer_names:
        return classifier.get_layer(zoo.EMBEDDING_LAYER)
    if len(classifier.layers) >= 3:  # input layer, ..., penultimate, output
        return classifier.layers[-2]
    raise ModelFileError(f"{name}: the model has no hidden layer to use as an embedding.")


def classifier_encoder(classifier, name=None):
    """An encoder built on ``classifier``'s own layers (sharing its weights): the penultimate
    layer (``zoo.EMBEDDING_LAYER`` if present, else the layer before the output); for an
    ensemble's graph (``ensemble.build``), its first member's, which takes the same input."""
    from .ensemble import lead_model

    classifier = lead_model(classifier) or classifier
    name = name or classifier.name
    layer = _embedding_layer(classifier, name)
    return _flattened_model(classifier.inputs[0], layer.output, f"{name}_embedding")


def served_description(entry, dims):
    """How the Latent space page describes the embedding a LiteRT file serves (``Classifier.embed``)."""
    whose = f" of its first member {entry.members[0]}" if entry.is_ensemble else ""
    return _describe(f"embedding layer{whose}", int(dims)) + "; answered through LiteRT"


def encoder_for(name, registry=None):
    """The encoder of registry model ``name`` and a description of its vectors.

    Autoencoder-based models (with ``autoencoder.keras``) use the latent layer; an ensemble its
    first member's encoder (which takes the same input); other models use
    the classifier's penultimate layer (``zoo.EMBEDDING_LAYER`` if present, else the layer
    before the output).

    Returns
    -------
    (encoder, description) : (keras.Model, str)
        ``encoder`` maps float32 (N, H, W, C) to (N, D); ``description`` e.g.
        "autoencoder latent (256-d)" or "penultimate layer 'embedding' (192-d)".
    """
    registry = _registry(registry)
    entry = registry.get(name)
    if entry.is_ensemble:  # its lead member sees the same input: its space is the ensemble's
        encoder, description = encoder_for(entry.members[0], registry=registry)
        return encoder, f"{description}, of its first member {entry.members[0]}"
    if entry.has_autoencoder:
        autoencoder = registry.load_autoencoder(name)
        try:
            latent = autoencoder.get_layer(zoo.LATENT_LAYER)
        except ValueError:
            raise ModelFileError(f"{name}: its autoencoder has no layer named {zoo.LATENT_LAYER!r}.") from None
        encoder = _flattened_model(autoencoder.inputs[0], latent.output, f"{name}_latent")
        return encoder, _describe("autoencoder latent", int(encoder.output.shape[-1]))

    classifier = registry.load_served(name)
    layer = _embedding_layer(classifier, name)
    encoder = classifier_encoder(classifier, name)
    return encoder, _describe(f"penultimate layer {layer.name!r}", int(encoder.output.shape[-1]))


def encoder_options(registry=None):
    """``[(name, description)]`` of the registry models whose encoder can be built."""
    from .errors import FashionError

    registry = _registry(registry)
    options = []
    for entry in registry.list():
        try:
            _, description = encoder_for(entry.name, registry)
        except FashionError:
            continue  # a foreign or broken model simply is not offered
        options.append((entry.name, description))
    return options


def embed(encoder, images, batch_size=None):
    """Vectors of ``images`` (N, H, W, C), uint8 or float in [0, 1] → float32 (N, D), in batches
    (``predict.predict_batches``); ``encoder`` a Keras model or a callable (``Classifier.embed``)."""
    batch_size = PREDICT_BATCH if batch_size is None else batch_size
    images = np.asarray(images)
    if images.ndim != 4:
        raise InvalidParameterError(f"images must be (N, H, W, C); got shape {images.shape}.")
    if batch_size < 1:
        raise InvalidParameterError(f"batch size must be at least 1; got {batch_size}.")
    output = getattr(encoder, "output", None)  # a Keras encoder; a plain callable (Classifier.embed) has none
    width = int(np.prod(output.shape[1:])) if output is not None else 0
    out = predict_batches(encoder, images, batch_size, empty_shape=(width,))
    return out.reshape(len(images), -1).astype(np.float32, copy=False)


def gallery(dataset):
    """The search gallery: training then test images of ``dataset``.

    Returns
    -------
    images : ndarray (N, H, W, C) uint8
    labels : ndarray (N,) int64
    sources : ndarray (N,) of "train" / "test"
    """
    images = np.concatenate([dataset.x_train, dataset.x_test], axis=0)
    return (images, *gallery_labels(dataset))


def gallery_labels(dataset):
    """``(labels, sources)`` of ``gallery(dataset)`` without copying its images: (N,) int64 and
    (N,) "train"/"test"."""
    labels = np.concatenate([dataset.y_train, dataset.y_test]).astype(np.int64)
    sources = np.array(["train"] * len(dataset.y_train) + ["test"] * len(dataset.y_test))
    return labels, sources


EMBED_CHUNK = 256  # gallery images at a time: a photo model's 70,000 at 128 px colour are 3.4 GB


def embed_rows(encoder, dataset, rows, chunk=EMBED_CHUNK):
    """Vectors (len(rows), D) float32 of gallery rows ``rows`` (``gallery`` order) of ``dataset``,
    ``chunk`` images at a time: the gallery is never stacked whole at the model's input size (a
    photo model's images are rendered as they are read, ``data.RenderedImages``)."""
    rows = np.asarray(rows, dtype=np.int64).reshape(-1)
    if chunk < 1:
        raise InvalidParameterError(f"chunk must be at least 1; got {chunk}.")
    parts = [embed(encoder, np.stack([gallery_image(dataset, int(r)) for r in rows[i:i + chunk]]))
             for i in range(0, len(rows), chunk)]
    return np.concatenate(parts) if parts else embed(encoder, np.zeros((0, *dataset.image_shape), np.uint8))


def gallery_image(dataset, row):
    """Image (H, W, C) of gallery row ``row`` (``gallery`` order: training, then test images)."""
    n_train = len(dataset.y_train)
    return dataset.x_train[row] if row < n_train else dataset.x_test[row - n_train]


def gallery_label(dataset, row):
    """Class index of gallery row ``row``."""
    n_train = len(dataset.y_train)
    return int(dataset.y_train[row] if row < n_train else dataset.y_test[row - n_train])


def sample_position_of_test_image(dataset, sample_rows, test_index):
    """Position in ``sample_rows`` (sorted gallery rows of a sample) of test image
    ``test_index``, or -1 when the sample does not hold it."""
    row = len(dataset.y_train) + int(test_index)
    position = int(np.searchsorted(sample_rows, row))
    return position if position < len(sample_rows) and sample_rows[position] == row else -1


def project_2d(embeddings, method="pca", sample=None, seed=0):
    """A 2-D map of ``embeddings`` (N, D).

    Parameters
    ----------
    method : "pca" or "tsne"
        t-SNE only runs on at most ``MAX_TSNE_ROWS`` rows: pass ``sample``.
    sample : int, optional
        Project a seeded random sample of this many rows (all rows when None or ≥ N).

    Returns
    -------
    coords : ndarray (n, 2) float32
    row_indices : ndarray (n,) int64, the rows of ``embeddings`` that were projected (sorted)
    """
    x = np.asarray(embeddings, dtype=np.float32)
    if x.ndim != 2:
        raise InvalidParameterError(f"embeddings must be (N, D); got shape {x.shape}.")
    if method not in ("pca", "tsne"):
        raise InvalidParameterError(f"unknown projection {method!r}; choose 'pca' or 'tsne'.")
    rows = np.arange(len(x))
    if sample is not None:
        if isinstance(sample, bool) or not isinstance(sample, (int, np.integer)) or sample < 1:
            raise InvalidParameterError(f"sample must be a positive whole number; got {sample!r}.")
        rows = sample_indices(len(x), int(sample), seed)
    if method == "tsne" and len(rows) > MAX_TSNE_ROWS:
        raise InvalidParameterError(
            f"t-SNE runs on at most {MAX_TSNE_ROWS} points; got {len(rows)}. Pass a smaller sample."
        )
    if len(rows) < 3:
        raise InvalidParameterError(f"a 2-D map needs at least 3 points; got {len(rows)}.")
    data = x[rows]
    if method == "pca":
        from sklearn.decomposition import PCA

        n_components = min(2, data.shape[1])
        coords = PCA(n_components=n_components, random_state=seed).fit_transform(data)
    else:
        from sklearn.manifold import TSNE

        perplexity = float(min(30.0, (len(rows) - 1) / 3))
        coords = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(data)
    if coords.shape[1] < 2:  # 1-d embeddings: put every point on a line
        coords = np.hstack([coords, np.zeros((len(coords), 2 - coords.shape[1]))])
    return coords.astype(np.float32), rows.astype(np.int64)


def reconstruct(autoencoder, images):
    """Reconstructions of ``images`` (N, H, W, C) as uint8 (N, H, W, C) by ``autoencoder``, or
    None without one (plain classifiers have none: ``Registry.load_autoencoder``)."""
    if autoencoder is None:
        return None
    x = to_model_input(images)
    if x.ndim != 4:
        raise InvalidParameterError(f"images must be (N, H, W, C); got shape {x.shape}.")
    out = predict_batches(autoencoder, x, empty_shape=x.shape[1:])
    return np.clip(np.rint(out * 255.0), 0, 255).astype(np.uint8)


def sample_reconstructions(autoencoder, images, n=8):
    """(originals, reconstructions) uint8 of ``n`` evenly spaced ``images``, or None without an
    autoencoder (the Train page's "Reconstructions" strip)."""
    if autoencoder is None:
        return None
    images = np.asarray(images)
    originals = images[np.linspace(0, len(images) - 1, n).astype(int)]
    return originals, reconstruct(autoencoder, originals)


def place_on_map(coords, embeddings, vector, k=5):
    """Where a new image goes on a 2-D map it was not projected with ("you are here").

    Parameters
    ----------
    coords : ndarray of shape (n, 2), the map (``project_2d``'s coordinates)
    embeddings : ndarray of shape (n, d), the vectors of those same n points
    vector : ndarray of shape (d,) or (1, d), the new image's embedding
    k : int, neighbours to place it among

    Returns
    -------
    xy : ndarray (2,), the inverse-distance-weighted mean of its ``k`` nearest points' positions
    (works for PCA and t-SNE alike); neighbours : ndarray (k,) their rows in ``coords``, nearest
    first.
    """
    coords = np.asarray(coords, dtype=np.float64)
    x = np.asarray(embeddings, dtype=np.float64)
    v = np.asarray(vector, dtype=np.float64).reshape(-1)
    if len(coords) != len(x) or len(x) == 0:
        raise InvalidParameterError(f"need as many map points as embeddings (got {len(coords)} and {len(x)}).")
    if x.shape[1] != len(v):
        raise InvalidParameterError(f"the vector has {len(v)} dimensions, the embeddings {x.shape[1]}.")
    k = max(1, min(int(k), len(x)))
    distances = np.sqrt(((x - v) ** 2).sum(axis=1))
    nearest = np.argsort(distances, kind="stable")[:k]
    weights = 1.0 / (distances[nearest] + 1e-9)
    return (coords[nearest] * weights[:, None]).sum(axis=0) / weights.sum(), nearest
