"""Nearest-neighbour search over a gallery of vectors with faiss (no TensorFlow): the search
index of the Latent space page, of catalogue search and of ``bench``.

Euclidean distances throughout. Two faiss indexes, chosen by measurement (docs/SCALE.md):

- **exact** (``IndexFlatL2``) for every batch of queries (precision@k) and for single queries on
  galleries whose rows x dims are at most ``EXACT_MAX_WORK`` (one query then costs ≤ ~0.6 ms on
  this project's 2-core target: 10,000 x 256 or 20,000 x 192);
- **HNSW** (``IndexHNSWFlat``, ``HNSW_M`` links per node) for single queries on bigger
  galleries: on the 70,000 Fashion-MNIST images with fashion_net's 192-d embedding a top-10 query
  takes 0.14 ms instead of 1.95 ms exact, recall@10 1.000 against brute force (``bench`` measures
  it on every run; ``query(..., exact=True)`` forces the exact index). Its graph also holds the
  vectors, and the exact search reads that same storage: one copy of the gallery.

Embeddings wider than ``MAX_INDEX_DIMS`` are reduced to that many principal components (the
encoder's description says so). Both indexes are read-only after construction and faiss searches
them from several threads at once, so one index serves every dashboard session.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np

from .data import sample_indices
from .errors import InvalidParameterError

MAX_INDEX_DIMS = 256  # float32 x 256 x 70,000 images ≈ 72 MB: fits a 1 GB app
PCA_FIT_ROWS = 20000  # rows sampled to fit the reduction (the axes barely change beyond that)
EXACT_MAX_WORK = 4_000_000  # rows x dims up to which a single query is searched exactly (≤ ~0.6 ms)
HNSW_M = 32  # links per node: recall@10 1.000 on the 70k gallery (M=16: 0.999), 20 MB of links
HNSW_EF_CONSTRUCTION = 80
HNSW_EF_SEARCH = 128  # candidates kept while searching (≥ k + 1 is enforced per query)
APPROXIMATE_MAX_QUERIES = 4  # batches of more queries are always searched exactly


def _faiss():
    import faiss

    return faiss


class NeighbourIndex:
    """Euclidean k-nearest-neighbour search over a gallery of embeddings.

    Parameters
    ----------
    embeddings : array (N, D)
        Gallery vectors, stored by faiss as float32 (more than ``MAX_INDEX_DIMS`` dimensions are
        reduced by PCA). The caller may drop its own copy afterwards.
    labels : array (N,)
        Class index of every gallery row.
    approximate : bool, optional
        Force (True) or forbid (False) the HNSW index for single queries; by default it is used
        when rows x dims exceed ``EXACT_MAX_WORK``.
    """

    def __init__(self, embeddings, labels, approximate=None, seed=0):
        faiss = _faiss()
        x = np.asarray(embeddings, dtype=np.float32)
        if x.ndim != 2 or len(x) == 0:
            raise InvalidParameterError(f"embeddings must be a non-empty (N, D) array; got shape {x.shape}.")
        if not np.all(np.isfinite(x)):
            raise InvalidParameterError("embeddings contain NaN or infinite values.")
        self.labels = np.array(labels)  # an own copy, made read-only below (shared by sessions)
        if len(self.labels) != len(x):
            raise InvalidParameterError(f"{len(x)} embeddings but {len(self.labels)} labels.")
        self.input_dims = x.shape[1]
        # Whether the calling thread's last query was exact: kept per thread, so an index shared
        # by several dashboard sessions is never written by a query.
        self._per_thread = threading.local()
        self._mean, self._axes = self._fit_reduction(x, seed)
        x = np.ascontiguousarray(self.transform(x) if self._axes is not None else x)
        self.dims = x.shape[1]
        if approximate is None:
            approximate = len(x) * self.dims > EXACT_MAX_WORK
        if approximate:
            self._hnsw = faiss.IndexHNSWFlat(self.dims, HNSW_M)
            self._hnsw.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
            self._hnsw.add(x)
            self._exact = faiss.downcast_index(self._hnsw.storage)  # the same vectors, searched exhaustively
        else:
            self._hnsw = None
            self._exact = faiss.IndexFlatL2(self.dims)
            self._exact.add(x)
        for array in (self.labels, *(a for a in (self._mean, self._axes) if a is not None)):
            array.flags.writeable = False

    def save(self, path, **extra):
        """Write the index to one ``.npz`` file, atomically (``registry.write_file_atomic``):
        faiss' own serialisation, the labels, the PCA reduction if any, and ``extra`` arrays
        (e.g. ``paths``). ``load`` reads it back without rebuilding anything."""
        path = Path(path)
        arrays = {"faiss": _faiss().serialize_index(self._hnsw if self._hnsw is not None else self._exact),
                  "labels": self.labels,
                  "meta": np.frombuffer(json.dumps({"input_dims": self.input_dims, "kind": self.kind}).encode(), np.uint8)}
        if self._axes is not None:
            arrays.update(mean=self._mean, axes=self._axes)
        arrays.update({f"extra_{k}": np.asarray(v) for k, v in extra.items()})
        from .registry import write_file_atomic

        return write_file_atomic(path, lambda handle: np.savez(handle, **arrays))

    @classmethod
    def load(cls, path):
        """``(index, extra)`` from a file ``save`` wrote; ``extra`` holds its extra arrays."""
        faiss = _faiss()
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {name: data[name] for name in data.files}
            meta = json.loads(arrays["meta"].tobytes().decode())
            stored = faiss.deserialize_index(arrays["faiss"])
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            raise InvalidParameterError(f"{path}: not a saved neighbour index ({exc}).") from None
        index = cls.__new__(cls)
        index.labels, index.input_dims = arrays["labels"], int(meta["input_dims"])
        index._per_thread = threading.local()
        index._mean, index._axes = arrays.get("mean"), arrays.get("axes")
        index._stored = stored  # owns the C++ index; the downcast views below do not
        if meta["kind"] == "hnsw":
            index._hnsw = faiss.downcast_index(stored)
            index._exact = faiss.downcast_index(index._hnsw.storage)
        else:
            index._hnsw, index._exact = None, faiss.downcast_index(stored)
        index.dims = int(index._exact.d)
        for array in (index.labels, *(a for a in (index._mean, index._axes) if a is not None)):
            array.flags.writeable = False
        return index, {k[len("extra_"):]: v for k, v in arrays.items() if k.startswith("extra_")}

    @property
    def kind(self):
        """"hnsw" when single queries use the approximate index, else "exact"."""
        return "exact" if self._hnsw is None else "hnsw"

    @property
    def vectors(self):
        """The stored (N, dims) float32 gallery: a read-only view of faiss' own copy."""
        view = _faiss().rev_swig_ptr(self._exact.get_xb(), len(self) * self.dims).reshape(len(self), self.dims)
        view.flags.writeable = False
        return view

    @property
    def last_query_exact(self):
        """Whether this thread's last query was searched exactly (False after an HNSW search)."""
        return getattr(self._per_thread, "exact", True)

    def __len__(self):
        return int(self._exact.ntotal)

    @staticmethod
    def _fit_reduction(x, seed):
        """Mean and principal axes (d, D) when D > ``MAX_INDEX_DIMS``, else (None, None)."""
        n, dims = x.shape
        if dims <= MAX_INDEX_DIMS:
            return None, None
        if n < MAX_INDEX_DIMS:
            raise InvalidParameterError(
                f"a gallery of {n} vectors is too small to reduce {dims}-d embeddings to {MAX_INDEX_DIMS}-d."
            )
        from sklearn.decomposition import PCA

        rows = x if n <= PCA_FIT_ROWS else x[sample_indices(n, PCA_FIT_ROWS, seed)]
        pca = PCA(n_components=MAX_INDEX_DIMS, svd_solver="full").fit(rows)
        return pca.mean_.astype(np.float32), pca.components_.astype(np.float32)

    def transform(self, vectors):
        """Map raw encoder vectors (Q, D) into the index's stored space (Q, d)."""
        v = np.asarray(vectors, dtype=np.float32)
        if v.ndim == 1:
            v = v[None, :]
        if v.ndim != 2 or v.shape[1] != self.input_dims:
            raise InvalidParameterError(f"query vectors must be (Q, {self.input_dims}); got shape {v.shape}.")
        if not np.all(np.isfinite(v)):
            raise InvalidParameterError("query vectors contain NaN or infinite values.")
        if self._axes is None:
            return v
        return (v - self._mean) @ self._axes.T

    def query(self, vectors, k=5, exclude=None, exact=False):
        """The ``k`` nearest gallery rows of each query vector.

        Parameters
        ----------
        vectors : array (Q, D) or (D,)
            Raw encoder vectors (as returned by ``embed``).
        k : int
            Neighbours per query.
        exclude : array (Q,) of int, optional
            Gallery row to skip for each query (the query itself); a negative value skips none.
        exact : bool
            Force the exact index. By default up to ``APPROXIMATE_MAX_QUERIES`` queries on a big
            gallery take the HNSW index, which can in rare cases miss a true neighbour; bigger
            batches are always exact.

        Returns
        -------
        distances : ndarray (Q, k) float32, ascending
        indices : ndarray (Q, k) int64 gallery rows
        """
        q = np.ascontiguousarray(self.transform(vectors), dtype=np.float32)
        n_queries = len(q)
        excl = np.full(n_queries, -1, np.int64) if exclude is None else np.asarray(exclude, dtype=np.int64).reshape(-1)
        if len(excl) != n_queries:
            raise InvalidParameterError(f"exclude needs one gallery index per query ({n_queries}); got {len(excl)}.")
        if np.any(excl >= len(self)):
            raise InvalidParameterError(f"exclude holds a gallery index beyond the gallery's {len(self)} rows.")
        available = len(self) - (1 if np.any(excl >= 0) else 0)
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= available:
            raise InvalidParameterError(f"k must be a whole number between 1 and {available}; got {k!r}.")
        k = int(k)
        extra = int(np.any(excl >= 0))  # one more than asked, so the excluded row can be dropped
        approximate = self._hnsw is not None and not exact and n_queries <= APPROXIMATE_MAX_QUERIES
        if approximate:
            params = _faiss().SearchParametersHNSW(efSearch=max(HNSW_EF_SEARCH, k + extra))
            d2, found = self._hnsw.search(q, k + extra, params=params)
            if np.any(found < 0):  # the graph returned fewer rows than asked (tiny galleries): be exact
                approximate = False
        if not approximate:
            d2, found = self._exact.search(q, k + extra)
        self._per_thread.exact = not approximate
        keep = found != excl[:, None]
        keep &= np.cumsum(keep, axis=1) <= k  # the first k rows that are not excluded
        rows = np.nonzero(keep)
        distances = np.sqrt(np.maximum(d2[rows], 0.0)).astype(np.float32).reshape(n_queries, k)
        return distances, found[rows].astype(np.int64).reshape(n_queries, k)


def precision_at_k(index, query_vectors, query_labels, k=10, exclude=None):
    """Mean fraction of each query's ``k`` nearest gallery rows that share its label."""
    query_labels = np.asarray(query_labels)
    if len(query_labels) == 0:
        raise InvalidParameterError("precision@k needs at least one query.")
    _, indices = index.query(query_vectors, k=k, exclude=exclude)
    return float(np.mean(index.labels[indices] == query_labels[:, None]))
