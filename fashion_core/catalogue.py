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
import io
import math
import os
import shutil
import stat
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePosixPath

import numpy as np

from .data import Dataset
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

# Zip-bomb limits for an uploaded catalogue.
MAX_ZIP_MEMBERS = 200_000
MAX_ZIP_TOTAL_BYTES = 8 * 1024**3
MAX_ZIP_MEMBER_BYTES = MAX_FILE_BYTES
MAX_ZIP_RATIO = 200  # uncompressed / compressed size of one member
ZIP_CHUNK = 1024 * 1024

DEMO_CLASSES = ("bag", "shirt", "trousers")


# --- loading -------------------------------------------------------------------------------------


def load_catalogue(path, image_size=28, color=False, test_fraction=0.2, seed=0, max_images=None,
                   progress=None):
    """Read a catalogue folder or ``path,label`` CSV into a ``Dataset``.

    Parameters
    ----------
    path : str or Path
        A folder with one subfolder per class (subfolder name = class name, images anywhere
        below it), or a ``.csv`` file with a header holding ``path`` and ``label`` columns
        (relative paths are resolved against the CSV's folder).
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
    if root.is_dir():
        files, labels, skipped = _list_folder(root)
        name, base = root.name, root
    elif root.suffix.lower() == ".csv":
        files, labels, skipped = _list_csv(root)
        name, base = root.stem, root.parent
    else:
        raise DataError(f"{root}: expected a folder with one subfolder per class or a .csv file of path,label.")

    class_names = tuple(sorted(set(labels)))
    if len(class_names) < 2:
        raise DataError(f"{root}: found {len(class_names)} class(es) with images; a catalogue needs at least 2.")
    y_all = np.array([class_names.index(label) for label in labels], dtype=np.int64)
    if max_images is not None and max_images < len(files):
        keep = _stratified_sample(y_all, max_images, seed)
        files, y_all = [files[i] for i in keep], y_all[keep]

    image_shape = (image_size, image_size, 3 if color else 1)
    _check_memory(len(files), image_shape)
    images, readable, decode_skipped = decode_files(files, image_shape, base, progress)
    skipped = skipped + decode_skipped
    images, y_all = images[readable], y_all[readable]

    counts = np.bincount(y_all, minlength=len(class_names))
    too_small = [f"{c} ({n})" for c, n in zip(class_names, counts) if n < MIN_IMAGES_PER_CLASS]
    if too_small:
        raise DataError(
            f"{root}: every class needs at least {MIN_IMAGES_PER_CLASS} readable images; "
            f"too few in: {', '.join(too_small)}. Add images or remove those classes."
        )

    train_idx, test_idx = stratified_split(y_all, test_fraction, seed)
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


def _visible(path):
    return not path.name.startswith(".") and path.name not in IGNORED_NAMES


def _list_folder(root):
    """Files and class labels of a folder catalogue, sorted so reloading is deterministic."""
    try:
        class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and _visible(p))
    except OSError as exc:
        raise DataError(f"{root}: cannot list the folder ({exc.strerror or exc}).") from None
    if not class_dirs:
        raise DataError(f"{root}: no class subfolders; put each class's images in its own subfolder.")
    files, labels = [], []
    for class_dir in class_dirs:
        for dirpath, dirnames, filenames in os.walk(class_dir):
            dirnames[:] = sorted(d for d in dirnames if _visible(Path(d)))
            for filename in sorted(filenames):
                file = Path(dirpath) / filename
                if _visible(file):
                    files.append(file)
                    labels.append(class_dir.name)
    return files, labels, []


def _list_csv(csv_path):
    """Files and labels listed in a ``path,label`` CSV; rows without both are skipped."""
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            columns = [c.strip().lower() for c in (reader.fieldnames or [])]
            if not set(CSV_COLUMNS) <= set(columns):
                raise DataError(f"{csv_path}: the header must name the columns 'path' and 'label'; found {columns}.")
            reader.fieldnames = columns
            rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{csv_path}: not a readable CSV file ({exc}).") from None
    files, labels, skipped = [], [], []
    for line, row in enumerate(rows, start=2):
        file, label = (row.get("path") or "").strip(), (row.get("label") or "").strip()
        if not file or not label:
            skipped.append((f"{csv_path.name}:{line}", "row without a path or a label"))
            continue
        file = Path(file).expanduser()
        files.append(file if file.is_absolute() else csv_path.parent / file)
        labels.append(label)
    return files, labels, skipped


def _stratified_sample(labels, limit, seed):
    """Indices of a seeded sample of ``limit`` items keeping class shares (>= 2 per class)."""
    rng = np.random.default_rng(seed)
    counts = np.bincount(labels)
    quotas = np.maximum(np.minimum(counts, MIN_IMAGES_PER_CLASS), np.floor(counts * limit / len(labels)).astype(int))
    keep = [np.sort(rng.permutation(np.flatnonzero(labels == c))[:q]) for c, q in enumerate(quotas)]
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


# --- uploaded zip ----------------------------------------------------------------------------------


def _safe_member_path(info):
    """The member's relative path parts, or a DataError for anything that could escape."""
    raw = info.filename.replace("\\", "/")
    if raw.startswith("/") or (len(raw) > 1 and raw[1] == ":"):
        raise DataError(f"zip member {info.filename!r} has an absolute path; refusing the archive.")
    parts = [p for p in PurePosixPath(raw).parts if p not in ("", ".")]
    if ".." in parts:
        raise DataError(f"zip member {info.filename!r} points outside the archive ('..'); refusing the archive.")
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        raise DataError(f"zip member {info.filename!r} is a symbolic link; refusing the archive.")
    return parts


def extract_catalogue_zip(data, destination):
    """Safely extract an uploaded ``.zip`` of a catalogue folder.

    Refuses (``DataError``) absolute paths, ``..`` members, symbolic links, more than
    ``MAX_ZIP_MEMBERS`` members and zip bombs (size and compression-ratio limits, enforced while
    writing, not only from the headers). ``__MACOSX`` and hidden files are left out.

    Parameters
    ----------
    data : bytes
        The zip file's content.
    destination : str or Path
        An empty or not yet existing folder to extract into.

    Returns
    -------
    Path
        The folder holding the class subfolders (descends through single top-level folders).
    """
    destination = Path(destination)
    if destination.exists() and (not destination.is_dir() or any(destination.iterdir())):
        raise DataError(f"{destination}: the extraction folder must be empty.")
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        raise DataError(f"the upload is not a readable zip file ({exc}).") from None
    with archive:
        members = archive.infolist()
        if len(members) > MAX_ZIP_MEMBERS:
            raise DataError(f"the zip holds {len(members)} entries; at most {MAX_ZIP_MEMBERS} are allowed.")
        planned = [(info, _safe_member_path(info)) for info in members]  # validate all before writing
        declared = sum(info.file_size for info in members)
        if declared > MAX_ZIP_TOTAL_BYTES:
            raise DataError(f"the zip would unpack to {declared / 1024**3:.1f} GiB; at most "
                            f"{MAX_ZIP_TOTAL_BYTES / 1024**3:.0f} GiB are allowed.")
        destination.mkdir(parents=True, exist_ok=True)
        written = 0
        try:
            for info, parts in planned:
                if not parts or any(not _visible(PurePosixPath(p)) for p in parts):
                    continue
                target = destination.joinpath(*parts)
                if info.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                written += _extract_member(archive, info, target, MAX_ZIP_TOTAL_BYTES - written)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, RuntimeError, EOFError) as exc:
            _empty_folder(destination)
            raise DataError(f"the zip file is damaged or uses an unsupported feature ({exc}).") from None
        except BaseException:
            _empty_folder(destination)  # no half-extracted catalogue (or bomb) stays behind
            raise
    return _catalogue_root(destination)


def _empty_folder(folder):
    for child in folder.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)


def _extract_member(archive, info, target, budget):
    """Stream one member to ``target`` within the size limits; returns bytes written."""
    limit = min(MAX_ZIP_MEMBER_BYTES, budget, max(info.compress_size, 1) * MAX_ZIP_RATIO)
    if info.file_size > limit:
        raise DataError(f"zip member {info.filename!r} is too large or too compressed; refusing the archive.")
    target.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    with archive.open(info) as source, open(target, "wb") as sink:
        while chunk := source.read(ZIP_CHUNK):
            written += len(chunk)
            if written > limit:  # headers can lie; count what really comes out
                sink.close()
                target.unlink()
                raise DataError(f"zip member {info.filename!r} unpacks beyond its limits; refusing the archive.")
            sink.write(chunk)
    return written


def _catalogue_root(folder):
    """Descend through a single wrapping folder (``catalogue.zip`` → ``catalogue/``) to the
    folder whose subfolders are the classes."""
    folder = Path(folder)
    while True:
        children = [p for p in folder.iterdir() if _visible(p)]
        if len(children) == 1 and children[0].is_dir() and any(p.is_dir() and _visible(p) for p in children[0].iterdir()):
            folder = children[0]
        else:
            return folder


# --- demo catalogue ---------------------------------------------------------------------------------


def make_demo_catalogue(destination, n_per_class=30, seed=0, size=64):
    """Write a small catalogue of simple colour product shots on white: ``bag``, ``shirt`` and
    ``trousers`` drawn with Pillow in random colours, positions and sizes, in varied image sizes
    and formats (PNG and JPEG) — for tests and the dashboard's demo button.

    Returns
    -------
    Path
        ``destination``, holding one subfolder per class.
    """
    from PIL import Image, ImageDraw

    if n_per_class < MIN_IMAGES_PER_CLASS or size < 16:
        raise InvalidParameterError(f"a demo catalogue needs n_per_class >= {MIN_IMAGES_PER_CLASS} and size >= 16.")
    destination = Path(destination)
    rng = np.random.default_rng(seed)
    drawers = {"bag": _draw_bag, "shirt": _draw_shirt, "trousers": _draw_trousers}
    for class_name in DEMO_CLASSES:
        folder = destination / class_name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(n_per_class):
            width = int(size * rng.uniform(1.0, 1.5))  # product photos come in many sizes
            background = tuple(int(v) for v in rng.integers(235, 256, size=3))
            image = Image.new("RGB", (width, size), background)
            colour = tuple(int(v) for v in rng.integers(0, 180, size=3))
            scale = rng.uniform(0.7, 0.9) * size
            centre = (width / 2 + rng.uniform(-0.08, 0.08) * size, size / 2 + rng.uniform(-0.08, 0.08) * size)
            drawers[class_name](ImageDraw.Draw(image), centre, scale, colour)
            if i % 2:
                image.save(folder / f"{class_name}_{i:03d}.jpg", quality=90)
            else:
                image.save(folder / f"{class_name}_{i:03d}.png")
    return destination


def _box(centre, scale, x0, y0, x1, y1):
    """Shape coordinates given in a unit square [-0.5, 0.5] around ``centre``."""
    cx, cy = centre
    return [cx + x0 * scale, cy + y0 * scale, cx + x1 * scale, cy + y1 * scale]


def _draw_bag(draw, centre, scale, colour):
    draw.rounded_rectangle(_box(centre, scale, -0.45, -0.1, 0.45, 0.45), radius=scale * 0.06, fill=colour)
    draw.arc(_box(centre, scale, -0.25, -0.45, 0.25, 0.1), 180, 360, fill=colour, width=max(2, int(scale * 0.06)))


def _draw_shirt(draw, centre, scale, colour):
    cx, cy = centre
    s = scale
    body = [(-0.25, -0.45), (0.25, -0.45), (0.5, -0.2), (0.38, -0.05), (0.25, -0.15),
            (0.25, 0.45), (-0.25, 0.45), (-0.25, -0.15), (-0.38, -0.05), (-0.5, -0.2)]
    draw.polygon([(cx + x * s, cy + y * s) for x, y in body], fill=colour)


def _draw_trousers(draw, centre, scale, colour):
    cx, cy = centre
    s = scale
    legs = [(-0.25, -0.45), (0.25, -0.45), (0.3, 0.45), (0.06, 0.45), (0.0, -0.1),
            (-0.06, 0.45), (-0.3, 0.45)]
    draw.polygon([(cx + x * s, cy + y * s) for x, y in legs], fill=colour)
