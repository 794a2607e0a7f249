"""Exact Euclidean nearest-neighbour search over a gallery of vectors, in NumPy alone (no
TensorFlow): the search index of the Latent space page and of ``bench``.

Nearest neighbours (Euclidean) use a NumPy matrix-product path with precomputed squared norms,
not scikit-learn's ``NearestNeighbors``: on this project's 2-core target sklearn's per-call
overhead alone (~100 ms measured) is far above the 2 ms budget for one top-10 query over 70,000
images. Batches of queries (precision@k) are searched exactly by brute force. Single queries on
wide embeddings (> 128-d) take a faster path: the gallery is stored rotated onto its principal
axes (an orthonormal rotation, so distances are unchanged); the leading ``COARSE_DIMS`` axes
(18 MB for 70,000 rows, small enough to stay in the CPU cache) pick a candidate list that is
re-ranked with exact full distances. Candidates are chosen by a lower bound of the distance,
so a true neighbour can only be missed when the bound is loose; ``bench`` reports the measured
recall against brute force, and ``query(..., exact=True)`` forces brute force. Embeddings wider
than ``MAX_INDEX_DIMS`` are reduced to that many principal components (the encoder's
description says so).
"""

from __future__ import annotations

import functools
import threading

import numpy as np

from .data import sample_indices
from .errors import InvalidParameterError

MAX_INDEX_DIMS = 256  # float32 x 256 x 70,000 images ≈ 72 MB: fits a 1 GB app
COARSE_DIMS = 64  # leading principal axes of the candidate search (70k x 64 float32 = 18 MB: fits in L3)
CANDIDATES_PER_NEIGHBOUR = 50
MIN_CANDIDATES = 500
PCA_FIT_ROWS = 20000  # rows sampled to fit the rotation (the axes barely change beyond that)



@functools.lru_cache(maxsize=1)
def _blas_controller():
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def _single_blas_thread():
    """Context limiting BLAS to one thread. Matrix-vector products are memory-bound, and
    OpenBLAS' spinning worker threads make them ~20x slower when the other core is busy
    (measured: 16 ms instead of 0.8 ms for 70,000 x 64 while training runs)."""
    return _blas_controller().limit(limits=1, user_api="blas")


class NeighbourIndex:
    """Exact Euclidean k-nearest-neighbour search over a gallery of embeddings.

    Parameters
    ----------
    embeddings : array (N, D)
        Gallery vectors. Stored as float32 rotated onto their principal axes (same distances);
        more than ``MAX_INDEX_DIMS`` dimensions are reduced by PCA. The caller may drop its own
        copy afterwards: ``vectors`` holds the stored (N, d) array.
    labels : array (N,)
        Class index of every gallery row.
    """

    def __init__(self, embeddings, labels, coarse_dims=COARSE_DIMS, seed=0):
        x = np.asarray(embeddings, dtype=np.float32)
        if x.ndim != 2 or len(x) == 0:
            raise InvalidParameterError(f"embeddings must be a non-empty (N, D) array; got shape {x.shape}.")
        if not np.all(np.isfinite(x)):
            raise InvalidParameterError("embeddings contain NaN or infinite values.")
        self.labels = np.asarray(labels)
        if len(self.labels) != len(x):
            raise InvalidParameterError(f"{len(x)} embeddings but {len(self.labels)} labels.")
        self.input_dims = x.shape[1]
        # Whether the calling thread's last fast-path answer was provably exact: kept per thread,
        # so an index shared by several dashboard sessions is never written by a query.
        self._per_thread = threading.local()
        from sklearn.decomposition import PCA  # noqa: F401  (loads SciPy's BLAS before limiting it)

        with _single_blas_thread():
            self._mean, self._axes = self._fit_rotation(x, seed)
            self.vectors = self.transform(x) if self._axes is not None else x
        del x
        self.dims = self.vectors.shape[1]
        self._sq_norms = np.einsum("ij,ij->i", self.vectors, self.vectors)
        # Candidate search needs the rotation (leading coordinates = largest variance).
        self._coarse_dims = coarse_dims if self._axes is not None and self.dims > 2 * coarse_dims else 0
        if self._coarse_dims:
            self._coarse = np.ascontiguousarray(self.vectors[:, : self._coarse_dims])
            self._coarse_sq = np.einsum("ij,ij->i", self._coarse, self._coarse)
        for array in (self.vectors, self._sq_norms, self.labels, *(a for a in (self._mean, self._axes) if a is not None),
                      *((self._coarse, self._coarse_sq) if self._coarse_dims else ())):
            if array.flags.writeable and array.flags.owndata:
                array.flags.writeable = False

    @property
    def last_query_exact(self):
        """Whether this thread's last single query (fast path) was provably exact."""
        return getattr(self._per_thread, "exact", True)

    def __len__(self):
        return len(self.vectors)

    @staticmethod
    def _fit_rotation(x, seed):
        """Mean and principal axes (d, D), or (None, None) when no rotation is needed/possible."""
        n, dims = x.shape
        if dims <= 2 * COARSE_DIMS and dims <= MAX_INDEX_DIMS:
            return None, None  # brute force is already cheap
        if n < dims:
            if dims > MAX_INDEX_DIMS:
                raise InvalidParameterError(
                    f"a gallery of {n} vectors is too small to reduce {dims}-d embeddings to {MAX_INDEX_DIMS}-d."
                )
            return None, None
        from sklearn.decomposition import PCA

        rows = x if n <= PCA_FIT_ROWS else x[sample_indices(n, PCA_FIT_ROWS, seed)]
        if len(rows) < dims:
            rows = x
        pca = PCA(n_components=min(dims, MAX_INDEX_DIMS), svd_solver="full").fit(rows)
        return pca.mean_.astype(np.float32), pca.components_.astype(np.float32)

    def transform(self, vectors):
        """Map raw encoder vectors (Q, D) into the index's stored space (Q, d)."""
        v = np.asarray(vectors, dtype=np.float32)
        if v.ndim == 1:
            v = v[None, :]
        if v.ndim != 2 or v.shape[1] != self.input_dims:
            raise InvalidParameterError(f"query vectors must be (Q, {self.input_dims}); got shape {v.shape}.")
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
            Force brute force. By default up to 4 queries take the fast path (candidates on the
            leading principal axes, exact re-ranking), which can in rare cases miss a true
            neighbour; batches of more queries are always exact.

        Returns
        -------
        distances : ndarray (Q, k) float32, ascending
        indices : ndarray (Q, k) int64 gallery rows
        """
        q = self.transform(vectors)
        n_queries = len(q)
        excl = np.full(n_queries, -1, np.int64) if exclude is None else np.asarray(exclude, dtype=np.int64).reshape(-1)
        if len(excl) != n_queries:
            raise InvalidParameterError(f"exclude needs one gallery index per query ({n_queries}); got {len(excl)}.")
        if np.any(excl >= len(self)):
            raise InvalidParameterError(f"exclude holds a gallery index beyond the gallery's {len(self)} rows.")
        available = len(self) - (1 if np.any(excl >= 0) else 0)
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= available:
            raise InvalidParameterError(f"k must be a whole number between 1 and {available}; got {k!r}.")
        if n_queries <= 4 and self._coarse_dims and not exact:
            with _single_blas_thread():
                rows = [self._query_one(q[i], int(k), int(excl[i])) for i in range(n_queries)]
            return np.stack([r[0] for r in rows]), np.stack([r[1] for r in rows])
        return self._query_brute(q, int(k), excl)

    def _query_brute(self, q, k, excl):
        """Exact search by matrix products, in chunks of queries that keep memory ~64 MB."""
        chunk = max(1, (1 << 24) // len(self))
        distances = np.empty((len(q), k), np.float32)
        indices = np.empty((len(q), k), np.int64)
        for start in range(0, len(q), chunk):
            block = q[start : start + chunk]
            d2 = self._sq_norms[None, :] - 2.0 * (block @ self.vectors.T)
            d2 += np.einsum("ij,ij->i", block, block)[:, None]
            rows = np.arange(len(block))
            skip = excl[start : start + chunk]
            d2[rows[skip >= 0], skip[skip >= 0]] = np.inf
            top = np.argpartition(d2, k - 1, axis=1)[:, :k] if k < d2.shape[1] else np.tile(np.arange(d2.shape[1]), (len(block), 1))
            top_d2 = np.take_along_axis(d2, top, axis=1)
            order = np.argsort(top_d2, axis=1, kind="stable")
            indices[start : start + chunk] = np.take_along_axis(top, order, axis=1)
            distances[start : start + chunk] = np.sqrt(np.maximum(np.take_along_axis(top_d2, order, axis=1), 0.0))
        return distances, indices

    def _query_one(self, q, k, exclude):
        """One query: candidates by the leading principal axes, then exact re-ranking."""
        m = self._coarse_dims
        q_coarse = q[:m]
        # Squared distance on the leading axes only: a lower bound of the full squared distance.
        bound = self._coarse_sq - 2.0 * (self._coarse @ q_coarse) + float(q_coarse @ q_coarse)
        if exclude >= 0:
            bound[exclude] = np.inf
        candidates = min(len(self), max(CANDIDATES_PER_NEIGHBOUR * k, MIN_CANDIDATES))
        cand = np.argpartition(bound, candidates - 1)[:candidates] if candidates < len(self) else np.arange(len(self))
        d2 = self._sq_norms[cand] - 2.0 * (self.vectors[cand] @ q) + float(q @ q)
        if exclude >= 0:
            d2[cand == exclude] = np.inf
        top = np.argpartition(d2, k - 1)[:k] if k < len(d2) else np.arange(len(d2))
        # Rows outside the candidates are at least max(bound[cand]) away: when the k-th distance
        # is within that, the answer is provably exact; otherwise it is a (rarely wrong) approximation.
        self._per_thread.exact = bool(d2[top].max() <= bound[cand].max()) or candidates == len(self)
        order = np.argsort(d2[top], kind="stable")
        return np.sqrt(np.maximum(d2[top][order], 0.0)).astype(np.float32), cand[top][order].astype(np.int64)


def precision_at_k(index, query_vectors, query_labels, k=10, exclude=None):
    """Mean fraction of each query's ``k`` nearest gallery rows that share its label."""
    query_labels = np.asarray(query_labels)
    if len(query_labels) == 0:
        raise InvalidParameterError("precision@k needs at least one query.")
    _, indices = index.query(query_vectors, k=k, exclude=exclude)
    return float(np.mean(index.labels[indices] == query_labels[:, None]))
