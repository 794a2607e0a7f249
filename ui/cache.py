"""Cached loaders shared by every page, so switching pages never reloads a model or a dataset.

Keys: models are cached by ``(registry root, name, model-file mtime)`` (``model_key``) so a model
re-trained or re-imported under the same name is loaded afresh, and a test pointing
``FASHION_MODELS_DIR`` elsewhere never sees another registry's model. TensorFlow is imported
only inside these functions (the home page must appear fast).

Arrays (datasets, gallery embeddings, test-set probabilities, 2-D maps) and models are
``st.cache_resource``: shared, never copied or pickled on a rerun, and returned read-only; keyed
by what they are computed from (model key, dataset recipe, sample), never by array content.
What a model's artefacts (``fashion_core.precompute``) hold is read from them when they are fresh
and computed in memory otherwise: nothing here writes. The engine keeps no caches of its own.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import streamlit as st

from fashion_core.data import FASHION_MNIST_SPEC, sample_indices
from fashion_core.registry import Registry, model_dataset_spec


# --- registry ------------------------------------------------------------------------------------


def registry():
    """The registry of ``$FASHION_MODELS_DIR`` (or ``models/``); cheap, read on every call."""
    return Registry()


def corrections():
    """The corrections catalogue beside the registry (``fashion_core.corrections``); cheap."""
    from fashion_core.corrections import CorrectionsStore

    return CorrectionsStore(registry=registry())


def model_entries():
    """``(entries, problems)`` of the registry, newest listing every time (a scan is cheap)."""
    return registry().scan()


def model_key(name):
    """Cache key of a model: (registry root, name, latest modification time of the files it is
    loaded from: its model file, or an ensemble's members')."""
    entry = registry().get(name)
    return str(registry().root), name, max(path.stat().st_mtime_ns for path in entry.content_files)


def entry_label(entry):
    """"name · dataset · 91.2%" for model selectors."""
    meta = entry.metadata
    accuracy = meta.get("test_accuracy")
    parts = [entry.name, meta.get("dataset_name") or "unknown dataset"]
    if accuracy is not None:
        parts.append(f"{accuracy:.1%}")
    return " · ".join(parts)


# --- datasets ------------------------------------------------------------------------------------


def spec_key(spec):
    return json.dumps(spec or FASHION_MNIST_SPEC, sort_keys=True)


def source_stamp(spec):
    """The modification time of a catalogue given as a CSV file (None otherwise): part of the
    dataset's cache key, so a CSV rewritten in place (the corrections catalogue) is read afresh."""
    spec = spec or {}
    path = Path(str(spec.get("path", ""))) if spec.get("kind") == "folder" else None
    try:
        return path.stat().st_mtime_ns if path is not None and path.is_file() else None
    except OSError:
        return None


# A Dataset is read-only and up to hundreds of MB: shared as a resource instead of being
# copied on every rerun as st.cache_data would.
@st.cache_resource(show_spinner="Loading the dataset…", max_entries=4)
def _dataset_resource(key, stamp):
    from fashion_core.loaders import load_dataset

    return load_dataset(json.loads(key))


def _dataset(key):
    return _dataset_resource(key, source_stamp(json.loads(key)))


def dataset(spec=None):
    """The ``Dataset`` of a JSON recipe (default Fashion-MNIST). Raises ``DataError``."""
    return _dataset(spec_key(spec))


def model_dataset(metadata):
    """The dataset a model was trained on, as its metadata describes it; its stored evaluation
    covers this dataset's whole test set."""
    return dataset(model_dataset_spec(metadata))


# --- models --------------------------------------------------------------------------------------


def _load_inference_classifier(registry, name):
    from fashion_core.inference import Classifier

    return Classifier.from_registry(name, registry=registry)


def _load_encoder(registry, name):
    """A photo model's embedding comes from the LiteRT file that answers its photos (the cached
    inference classifier: no TensorFlow, no second copy of the weights); others' from Keras."""
    from fashion_core import latent

    served = inference_classifier(name)
    if served.embeds:
        return served.embed, latent.served_description(registry.get(name), served.embedding_dims)
    return latent.encoder_for(name, registry=registry)


# What can be loaded for a registry model: (registry, name) → the loaded object.
MODEL_LOADERS = {
    "classifier": lambda registry, name: registry.load_served(name),
    "autoencoder": lambda registry, name: registry.load_autoencoder(name),
    "inference": _load_inference_classifier,
    "encoder": _load_encoder,
}


@st.cache_resource(show_spinner="Loading the model…", max_entries=24)
def _model_resource(key, kind):
    root, name, _mtime = key
    return MODEL_LOADERS[kind](Registry(root), name)


def classifier(name):
    """The Keras classifier of a registry model (cached)."""
    return _model_resource(model_key(name), "classifier")


def autoencoder(name):
    """The autoencoder of an autoencoder-based model, or None (cached)."""
    return _model_resource(model_key(name), "autoencoder")


def inference_classifier(name):
    """A ``fashion_core.inference.Classifier`` for a registry model (cached)."""
    return _model_resource(model_key(name), "inference")


def encoder(name):
    """``(encoder, description)`` of a model with an encoder (cached)."""
    return _model_resource(model_key(name), "encoder")


def _read_only(*arrays):
    for array in arrays:
        if isinstance(array, np.ndarray) and array.flags.writeable:
            array.flags.writeable = False
    return arrays if len(arrays) > 1 else arrays[0]


def _entry(key):
    root, name, _mtime = key
    return Registry(root).get(name)


# Stored artefacts (``fashion_core.precompute``) of a model, read once per model file: None when
# missing or stale, and the pages then compute in memory (never writing).
@st.cache_resource(max_entries=24)
def _artefacts(key, with_embeddings):
    from fashion_core import precompute

    return precompute.load(_entry(key), with_embeddings=with_embeddings)


# Shared and read-only (st.cache_resource): a 10,000 x 10 array is never pickled into a rerun.
@st.cache_resource(show_spinner="Predicting the test set…", max_entries=8)
def _test_probabilities(key, spec_json, tta=False):
    stored = _artefacts(key, False)
    if stored is not None and spec_json == spec_key(model_dataset_spec(_entry(key).metadata)):
        return stored["tta_probabilities" if tta else "probabilities"]
    from fashion_core.predict import flip_tta_probabilities, predict_probabilities

    predict = flip_tta_probabilities if tta else predict_probabilities
    return _read_only(predict(_model_resource(key, "classifier"), _dataset(spec_json).x_test).astype(np.float16))


def test_probabilities(name, metadata, tta=False):
    """Probabilities (n_test, n_classes) float16, read-only, of a model on its dataset's test
    set (flip-TTA ones with ``tta``): stored with the model when fresh, else computed (cached)."""
    return _test_probabilities(model_key(name), spec_key(model_dataset_spec(metadata)), tta)


# --- latent space --------------------------------------------------------------------------------


# Up to ~54 MB for a 70,000-image gallery: a shared resource, not pickled into every rerun. The
# default gallery (``precompute.MAP_GALLERY`` rows, seed 0) is read from the stored artefacts
# (float16, memory-mapped); other sizes, or a model without fresh artefacts, are computed here.
@st.cache_resource(show_spinner="Embedding the gallery (once per model)…", max_entries=4)
def _gallery_embeddings(key, spec_json, size, seed):
    from fashion_core import latent, precompute

    data = _dataset(spec_json)
    labels, sources = latent.gallery_labels(data)
    stored = _artefacts(key, True) if (size, seed) == (precompute.MAP_GALLERY, precompute.GALLERY_SEED) else None
    if stored is not None and len(labels) > stored["rows"].max(initial=-1):
        rows = stored["rows"]
        return _read_only(stored["embeddings"], labels[rows], sources[rows], rows)
    rows = sample_indices(len(labels), size, seed)
    encoder_model, _ = _model_resource(key, "encoder")
    embeddings = latent.embed_rows(encoder_model, data, rows)
    return _read_only(embeddings, labels[rows], sources[rows], rows)


def gallery_embeddings(name, metadata, size=None, seed=0):
    """Embeddings of the gallery (training + test images of the model's own dataset), cached.

    Returns
    -------
    embeddings : ndarray of shape (n_gallery, n_dims), labels (n_gallery,), sources
    (n_gallery,) ("train"/"test"), rows (n_gallery,) indices into ``latent.gallery(dataset)``.
    """
    return _gallery_embeddings(model_key(name), spec_key(model_dataset_spec(metadata)), size, seed)


@st.cache_resource(show_spinner="Projecting to 2-D…", max_entries=8)
def _projection(key, spec_json, size, seed, method, sample):
    from fashion_core import latent, precompute

    stored = _artefacts(key, False)
    default = (size, seed, method) == (precompute.MAP_GALLERY, precompute.GALLERY_SEED, "pca")
    if stored is not None and default and sample == len(stored["map_points"]):
        return stored["map_coords"], stored["map_points"]
    embeddings = _gallery_embeddings(key, spec_json, size, seed)[0]
    return _read_only(*latent.project_2d(embeddings, method=method, sample=sample, seed=0))


def projection(name, metadata, size, method, sample, seed=0):
    """2-D coordinates of a model's gallery embeddings (cached by model, dataset and sample):
    ``(coords, row_indices)``, rows into ``gallery_embeddings``."""
    return _projection(model_key(name), spec_key(model_dataset_spec(metadata)), size, seed, method, sample)


@st.cache_resource(max_entries=4)
def _neighbour_index(key, spec_json, size, seed):
    from fashion_core.neighbours import NeighbourIndex

    embeddings, labels, _sources, _rows = _gallery_embeddings(key, spec_json, size, seed)
    return NeighbourIndex(embeddings, labels)


def neighbour_index(name, metadata, size=None, seed=0):
    """A ``neighbours.NeighbourIndex`` over the gallery embeddings (cached)."""
    return _neighbour_index(model_key(name), spec_key(model_dataset_spec(metadata)), size, seed)


# --- saliency ------------------------------------------------------------------------------------


@st.cache_data(show_spinner="Working out which pixels mattered…", max_entries=16)
def _test_saliency_overlays(key, spec_json, indices, classes, method, scale):
    from fashion_core.saliency import overlay, saliency_maps

    images = _dataset(spec_json).x_test[list(indices)]
    maps = saliency_maps(_model_resource(key, "classifier"), images, list(classes), method=method)
    return [overlay(image, heat, scale=scale) for image, heat in zip(images, maps)]


def test_saliency_overlays(name, metadata, indices, classes, method=None, scale=3):
    """Test images ``indices`` of a model's dataset with the saliency of ``classes`` blended over
    them (uint8 RGB, ``scale`` times larger), cached by model, recipe and the image indices."""
    from fashion_core.saliency import DEFAULT_METHOD

    return _test_saliency_overlays(model_key(name), spec_key(model_dataset_spec(metadata)),
                                   tuple(int(i) for i in indices), tuple(int(c) for c in classes),
                                   method or DEFAULT_METHOD, int(scale))


# --- corrections ---------------------------------------------------------------------------------


@st.cache_data(max_entries=512)
def _thumbnail(path, mtime_ns, side):
    from PIL import Image, ImageOps

    from fashion_core.batch import read_bytes

    with Image.open(io.BytesIO(read_bytes(path))) as image:
        image = ImageOps.exif_transpose(image).convert("RGB")
        image.thumbnail((side, side))
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
    return buffer.getvalue()


def photo_thumbnail(path, side=160):
    """PNG bytes of a photo file (local, or an fsspec URL), at most ``side`` pixels (cached by
    file and, for a local one, its mtime); None when the file cannot be read."""
    from fashion_core.errors import FashionError

    path = str(path)
    try:
        return _thumbnail(path, 0 if "://" in path else Path(path).stat().st_mtime_ns, side)
    except (OSError, ValueError, FashionError):
        return None


def correction_thumbnail(store, correction, side=160):
    """PNG bytes of a stored correction's photo (``photo_thumbnail``)."""
    return photo_thumbnail(store.root / correction.path, side)


# --- saved catalogue indexes (batch --embed) -----------------------------------------------------


@st.cache_resource(show_spinner="Loading the catalogue index…", max_entries=4)
def _catalogue_index(path, mtime_ns):
    from fashion_core.batch import CatalogueIndex

    return CatalogueIndex(path)


def catalogue_index(path):
    """A ``batch.CatalogueIndex`` (cached by file and mtime; faiss searches are read-only)."""
    from fashion_core.errors import DataError

    try:
        mtime = Path(path).stat().st_mtime_ns
    except OSError:
        raise DataError(f"the catalogue index {path} is gone; run batch --embed again.") from None
    return _catalogue_index(str(path), mtime)
