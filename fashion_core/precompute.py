"""What every dashboard visit needs from a model, computed once: test-set probabilities (and
flip-TTA ones when the model is served that way), the gallery embeddings of the Latent space
page's default gallery and its 2-D map.

Built from the model's own dataset recipe (``ModelEntry.dataset_spec``), so any model — a
Fashion-MNIST classifier, a 48x48 colour photo model, a catalogue model — gets the same
artefacts. Where they live:

- ``models/<name>/precomputed.npz`` (small, float16): probabilities, flip-TTA probabilities, the
  default 2-D map (``MAP_GALLERY`` gallery rows, PCA of ``MAP_SAMPLE`` of them) and a stamp.
- the default gallery's embeddings (``MAP_GALLERY`` x D float16, up to ~8 MB per model): beside
  a photo model as ``embeddings-STAMP.npy`` (``ships_embeddings``: the Latent space page opens
  with the photo model, and a fresh deploy has an empty cache; embedding its 10,000 gallery
  photos there took 31 s on the first visit), and in the on-disk cache (``diskcache``,
  ``$FASHION_CACHE_DIR``) for the others, named by the same stamp: too big to ship with every
  model, rebuilt by ``python -m fashion_core precompute``.

The stamp is a hash of the model files' *contents*, the dataset recipe and ``VERSION`` (never
modification times: a fresh clone has new ones). An artefact whose stamp differs is stale and
never trusted; ``load`` returns None and callers compute in memory. Written on save
(``runs.train_and_save``, ``runs.evaluate_and_store``) and by the ``precompute`` command; the
dashboard only reads.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from .data import sample_indices

ARTEFACT_FILE = "precomputed.npz"
VERSION = 1  # bump when what is stored (or how it is computed) changes: old files become stale
MAP_GALLERY = 10000  # the Latent space page's default gallery sample (seed 0)
MAP_SAMPLE = 6000  # points drawn on its PCA map
GALLERY_SEED = 0


def _file_digest(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def stamp(entry):
    """What the artefacts of ``entry`` were computed from: a hex digest of its model file(s)'
    contents (an ensemble: its members' files and weights), its dataset recipe and ``VERSION``."""
    parts = [_file_digest(path) for path in entry.content_files]
    if entry.is_ensemble:  # the members' files and how they are weighed
        parts.append(json.dumps(entry.metadata.get("ensemble"), sort_keys=True))
    parts += [json.dumps(entry.dataset_spec, sort_keys=True), str(VERSION)]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:24]


def gallery_rows(n_gallery, size=MAP_GALLERY, seed=GALLERY_SEED):
    """Rows of the gallery sample (sorted) used for embeddings of a gallery of ``n_gallery``."""
    return sample_indices(n_gallery, size, seed)


EMBEDDINGS_PREFIX = "embeddings-"


def ships_embeddings(entry):
    """Whether ``entry``'s default gallery embeddings are stored beside it (photo models: the
    Latent space page's default) rather than only in the on-disk cache."""
    return bool(entry.is_photo_model)


def shipped_embeddings_path(entry, entry_stamp):
    return Path(entry.path) / f"{EMBEDDINGS_PREFIX}{entry_stamp}.npy"


def embeddings_cache_key(name, entry_stamp, size=MAP_GALLERY, seed=GALLERY_SEED):
    return f"gallery-{name}-{entry_stamp}-{size}-{seed}"


def compute(entry, classifier, encoder, dataset, predictions=None):
    """The artefacts of ``entry`` as a dict of arrays (nothing written).

    Returns
    -------
    dict with ``probabilities`` (n_test, K) float16, ``tta_probabilities`` (n_test, K) float16
    or shape (0, K) without flip-TTA, ``embeddings`` (n_rows, D) float16 and ``rows``
    (n_rows,) of the default gallery sample, ``map_coords`` (n_map, 2) float16 and
    ``map_points`` (n_map,) positions in ``rows``, ``stamp`` (0-d str). ``predictions``:
    ``predict.test_set_predictions`` of this model on the test set, when the caller has them.
    """
    from . import latent
    from .predict import test_set_predictions

    probabilities, tta = predictions or test_set_predictions(classifier, dataset.x_test, entry.uses_flip_tta)
    if tta is None:
        tta = np.zeros((0, probabilities.shape[1]), np.float32)
    labels, _sources = latent.gallery_labels(dataset)
    rows = gallery_rows(len(labels))
    embeddings = latent.embed_rows(encoder, dataset, rows)
    sample = min(len(rows), MAP_SAMPLE)
    coords, points = latent.project_2d(embeddings, method="pca", sample=sample, seed=0)
    return {"probabilities": probabilities.astype(np.float16), "tta_probabilities": tta.astype(np.float16),
            "embeddings": embeddings.astype(np.float16), "rows": rows.astype(np.int64),
            "map_coords": coords.astype(np.float16), "map_points": points.astype(np.int64),
            "stamp": np.array(stamp(entry))}


def write(entry, artefacts):
    """Store ``artefacts`` (``compute``'s dict) atomically: the small arrays beside the model,
    the embeddings beside a photo model (``ships_embeddings``; older ones removed) or in the
    on-disk cache. Returns the path of ``precomputed.npz``."""
    from . import diskcache
    from .registry import write_file_atomic

    small = {k: v for k, v in artefacts.items() if k != "embeddings"}
    path = entry.path / ARTEFACT_FILE
    write_file_atomic(path, lambda handle: np.savez_compressed(handle, **small))
    entry_stamp = str(artefacts["stamp"])
    embeddings = np.asarray(artefacts["embeddings"], dtype=np.float16)
    if ships_embeddings(entry):
        target = shipped_embeddings_path(entry, entry_stamp)
        write_file_atomic(target, lambda handle: np.save(handle, embeddings, allow_pickle=False))
        for old in Path(entry.path).glob(f"{EMBEDDINGS_PREFIX}*.npy"):
            if old != target:
                old.unlink(missing_ok=True)
    else:
        diskcache.cached_array(embeddings_cache_key(entry.name, entry_stamp), lambda: embeddings)
    return path


def build(entry, classifier, encoder, dataset, predictions=None):
    """Compute and write the artefacts of ``entry`` (``runs.precompute_and_store`` loads what
    it needs). Returns ``(path, sizes)`` with the stored bytes of each part."""
    from . import diskcache

    artefacts = compute(entry, classifier, encoder, dataset, predictions)
    path = write(entry, artefacts)
    entry_stamp = str(artefacts["stamp"])
    stored = (shipped_embeddings_path(entry, entry_stamp) if ships_embeddings(entry)
              else diskcache.cache_path(embeddings_cache_key(entry.name, entry_stamp), ".npy"))
    return path, {"precomputed_bytes": path.stat().st_size,
                  "embeddings_bytes": stored.stat().st_size if stored.exists() else 0,
                  "embeddings_beside_model": ships_embeddings(entry)}


def load(entry, with_embeddings=False):
    """The stored artefacts of ``entry`` as read-only arrays, or None when missing, damaged or
    stale (computed from other model files, another dataset recipe or an older ``VERSION``).

    With ``with_embeddings`` the gallery embeddings are added (memory-mapped from beside the model
    or from the on-disk cache) and None is returned when they are missing too. Nothing is written.
    """
    from . import diskcache

    path = Path(entry.path) / ARTEFACT_FILE
    arrays = diskcache.read_npz(path)
    if arrays is None or "stamp" not in arrays or str(arrays["stamp"]) != stamp(entry):
        return None
    if with_embeddings:
        entry_stamp = str(arrays["stamp"])
        places = (shipped_embeddings_path(entry, entry_stamp),
                  diskcache.cache_path(embeddings_cache_key(entry.name, entry_stamp), ".npy"))
        for place in places:
            try:
                embeddings = np.load(place, mmap_mode="r", allow_pickle=False)
            except (OSError, ValueError, EOFError):
                continue
            if embeddings.ndim == 2 and len(embeddings) == len(arrays["rows"]):
                arrays["embeddings"] = embeddings
                break
        else:
            return None
    for array in arrays.values():
        if isinstance(array, np.ndarray) and array.flags.writeable:
            array.flags.writeable = False
    return arrays
