"""Datasets: Fashion-MNIST from IDX files, and the ``Dataset`` object everything else reads.

A ``Dataset`` carries its arrays, class names and image shape, so nothing downstream needs to
know that Fashion-MNIST is 28x28x1 with 10 classes. Images are stored as uint8
``(N, H, W, C)`` (background 0) to keep memory low; ``to_model_input`` turns them into the
float32 [0, 1] tensors of the model contract.

Fashion-MNIST is looked up in this order: an explicit folder, ``$FASHION_MNIST_DIR``, Keras'
cache folder (``~/.keras/datasets/fashion-mnist``), then Keras' own download.
"""

from __future__ import annotations

import gzip
import os
import struct
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .classes import FASHION_MNIST_CLASSES
from .errors import DataError

FASHION_MNIST_DIR_ENV = "FASHION_MNIST_DIR"
FASHION_MNIST_FILES = {
    "x_train": "train-images-idx3-ubyte.gz",
    "y_train": "train-labels-idx1-ubyte.gz",
    "x_test": "t10k-images-idx3-ubyte.gz",
    "y_test": "t10k-labels-idx1-ubyte.gz",
}
FASHION_MNIST_COUNTS = {"x_train": 60000, "y_train": 60000, "x_test": 10000, "y_test": 10000}
FASHION_MNIST_SPEC = {"kind": "fashion-mnist"}

IDX_IMAGES_MAGIC = 2051
IDX_LABELS_MAGIC = 2049

OFFLINE_HELP = (
    "Fashion-MNIST was not found and could not be downloaded. Put the four IDX .gz files "
    "({files}) in a folder and set FASHION_MNIST_DIR to it, e.g. "
    "`export FASHION_MNIST_DIR=../shared/data/fashion-mnist`, or copy them to {cache}."
)


@dataclass
class Dataset:
    """Images, labels and metadata of one labelled image collection.

    Attributes
    ----------
    name : str
        Short human name ("Fashion-MNIST", or the catalogue folder's name).
    class_names : tuple of str
        Class names in label order; model outputs follow this order.
    x_train, x_test : ndarray of shape (n_samples, height, width, channels), uint8
        Images with background 0 (dark), garment bright.
    y_train, y_test : ndarray of shape (n_samples,), int64
        Class indices.
    spec : dict
        JSON-able recipe that reloads this dataset (stored with every model).
    source : str
        Where the data was read from, for people.
    skipped : list of (str, str)
        Files that could not be read (path, reason); empty for Fashion-MNIST.
    x_val, y_val : ndarray, optional
        An explicit validation set (e.g. real photos held out by sender); without it training
        carves validation from the training images.
    x_outliers : ndarray of shape (n, height, width, channels), uint8, optional
        Training images of none of the classes: taught as "no class" (a uniform target), so the
        model's confidence drops on things it should not name.
    additions : dict
        JSON-able description of training data beyond ``spec`` (e.g. real photos), stored with
        a model trained on it.
    class_keywords : dict
        A catalogue's own shopper keywords, ``{class name: (keyword, ...)}`` (its CSV's
        ``keywords`` column or a ``keywords.csv``); empty: ``classes.keywords_for`` decides.
    """

    name: str
    class_names: tuple
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    spec: dict = field(default_factory=dict)
    source: str = ""
    skipped: list = field(default_factory=list)
    x_val: np.ndarray | None = None
    y_val: np.ndarray | None = None
    x_outliers: np.ndarray | None = None
    additions: dict = field(default_factory=dict)
    class_keywords: dict = field(default_factory=dict)

    def __post_init__(self):
        self.class_names = tuple(self.class_names)
        for split in ("train", "test", "val"):
            x, y = getattr(self, f"x_{split}"), getattr(self, f"y_{split}")
            if x is None and y is None and split == "val":
                continue
            if x.ndim != 4:
                raise DataError(f"{self.name}: {split} images must be (N, H, W, C), got {x.shape}.")
            if len(x) != len(y):
                raise DataError(f"{self.name}: {len(x)} {split} images but {len(y)} labels.")
            if len(y) and (y.min() < 0 or y.max() >= self.num_classes):
                raise DataError(f"{self.name}: {split} labels outside 0..{self.num_classes - 1}.")

    @property
    def image_shape(self):
        """(height, width, channels) of one image."""
        return tuple(int(d) for d in self.x_train.shape[1:])

    @property
    def num_classes(self):
        return len(self.class_names)

    @property
    def is_color(self):
        return self.image_shape[-1] == 3

    def class_counts(self, split="train"):
        """Number of images per class, in class order."""
        y = getattr(self, f"y_{split}")
        return np.bincount(y, minlength=self.num_classes)

    def subset(self, limit, seed=0):
        """A copy with at most ``limit`` training and ``limit // 5`` (at least 100) test images,
        a seeded random sample, for quick experiments. ``limit=None`` returns self."""
        if not limit:
            return self
        rng = np.random.default_rng(seed)
        train_idx = sample_indices(len(self.y_train), int(limit), rng)
        test_idx = sample_indices(len(self.y_test), max(int(limit) // 5, min(len(self.y_test), 100)), rng)
        return Dataset(
            name=self.name,
            class_names=self.class_names,
            x_train=self.x_train[train_idx],
            y_train=self.y_train[train_idx],
            x_test=self.x_test[test_idx],
            y_test=self.y_test[test_idx],
            # The recipe names the subset too, so load_dataset(spec) rebuilds exactly these images.
            spec={**self.spec, "subset": {"limit": int(limit), "seed": int(seed)}} if self.spec else {},
            source=self.source,
            skipped=self.skipped,
            class_keywords=self.class_keywords,
        )


def sample_indices(n, size=None, seed=0):
    """Sorted indices of a seeded random sample of ``size`` out of ``n`` rows: the one sampler of
    the engine and the dashboard (all rows when ``size`` is None or 0; all, sorted, when ≥ n).

    ``seed`` is an int or a ``numpy.random.Generator`` (several samples from one stream).
    """
    if not size:
        return np.arange(n)
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    return np.sort(rng.permutation(n)[: int(size)])


def to_model_input(images):
    """uint8 images (N, H, W, C) → float32 in [0, 1], the model contract's input."""
    images = np.asarray(images)
    if images.dtype == np.uint8:
        return images.astype(np.float32) / 255.0
    return images.astype(np.float32, copy=False)


def train_validation_split(n_samples, validation_fraction, seed=0, labels=None):
    """Indices (train_idx, val_idx) of a seeded split of the *training* data.

    Stratified by ``labels`` when given, so every class appears in validation.
    """
    if not 0.0 <= validation_fraction < 1.0:
        raise DataError(f"validation fraction must be in [0, 1), got {validation_fraction}.")
    indices = np.arange(n_samples)
    if validation_fraction == 0:
        return indices, indices[:0]
    from sklearn.model_selection import train_test_split

    n_val = int(np.ceil(validation_fraction * n_samples))
    if n_samples < 2 or n_val >= n_samples:
        raise DataError(f"too few training images ({n_samples}) to hold out a validation fraction of {validation_fraction}.")
    stratify = None
    if labels is not None:
        counts = np.bincount(labels)
        classes = int((counts > 0).sum())
        # Stratify only when every class has 2 images and both parts can hold one of each class
        # (scikit-learn refuses otherwise); a tiny catalogue gets a plain seeded split.
        if counts[counts > 0].min() >= 2 and n_val >= classes and n_samples - n_val >= classes:
            stratify = labels
    train_idx, val_idx = train_test_split(
        indices, test_size=validation_fraction, random_state=seed, stratify=stratify
    )
    return np.sort(train_idx), np.sort(val_idx)


# --- IDX files -------------------------------------------------------------------------------


def read_idx(path, expected_magic=None, expected_count=None):
    """Read one IDX file (optionally gzipped) into a uint8 array.

    Validates the magic number, the dimension count and that the payload holds exactly
    ``prod(dims)`` bytes, so a truncated or foreign file is a clear ``DataError``.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            raw = handle.read()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found.") from None
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise DataError(f"{path}: not a readable IDX file ({exc}).") from None
    if len(raw) < 8:
        raise DataError(f"{path}: too short to be an IDX file ({len(raw)} bytes).")
    magic = struct.unpack(">I", raw[:4])[0]
    if expected_magic is not None and magic != expected_magic:
        raise DataError(f"{path}: IDX magic number {magic}, expected {expected_magic}.")
    dtype_code, ndim = raw[2], raw[3]
    if raw[0] != 0 or raw[1] != 0 or dtype_code != 0x08 or not 1 <= ndim <= 4:
        raise DataError(f"{path}: not an unsigned-byte IDX file (header {raw[:4].hex()}).")
    header_len = 4 + 4 * ndim
    if len(raw) < header_len:
        raise DataError(f"{path}: header truncated.")
    dims = struct.unpack(f">{ndim}I", raw[4:header_len])
    expected_bytes = int(np.prod(dims, dtype=np.int64))
    payload = len(raw) - header_len
    if payload != expected_bytes:
        raise DataError(
            f"{path}: holds {payload} bytes of data but its header announces {dims} "
            f"({expected_bytes} bytes); the file is truncated or corrupt."
        )
    if expected_count is not None and dims[0] != expected_count:
        raise DataError(f"{path}: {dims[0]} items, expected {expected_count}.")
    return np.frombuffer(raw, dtype=np.uint8, offset=header_len).reshape(dims)


def keras_cache_dir():
    """Where Keras keeps downloaded Fashion-MNIST files."""
    base = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return Path(base) / "datasets" / "fashion-mnist"


def _has_idx_files(folder):
    return folder is not None and all((Path(folder) / f).is_file() for f in FASHION_MNIST_FILES.values())


def find_fashion_mnist_dir(folder=None):
    """The folder holding the four IDX files, or None. An explicit ``folder`` must have them;
    otherwise ``$FASHION_MNIST_DIR`` then Keras' cache folder are tried."""
    if folder:
        if not _has_idx_files(folder):
            raise DataError(
                f"{folder}: does not contain the Fashion-MNIST files "
                f"({', '.join(FASHION_MNIST_FILES.values())})."
            )
        return Path(folder)
    for candidate in (os.environ.get(FASHION_MNIST_DIR_ENV), keras_cache_dir()):
        if candidate and _has_idx_files(candidate):
            return Path(candidate)
    return None


def load_fashion_mnist_arrays(folder):
    """The four arrays from one folder of IDX files, validated."""
    folder = Path(folder)
    arrays = {}
    for key, filename in FASHION_MNIST_FILES.items():
        magic = IDX_IMAGES_MAGIC if key.startswith("x") else IDX_LABELS_MAGIC
        arrays[key] = read_idx(folder / filename, magic, FASHION_MNIST_COUNTS[key])
    for key in ("x_train", "x_test"):
        if arrays[key].shape[1:] != (28, 28):
            raise DataError(f"{folder}: {key} images are {arrays[key].shape[1:]}, expected 28x28.")
    return arrays


def _download_with_keras():
    """Keras' own download (what online users get); None when offline."""
    try:
        from keras.datasets import fashion_mnist

        (x_train, y_train), (x_test, y_test) = fashion_mnist.load_data()
    except Exception:  # any network or file failure: we explain below
        return None
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}


def load_fashion_mnist(folder=None, allow_download=True, image_size=None, color=False):
    """Fashion-MNIST as a ``Dataset``.

    Parameters
    ----------
    folder : path, optional
        Folder with the four IDX .gz files. Otherwise ``$FASHION_MNIST_DIR``, Keras' cache,
        then a Keras download are tried.
    allow_download : bool
        Set False to fail fast instead of trying the network.
    image_size : int, optional
        Model resolution other than the native 28 px (e.g. a photo model's 48): every image goes
        through ``preprocess.prepare_image`` like an upload would (cached on disk).
    color : bool
        Three identical channels, for colour models (stored once, seen as a read-only view).
    """
    found = find_fashion_mnist_dir(folder)
    if found is not None:
        arrays = load_fashion_mnist_arrays(found)
        source = str(found)
    else:
        arrays = _download_with_keras() if allow_download else None
        if arrays is None:
            raise DataError(
                OFFLINE_HELP.format(files=", ".join(FASHION_MNIST_FILES.values()), cache=keras_cache_dir())
            )
        source = "downloaded by Keras"
    spec = fashion_mnist_spec(image_size, color)
    x_train, x_test = arrays["x_train"][..., None], arrays["x_test"][..., None]
    if len(spec) > 1:
        shape = (spec.get("image_size", 28),) * 2 + (3 if color else 1,)
        x_train, x_test = (RenderedImages(x, shape, f"fashion-mnist-{key}") for x, key in ((x_train, "train"), (x_test, "test")))
    return Dataset(
        name="Fashion-MNIST" if len(spec) == 1 else f"Fashion-MNIST {x_train.shape[1]}px{' colour' if color else ''}",
        class_names=FASHION_MNIST_CLASSES,
        x_train=x_train,
        y_train=arrays["y_train"].astype(np.int64),
        x_test=x_test,
        y_test=arrays["y_test"].astype(np.int64),
        spec=spec,
        source=source,
    )


def fashion_mnist_spec(image_size=None, color=False):
    """The dataset recipe of Fashion-MNIST at a model resolution (native 28 px grey: the bare spec)."""
    spec = dict(FASHION_MNIST_SPEC)
    if image_size and int(image_size) != 28:
        spec["image_size"] = int(image_size)
    if color:
        spec["color"] = True
    return spec


def _render(image, image_shape):
    """One 28x28 grey image through the upload path at ``image_shape``: (H, W, 1) uint8 (a grey
    image made colour has three equal channels; one is kept)."""
    from .preprocess import prepare_image

    preview = prepare_image(image, image_shape).preview
    if not (preview == preview[..., :1]).all():
        raise DataError("a grey image came out of preprocessing with unequal colour channels.")
    return preview[..., :1]


def _resized(images, image_shape, key):
    """28x28 grey images through the upload path at another shape, cached (a minute of work),
    rendered straight into the cache file (``diskcache.cached_array``), never all in memory.

    A grey image made colour has three equal channels: one is stored, the others are a view."""
    from .diskcache import cached_array

    def build(out):
        for i, image in enumerate(images):
            out[i] = _render(image, image_shape)

    stored = cached_array(f"{key}-{len(images)}-{'x'.join(map(str, image_shape))}", build,
                          shape=(len(images), *image_shape[:2], 1), dtype=np.uint8)
    return np.broadcast_to(stored, (*stored.shape[:3], image_shape[2]))


class RenderedImages:
    """Fashion-MNIST's 28x28 grey images as a model of another input shape sees them (through
    ``preprocess.prepare_image``, like an upload), rendered when they are read.

    A few rows (a page's thumbnails, one query image: up to ``FEW``) are rendered on the spot;
    anything that needs them all (training, a whole test set through a model, any other NumPy
    use) renders the set once into the on-disk cache (``_resized``, about a minute for 60,000)
    and reads that memory-map from then on. So a dashboard page that shows a photo model's
    neighbours never renders or holds the 1 GB training set. Read-only, like every dataset array.
    """

    FEW = 256

    def __init__(self, source, image_shape, key):
        self._source = source
        self._key = key
        self.shape = (len(source), *tuple(int(d) for d in image_shape))
        self.dtype = np.dtype(np.uint8)
        self.ndim = len(self.shape)
        self._full = None
        self._lock = threading.Lock()

    def __len__(self):
        return self.shape[0]

    @property
    def rendered(self):
        """Whether the whole set has been rendered (or read from the cache) in this process."""
        return self._full is not None

    def materialize(self):
        """The whole set, (N, H, W, C) uint8, read-only (rendered into the cache once)."""
        with self._lock:
            if self._full is None:
                self._full = _resized(self._source, self.shape[1:], self._key)
            return self._full

    def _row(self, i):
        return np.broadcast_to(_render(self._source[i], self.shape[1:]), self.shape[1:])  # a read-only view

    def _few(self, key):
        """The row indices ``key`` asks for when it is a handful of rows (a slice or a 1-D list
        of integers), else None."""
        if isinstance(key, slice):
            rows = range(*key.indices(len(self)))
        elif isinstance(key, (list, np.ndarray)):
            rows = np.asarray(key)
            if rows.ndim != 1 or not (np.issubdtype(rows.dtype, np.integer) or rows.size == 0):
                return None
        else:
            return None
        return rows if len(rows) <= self.FEW else None

    def __getitem__(self, key):
        if self._full is None:
            if isinstance(key, (int, np.integer)):
                i = int(key)
                if not -len(self) <= i < len(self):
                    raise IndexError(f"index {i} is out of bounds for {len(self)} images")
                return self._row(i % len(self))
            rows = self._few(key)
            if rows is not None:
                if len(rows) == 0:
                    return np.zeros((0, *self.shape[1:]), self.dtype)
                return np.stack([self._row(int(i) % len(self)) for i in rows])
        return self.materialize()[key]

    def __array__(self, dtype=None, copy=None):
        full = self.materialize()
        return np.array(full, dtype=dtype) if dtype is not None or copy else np.asarray(full)

    def __getattr__(self, name):  # astype, reshape, nbytes, ...: what the whole array has
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.materialize(), name)

    def __repr__(self):
        return f"RenderedImages(shape={self.shape}, {'rendered' if self._full is not None else 'rendered on demand'})"
