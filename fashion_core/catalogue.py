"""Your own catalogue: a folder of product photos (one subfolder per class) or a CSV of
``path,label``, read into a ``Dataset`` that every part of the engine accepts.

Every image goes through ``preprocess.prepare_image``, the same function uploads go through,
so a model sees identical pixels at training and at inference (product photos on a light
background become dark-background images, as in Fashion-MNIST). Files that cannot be read are
listed in ``Dataset.skipped`` and never stop the load. The train/test split is seeded and
stratified, and ``Dataset.spec`` is a JSON recipe that rebuilds the very same split.

Layout::

    my_catalogue/
        Bottomwear/  img001.jpg  img002.png ...
        Saree/       ...
        Topwear/     ...
"""

from __future__ import annotations

import csv
import math
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from .data import Dataset, sample_indices
from .errors import DataError, FashionError, InvalidParameterError
from .preprocess import MAX_UPLOAD_BYTES, prepare_image

MIN_IMAGE_SIZE, MAX_IMAGE_SIZE = 8, 512
MIN_IMAGES_PER_CLASS = 2
# Refuse loads whose decoded arrays alone would not fit comfortably in memory.
MAX_DATASET_BYTES = 6 * 1024**3
MAX_FILE_BYTES = MAX_UPLOAD_BYTES  # the same limit as an upload: one preprocessing path
# Folders that zip tools and operating systems add; never classes.
IGNORED_NAMES = {"__MACOSX", "Thumbs.db", "desktop.ini"}
CSV_COLUMNS = ("path", "label")
# Optional CSV columns: ``split`` (train / test: the catalogue's own split instead of a seeded one)
# and ``keywords`` (a product's shopper keywords, ';'- or '|'-separated; a class's keywords are its
# products' most frequent ones). A folder catalogue may hold ``keywords.csv`` (``class,keywords``).
SPLIT_VALUES = ("train", "test")
KEYWORDS_FILE = "keywords.csv"
MAX_CLASS_KEYWORDS = 8


# --- loading -------------------------------------------------------------------------------------


def load_catalogue(path, image_size=28, color=False, test_fraction=0.2, seed=0, max_images=None,
                   progress=None):
    """Read a catalogue folder or ``path,label`` CSV into a ``Dataset``.

    Parameters
    ----------
    path : str or Path
        A folder with one subfolder per class (subfolder name = class name, images anywhere
        below it), or a ``.csv`` file with a header holding ``path`` and ``label`` columns
        (relative paths are resolved against the CSV's folder). An optional ``split`` column
        (``train`` / ``test``) fixes the split (``test_fraction`` is then unused), and an
        optional ``keywords`` column (or a folder's ``keywords.csv``) gives each class its
        shopper keywords (``Dataset.class_keywords``).
    image_size : int
        Model resolution: every image becomes ``image_size x image_size``.
    color : bool
        Keep RGB (3 channels) instead of grayscale (1 channel).
    test_fraction : float
        Share of each class held out as the test set (at least one image per class).
    seed : int
        Seeds the split (and the ``max_images`` sample), so reloading gives the same arrays.
    max_images : int, optional
        Use a seeded, class-stratified sample of at most this many images (quick experiments).
    progress : callable(done, total), optional
        Called while decoding, e.g. to drive a progress bar.

    Returns
    -------
    Dataset
        ``x_train``/``x_test`` uint8 of shape (n, image_size, image_size, 3 if color else 1),
        labels int64 in the order of ``class_names`` (sorted), ``skipped`` = [(file, reason)].
    """
    image_size, color, test_fraction, seed, max_images = _check_parameters(
        image_size, color, test_fraction, seed, max_images
    )
    root = Path(path).expanduser()
    if not root.exists():
        raise DataError(f"{root}: catalogue folder or CSV not found.")
    root = root.resolve()
    splits = None
    if root.is_dir():
        files, labels, skipped = _list_folder(root)
        keywords = _folder_keywords(root)
        name, base = root.name, root
    elif root.suffix.lower() == ".csv":
        files, labels, skipped, splits, row_keywords = _list_csv(root)
        keywords = _class_keywords(labels, row_keywords)
        name, base = root.stem, root.parent
    else:
        raise DataError(f"{root}: expected a folder with one subfolder per class or a .csv file of path,label.")

    class_names = tuple(sorted(set(labels)))
    if len(class_names) < 2:
        raise DataError(f"{root}: found {len(class_names)} class(es) with images; a catalogue needs at least 2.")
    y_all = np.array([class_names.index(label) for label in labels], dtype=np.int64)
    splits = None if splits is None else np.array(splits)
    if max_images is not None and max_images < len(files):
        keep = _stratified_sample(y_all, max_images, seed)
        files, y_all = [files[i] for i in keep], y_all[keep]
        splits = None if splits is None else splits[keep]

    image_shape = (image_size, image_size, 3 if color else 1)
    _check_memory(len(files), image_shape)
    images, readable, decode_skipped = decode_files(files, image_shape, base, progress)
    skipped = skipped + decode_skipped
    images, y_all = images[readable], y_all[readable]
    splits = None if splits is None else splits[readable]

    counts = np.bincount(y_all, minlength=len(class_names))
    too_small = [f"{c} ({n})" for c, n in zip(class_names, counts) if n < MIN_IMAGES_PER_CLASS]
    if too_small:
        raise DataError(
            f"{root}: every class needs at least {MIN_IMAGES_PER_CLASS} readable images; "
            f"too few in: {', '.join(too_small)}. Add images or remove those classes."
        )

    if splits is None:
        train_idx, test_idx = stratified_split(y_all, test_fraction, seed)
    else:
        train_idx, test_idx = given_split(y_all, splits, class_names, seed, root)
    spec = {"kind": "folder", "path": str(root), "image_size": image_size, "color": color,
            "test_fraction": test_fraction, "seed": seed}
    if max_images is not None:
        spec["max_images"] = max_images
    return Dataset(
        name=name,
        class_names=class_names,
        x_train=images[train_idx],
        y_train=y_all[train_idx],
        x_test=images[test_idx],
        y_test=y_all[test_idx],
        spec=spec,
        source=str(root),
        skipped=skipped,
        class_keywords={c: k for c, k in keywords.items() if c in class_names},
    )


def _check_parameters(image_size, color, test_fraction, seed, max_images):
    try:
        image_size = int(image_size)
        test_fraction = float(test_fraction)
        seed = int(seed)
        max_images = None if max_images is None else int(max_images)
    except (TypeError, ValueError):
        raise InvalidParameterError("image size, seed and max images must be whole numbers, test fraction a number.") from None
    if not MIN_IMAGE_SIZE <= image_size <= MAX_IMAGE_SIZE:
        raise InvalidParameterError(f"image size must be between {MIN_IMAGE_SIZE} and {MAX_IMAGE_SIZE} px; got {image_size}.")
    if not 0.0 < test_fraction < 1.0:
        raise InvalidParameterError(f"test fraction must be between 0 and 1 (exclusive); got {test_fraction}.")
    if max_images is not None and max_images < 4:
        raise InvalidParameterError(f"max images must be at least 4; got {max_images}.")
    return image_size, bool(color), test_fraction, seed, max_images


def is_visible(path):
    """False for hidden files and the folders zip tools and operating systems add."""
    return not path.name.startswith(".") and path.name not in IGNORED_NAMES


def _list_folder(root):
    """Files and class labels of a folder catalogue, sorted so reloading is deterministic."""
    try:
        class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and is_visible(p))
    except OSError as exc:
        raise DataError(f"{root}: cannot list the folder ({exc.strerror or exc}).") from None
    if not class_dirs:
        raise DataError(f"{root}: no class subfolders; put each class's images in its own subfolder.")
    files, labels = [], []
    for class_dir in class_dirs:
        for dirpath, dirnames, filenames in os.walk(class_dir):
            dirnames[:] = sorted(d for d in dirnames if is_visible(Path(d)))
            for filename in sorted(filenames):
                file = Path(dirpath) / filename
                if is_visible(file):
                    files.append(file)
                    labels.append(class_dir.name)
    return files, labels, []


def _list_csv(csv_path):
    """Files, labels, skipped rows, splits (None without a ``split`` column) and keywords (None
    without a ``keywords`` column) of a ``path,label`` CSV; rows without a path or label are
    skipped, a split other than train / test is refused."""
    rows, skipped = read_csv_rows(csv_path)
    columns = set(rows[0]) if rows else set()
    splits = [] if "split" in columns else None
    keywords = [] if "keywords" in columns else None
    for row in rows:
        if splits is not None:
            split = row.get("split", "").lower()
            if split not in SPLIT_VALUES:
                raise DataError(f"{csv_path}: {row['path']}: split must be 'train' or 'test'; got {split!r}.")
            splits.append(split)
        if keywords is not None:
            keywords.append(row.get("keywords") or "")
    return [row["file"] for row in rows], [row["label"] for row in rows], skipped, splits, keywords


def read_csv_rows(csv_path):
    """The rows of a ``path,label`` CSV (more columns allowed, e.g. ``group``): ``(rows, skipped)``.

    Each row is a dict of its columns (lower-cased names, values stripped) plus ``file``: the
    path resolved against the CSV's folder. Rows without a path or a label are skipped with the
    reason; a missing or unreadable file, or a header without both columns, is a ``DataError``.
    """
    csv_path = Path(csv_path)
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            columns = [c.strip().lower() for c in (reader.fieldnames or [])]
            if not set(CSV_COLUMNS) <= set(columns):
                raise DataError(f"{csv_path}: the header must name the columns 'path' and 'label'; found {columns}.")
            reader.fieldnames = columns
            raw = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{csv_path}: not a readable CSV file ({exc}).") from None
    rows, skipped = [], []
    for line, row in enumerate(raw, start=2):
        row = {k: (v or "").strip() for k, v in row.items() if k is not None and isinstance(v, (str, type(None)))}
        if not row.get("path") or not row.get("label"):
            skipped.append((f"{csv_path.name}:{line}", "row without a path or a label"))
            continue
        file = Path(row["path"]).expanduser()
        rows.append({**row, "file": file if file.is_absolute() else csv_path.parent / file})
    return rows, skipped


def split_keywords(text):
    """``'tee; polo | t-shirt'`` → ``['tee', 'polo', 't-shirt']`` (lower case, no blanks)."""
    return [k.strip().lower() for k in str(text or "").replace("|", ";").split(";") if k.strip()]


def _class_keywords(labels, row_keywords):
    """{class: its products' most frequent keywords (at most ``MAX_CLASS_KEYWORDS``)}."""
    from collections import Counter

    if row_keywords is None:
        return {}
    counts = {}
    for label, text in zip(labels, row_keywords):
        counts.setdefault(label, Counter()).update(dict.fromkeys(split_keywords(text), 1))
    return {label: tuple(k for k, _ in c.most_common(MAX_CLASS_KEYWORDS)) for label, c in counts.items() if c}


def _folder_keywords(root):
    """A folder catalogue's ``keywords.csv`` (``class,keywords``) as {class: keywords}; {} without one."""
    path = root / KEYWORDS_FILE
    if not path.is_file():
        return {}
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            reader.fieldnames = [c.strip().lower() for c in (reader.fieldnames or [])]
            if not {"class", "keywords"} <= set(reader.fieldnames):
                raise DataError(f"{path}: the header must name the columns 'class' and 'keywords'.")
            rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{path}: not a readable CSV file ({exc}).") from None
    labels = [(r.get("class") or "").strip() for r in rows]
    return _class_keywords(labels, [r.get("keywords") or "" for r in rows])


def _stratified_sample(labels, limit, seed):
    """Indices of a seeded sample of ``limit`` items keeping class shares (>= 2 per class)."""
    rng = np.random.default_rng(seed)
    counts = np.bincount(labels)
    quotas = np.maximum(np.minimum(counts, MIN_IMAGES_PER_CLASS), np.floor(counts * limit / len(labels)).astype(int))
    members = [np.flatnonzero(labels == c) for c in range(len(counts))]
    keep = [m[sample_indices(len(m), q, rng)] for m, q in zip(members, quotas)]
    return np.sort(np.concatenate(keep))


def _check_memory(n_files, image_shape):
    needed = n_files * math.prod(image_shape)
    if needed > MAX_DATASET_BYTES:
        raise DataError(
            f"{n_files} images of {image_shape[0]}x{image_shape[1]}x{image_shape[2]} would take "
            f"{needed / 1024**3:.1f} GiB of memory; choose a smaller image size or a maximum number of images."
        )


def _display_name(file, base):
    try:
        return str(Path(file).relative_to(base))
    except ValueError:
        return str(file)


def _prepare_file(file, image_shape, display):
    """(uint8 preview (H, W, C), None) or (None, reason) for one file; never raises for bad files."""
    try:
        size = os.path.getsize(file)
        if size == 0:
            return None, "empty file"
        if size > MAX_FILE_BYTES:
            return None, f"file larger than {MAX_FILE_BYTES // 1024**2} MB"
        data = Path(file).read_bytes()
    except FileNotFoundError:
        return None, "file not found"
    except OSError as exc:
        return None, f"cannot read file ({exc.strerror or exc})"
    try:
        prepared = prepare_image(data, image_shape, name=display)
    except FashionError as exc:
        return None, str(exc)
    except (OSError, ValueError) as exc:  # Pillow's own errors for malformed files
        return None, f"not a readable image ({exc})"
    return np.asarray(prepared.preview, dtype=np.uint8).reshape(image_shape), None


def decode_files(files, image_shape, base, progress=None):
    """Decode every file into one preallocated uint8 array.

    Returns
    -------
    images : ndarray of shape (n_files, H, W, C), uint8
    readable : ndarray of shape (n_files,), bool
    skipped : list of (str, str)
    """
    total = len(files)
    images = np.zeros((total, *image_shape), dtype=np.uint8)
    readable = np.zeros(total, dtype=bool)
    skipped = []
    names = [_display_name(f, base) for f in files]
    report_every = max(1, total // 200)
    if progress:
        progress(0, total)
    # Pillow releases the GIL while decoding and resizing, so threads speed up large catalogues.
    workers = max(1, min(8, os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = pool.map(lambda i: _prepare_file(files[i], image_shape, names[i]), range(total), chunksize=64)
        for i, (image, reason) in enumerate(results):
            if image is None:
                skipped.append((names[i], reason))
            else:
                images[i], readable[i] = image, True
            if progress and ((i + 1) % report_every == 0 or i + 1 == total):
                progress(i + 1, total)
    return images, readable, skipped


def given_split(labels, splits, class_names, seed, root):
    """``(train_idx, test_idx)`` from a CSV's ``split`` column, each in a seeded shuffled order;
    every class needs at least one image on each side."""
    rng = np.random.default_rng(seed)
    lacking = [f"{name} ({side})" for c, name in enumerate(class_names) for side in SPLIT_VALUES
               if not np.any((labels == c) & (splits == side))]
    if lacking:
        raise DataError(f"{root}: the split column leaves classes without readable images: {', '.join(lacking)}.")
    return (rng.permutation(np.flatnonzero(splits == "train")), rng.permutation(np.flatnonzero(splits == "test")))


def stratified_split(labels, test_fraction, seed=0):
    """Seeded per-class split: every class gets ``round(test_fraction * n)`` test items, at least
    one and at most ``n - 1``.

    Parameters
    ----------
    labels : ndarray of shape (n_samples,), int
    test_fraction : float in (0, 1)
    seed : int

    Returns
    -------
    train_idx, test_idx : ndarray of int, each in a seeded shuffled order
    """
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == c))
        n_test = min(max(1, int(round(test_fraction * len(members)))), len(members) - 1)
        test.append(members[:n_test])
        train.append(members[n_test:])
    return rng.permutation(np.concatenate(train)), rng.permutation(np.concatenate(test))


# --- summary ---------------------------------------------------------------------------------------


def catalogue_summary(dataset):
    """Images per class and split, as a table.

    Returns
    -------
    pandas.DataFrame
        Columns ``class, train, test, total, share`` (share of all images, 0..1), one row per
        class in class order; ``df.attrs["imbalance_ratio"]`` = largest / smallest class total
        (inf when a class is empty) and ``df.attrs["skipped"]`` = number of unreadable files.
    """
    import pandas as pd

    train = dataset.class_counts("train")
    test = dataset.class_counts("test")
    total = train + test
    frame = pd.DataFrame({
        "class": list(dataset.class_names),
        "train": train.astype(int),
        "test": test.astype(int),
        "total": total.astype(int),
        "share": total / max(int(total.sum()), 1),
    })
    frame.attrs["imbalance_ratio"] = float(total.max() / total.min()) if total.min() > 0 else float("inf")
    frame.attrs["skipped"] = len(dataset.skipped)
    return frame
