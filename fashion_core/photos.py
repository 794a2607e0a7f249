"""Real photos: the labelled product shots and phone photos that teach a model what uploads look like.

The folder (``../shared/data/real-photos`` on our machines, ``$FASHION_PHOTOS_DIR`` elsewhere) has
``labels.csv`` (``file, label, class_name, domain, split, group, ...``) and ``images/``. Labels are
Fashion-MNIST class indices, or -1 for "none of the ten classes" (watches, caps, skirts, ...).

Every photo goes through ``preprocess.prepare_image``, the path uploads take, so a model trained
on these arrays sees at training time exactly what it sees in the dashboard. Decoding 11,000
photos takes a minute, so the arrays are cached on disk, keyed by the labels file and the image shape;
see ``diskcache``.
"""

from __future__ import annotations

import csv
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .classes import FASHION_MNIST_CLASSES
from .diskcache import cache_path, read_npz, write_npz
from .data import sample_indices
from .errors import DataError, InvalidParameterError

PHOTOS_DIR_ENV = "FASHION_PHOTOS_DIR"
LABELS_FILE = "labels.csv"
OTHER_LABEL = -1
OTHER_NAME = "other"
DOMAINS = ("catalogue", "phone")
SPLITS = ("train", "val")
REQUIRED_COLUMNS = ("file", "label", "domain", "split", "group")
FASHION_VALIDATION = 2000  # Fashion-MNIST images in a photo model's validation set
MAX_REPLAY = 60000 - FASHION_VALIDATION
MAX_PHONE_REPEAT = 20
_COLUMNS = ("images", "labels", "domains", "splits", "groups", "files", "skipped")


@dataclass
class PhotoSet:
    """Preprocessed real photos with their labels.

    Attributes
    ----------
    images : ndarray of shape (n, H, W, C), uint8
        What the model sees (garment bright on black), as ``prepare_image`` makes it.
    labels : ndarray of shape (n,), int64
        Fashion-MNIST class index, or -1 (``OTHER_LABEL``) for none of the ten classes.
    domains, splits, groups, files : ndarray of shape (n,), str
    skipped : list of (str, str)
        Files that could not be read, with the reason.
    """

    images: np.ndarray
    labels: np.ndarray
    domains: np.ndarray
    splits: np.ndarray
    groups: np.ndarray
    files: np.ndarray
    skipped: list

    def __len__(self):
        return len(self.labels)

    def select(self, mask):
        """A PhotoSet of the rows where ``mask`` (bool or index array) is set."""
        return PhotoSet(self.images[mask], self.labels[mask], self.domains[mask], self.splits[mask],
                        self.groups[mask], self.files[mask], self.skipped)

    def where(self, split=None, domain=None):
        """Rows of one split and/or domain."""
        mask = np.ones(len(self), dtype=bool)
        if split is not None:
            mask &= self.splits == split
        if domain is not None:
            mask &= self.domains == domain
        return self.select(mask)

    @property
    def in_class(self):
        """Bool mask of photos that belong to one of the ten classes."""
        return self.labels >= 0


def find_photos_dir(folder=None):
    """The real-photos folder: ``folder``, else ``$FASHION_PHOTOS_DIR``, else
    ``../shared/data/real-photos`` beside the project; raises DataError saying what to do when it
    has no ``labels.csv``."""
    candidate = folder or os.environ.get(PHOTOS_DIR_ENV) or \
        Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "real-photos"
    if (Path(candidate) / LABELS_FILE).is_file():
        return Path(candidate).resolve()
    raise DataError(f"real photos not found: {candidate} has no {LABELS_FILE}. Point {PHOTOS_DIR_ENV} at the "
                    "real-photos folder (labels.csv + images/).")


def read_labels(root):
    """Rows of ``labels.csv`` as dicts, validated (columns, label range, split and domain names)."""
    path = Path(root) / LABELS_FILE
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            missing = set(REQUIRED_COLUMNS) - set(reader.fieldnames or ())
            if missing:
                raise DataError(f"{path}: missing columns {sorted(missing)}.")
            rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{path}: not a readable CSV file ({exc}).") from None
    for line, row in enumerate(rows, start=2):
        try:
            label = int(row["label"])
        except ValueError:
            raise DataError(f"{path}:{line}: label {row['label']!r} is not a number.") from None
        if not OTHER_LABEL <= label < len(FASHION_MNIST_CLASSES):
            raise DataError(f"{path}:{line}: label {label} outside -1..{len(FASHION_MNIST_CLASSES) - 1}.")
        if row["split"] not in SPLITS or row["domain"] not in DOMAINS:
            raise DataError(f"{path}:{line}: unknown split {row['split']!r} or domain {row['domain']!r}.")
        row["label"] = label
    return rows


def _cache_path(root, image_shape):
    digest = hashlib.sha1((Path(root) / LABELS_FILE).read_bytes()).hexdigest()[:12]
    return cache_path(f"real-photos-{digest}-{'x'.join(map(str, image_shape))}")


def load_photos(image_shape, folder=None, progress=None, use_cache=True):
    """Every real photo, preprocessed for a model of ``image_shape``.

    Parameters
    ----------
    image_shape : tuple (H, W, C)
    folder : path, optional
        The real-photos folder (default: see ``find_photos_dir``).
    progress : callable(done, total), optional
        Called while decoding (only when the cache is cold).
    use_cache : bool
        Read and write the on-disk cache.

    Returns
    -------
    PhotoSet
    """
    from .catalogue import decode_files

    root = find_photos_dir(folder)
    image_shape = tuple(int(d) for d in image_shape)
    rows = read_labels(root)
    cached = _cache_path(root, image_shape) if use_cache else None
    data = read_npz(cached) if cached is not None else None
    if data is not None and set(_COLUMNS) <= set(data) and len(data["labels"]) + len(data["skipped"]) == len(rows):
        return PhotoSet(*(data[c] for c in _COLUMNS[:-1]), [tuple(s) for s in data["skipped"]])
    files = [root / row["file"] for row in rows]
    images, readable, skipped = decode_files(files, image_shape, root, progress)
    columns = {key: np.array([row[key] for row in rows])[readable] for key in ("domain", "split", "group", "file")}
    photos = PhotoSet(images[readable], np.array([r["label"] for r in rows], np.int64)[readable],
                      columns["domain"], columns["split"], columns["group"], columns["file"], skipped)
    if cached is not None:
        write_npz(cached, **{c: getattr(photos, c) for c in _COLUMNS[:-1]},
                  skipped=np.array(photos.skipped, dtype=str).reshape(-1, 2))
    return photos


def holdout_groups(photos, fraction, seed=0):
    """Bool mask of a seeded share of ``photos``' groups (senders, products), per domain, so no
    room or product is on both sides: the model's validation and calibration photos."""
    rng = np.random.default_rng(seed)
    mask = np.zeros(len(photos), dtype=bool)
    for domain in DOMAINS:
        groups = np.unique(photos.groups[photos.domains == domain])
        chosen = groups[rng.permutation(len(groups))[: int(round(fraction * len(groups)))]]
        mask |= (photos.domains == domain) & np.isin(photos.groups, chosen)
    return mask


def photo_training_dataset(image_shape, folder=None, replay=12000, holdout=0.15, seed=0, progress=None,
                           outliers=True, phone_repeat=1):
    """Fashion-MNIST plus the real photos' train split, for a model that must work on photos.

    Parameters
    ----------
    image_shape : tuple (H, W, C)
    folder : path, optional
        The real-photos folder.
    replay : int
        Fashion-MNIST training images mixed in (a seeded sample), so the model keeps what it knew.
    holdout : float
        Share of the train split's senders / products held out (``holdout_groups``) as the
        validation set (with 2,000 other Fashion-MNIST training images), and later for
        calibrating the "none of these" flag. The val split is never touched: bench reports it.
    seed : int
    outliers : bool
        Teach the train photos of none of the classes as "no class" (outlier exposure).
    phone_repeat : int
        Each in-class phone photo appears this many times per epoch: there are four times fewer
        phone photos than product shots, and they are what people take.

    Returns
    -------
    Dataset
        Test set and ``spec``: Fashion-MNIST's official test set at this shape (what Evaluate
        shows, loadable without the photos); ``x_outliers``: the train photos of none of the
        classes; ``additions``: the recipe, stored with the model.
    """
    from .data import Dataset, load_fashion_mnist

    height, width, channels = (int(d) for d in image_shape)
    if not 1 <= int(phone_repeat) <= MAX_PHONE_REPEAT:
        raise InvalidParameterError(f"phone repeat must be between 1 and {MAX_PHONE_REPEAT}; got {phone_repeat}.")
    if not 0 <= int(replay) <= MAX_REPLAY:
        raise InvalidParameterError(f"replay must be between 0 and {MAX_REPLAY} Fashion-MNIST images; got {replay}.")
    fashion = load_fashion_mnist(image_size=height, color=channels == 3)
    photos = load_photos((height, width, channels), folder, progress).where(split="train")
    held = holdout_groups(photos, holdout, seed)
    fitted, validation = photos.select(~held), photos.select(held)
    order = np.random.default_rng(seed).permutation(len(fashion.y_train))
    replay_idx, replay_val = order[:replay], order[replay: replay + FASHION_VALIDATION]
    keep = fitted.in_class
    repeats = np.where(fitted.domains == "phone", int(phone_repeat), 1)[keep]
    photo_x, photo_y = np.repeat(fitted.images[keep], repeats, axis=0), np.repeat(fitted.labels[keep], repeats)
    return Dataset(
        name=f"{fashion.name} + real photos",
        class_names=fashion.class_names,
        x_train=np.concatenate([fashion.x_train[replay_idx], photo_x]),
        y_train=np.concatenate([fashion.y_train[replay_idx], photo_y]),
        x_test=fashion.x_test,
        y_test=fashion.y_test,
        spec=fashion.spec,
        source=f"{fashion.source} + {find_photos_dir(folder)}",
        x_val=np.concatenate([fashion.x_train[replay_val], validation.images[validation.in_class]]),
        y_val=np.concatenate([fashion.y_train[replay_val], validation.labels[validation.in_class]]),
        x_outliers=fitted.images[~keep] if outliers else None,
        additions={"photos": {"replay": int(replay), "holdout": float(holdout), "seed": int(seed),
                              "phone_repeat": int(phone_repeat),
                              "train_photos": int(keep.sum()), "outlier_photos": int((~keep).sum()) if outliers else 0,
                              "validation_photos": int(len(validation))}},
    )


def calibration_photos(image_shape, recipe, folder=None):
    """The held-out train-split photos of a photo model's recipe (``additions["photos"]``)."""
    photos = load_photos(image_shape, folder).where(split="train")
    return photos.select(holdout_groups(photos, recipe["holdout"], recipe["seed"]))


def photo_report(classifier, folder=None, split="val", limit=None, seed=0, batch=64):
    """How a classifier does on real photos, through the whole upload path (file bytes →
    preprocess → model → flags), per domain and per class, with the "none of these" flag rates.

    Parameters
    ----------
    classifier : inference.Classifier
    folder : path, optional
    split : "train" or "val"
    limit : int, optional
        A seeded sample of at most this many photos (quick runs).

    Returns
    -------
    dict
        ``n``, ``domains`` ({domain: {"accuracy", "n"}}, in-class photos), ``per_class`` (list of
        ``{"class", domain: accuracy or None, "n_" + domain}``), ``other_flagged`` (share of the
        photos of none of the classes that are flagged), ``correct_flagged`` (share of the
        correctly classified in-class photos that are flagged), ``n_other``, ``n_correct``,
        ``unreadable``.
    """
    if tuple(classifier.class_names) != FASHION_MNIST_CLASSES:
        raise InvalidParameterError("real photos are labelled in Fashion-MNIST's ten classes; this model has others.")
    root = find_photos_dir(folder)
    rows = [r for r in read_labels(root) if r["split"] == split]
    if limit and limit < len(rows):
        keep = sample_indices(len(rows), limit, seed)
        rows = [rows[i] for i in keep]
    labels = np.array([r["label"] for r in rows], np.int64)
    domains = np.array([r["domain"] for r in rows])
    predicted = np.full(len(rows), -2, np.int64)
    flagged = np.zeros(len(rows), bool)
    for start in range(0, len(rows), batch):
        items = [(r["file"], (root / r["file"]).read_bytes()) for r in rows[start: start + batch]]
        for i, result in enumerate(classifier.classify_many(items), start=start):
            if not isinstance(result, Exception):
                predicted[i], flagged[i] = result.class_index, result.flagged
    readable = predicted != -2
    inside = readable & (labels >= 0)
    other = readable & (labels < 0)
    correct = inside & (predicted == labels)
    report = {"split": split, "n": int(readable.sum()), "unreadable": int((~readable).sum()), "domains": {}, "per_class": []}
    for domain in DOMAINS:
        sel = inside & (domains == domain)
        report["domains"][domain] = {"accuracy": float(correct[sel].mean()) if sel.any() else None, "n": int(sel.sum())}
    for c, name in enumerate(classifier.class_names):
        row = {"class": name}
        for domain in DOMAINS:
            sel = inside & (domains == domain) & (labels == c)
            row[domain], row[f"n_{domain}"] = (float(correct[sel].mean()) if sel.any() else None), int(sel.sum())
        report["per_class"].append(row)
    report.update({
        "other_flagged": float(flagged[other].mean()) if other.any() else None,
        "correct_flagged": float(flagged[correct].mean()) if correct.any() else None,
        "n_other": int(other.sum()),
        "n_correct": int(correct.sum()),
    })
    return report


# --- a product catalogue from the real photos' product shots -----------------------------------------

# The 20 Myntra article types of issue 17's product catalogue (``orig_label`` = ``articleType=…``).
PRODUCT_ARTICLE_TYPES = (
    "Belts", "Casual Shoes", "Flip Flops", "Formal Shoes", "Handbags", "Heels", "Jeans", "Kurtas",
    "Sandals", "Shirts", "Socks", "Sports Shoes", "Sunglasses", "Sweaters", "Sweatshirts", "Tops",
    "Trousers", "Tshirts", "Wallets", "Watches",
)
# Shopper keywords per article type, written into the catalogue's ``keywords`` column.
PRODUCT_KEYWORDS = {
    "Belts": "belt; leather belt; buckle; waist belt",
    "Casual Shoes": "casual shoes; loafers; canvas shoes; everyday shoes",
    "Flip Flops": "flip flops; slippers; beach sandals; chappals",
    "Formal Shoes": "formal shoes; oxfords; derby; office shoes",
    "Handbags": "handbag; shoulder bag; tote; purse",
    "Heels": "heels; stilettos; pumps; wedges",
    "Jeans": "jeans; denim; slim fit; straight fit",
    "Kurtas": "kurta; ethnic wear; kurti; tunic",
    "Sandals": "sandals; floaters; strappy sandals; open toe",
    "Shirts": "shirt; casual shirt; formal shirt; button-down",
    "Socks": "socks; ankle socks; crew socks; pack of socks",
    "Sports Shoes": "sports shoes; running shoes; trainers; sneakers",
    "Sunglasses": "sunglasses; shades; aviators; wayfarers",
    "Sweaters": "sweater; pullover; cardigan; knitwear",
    "Sweatshirts": "sweatshirt; hoodie; fleece; crew neck sweatshirt",
    "Tops": "top; blouse; tunic top; crop top",
    "Trousers": "trousers; chinos; formal trousers; pants",
    "Tshirts": "t-shirt; tee; polo; round neck",
    "Wallets": "wallet; card holder; leather wallet; purse",
    "Watches": "watch; analog watch; chronograph; wrist watch",
}
PRODUCT_PER_CLASS = 300


def product_catalogue_rows(folder=None, article_types=PRODUCT_ARTICLE_TYPES, per_class=PRODUCT_PER_CLASS, seed=0):
    """A product catalogue of Myntra article types from the real photos' product shots.

    At most ``per_class`` photos per type; its test share is taken from the real photos' *val*
    split only and its training share from the *train* split (``photo_net`` was trained on the
    train split, so a test photo is one no shipped model has seen). A type with more photos
    keeps its val : train proportion in a seeded sample.

    Returns
    -------
    list of dict
        ``path`` (absolute), ``label`` (the article type), ``split`` (``train`` / ``test``),
        ``keywords`` (``PRODUCT_KEYWORDS``, ';'-separated), sorted by label, split, path.
    """
    root = find_photos_dir(folder)
    wanted = set(article_types)
    by_type = {}
    for row in read_labels(root):
        kind = row.get("orig_label", "").removeprefix("articleType=")
        if row["domain"] == "catalogue" and kind in wanted:
            by_type.setdefault(kind, {"train": [], "val": []})[row["split"]].append(row["file"])
    missing = sorted(wanted - set(by_type))
    if missing:
        raise DataError(f"{root}: no product shots of {', '.join(missing)}.")
    rng = np.random.default_rng(seed)
    out = []
    for kind in sorted(by_type):
        train, val = sorted(by_type[kind]["train"]), sorted(by_type[kind]["val"])
        total = len(train) + len(val)
        n_test = len(val) if total <= per_class else int(round(per_class * len(val) / total))
        n_train = min(len(train), per_class - n_test)
        for split, files, n in (("train", train, n_train), ("test", val, n_test)):
            for i in np.sort(rng.permutation(len(files))[:n]):
                out.append({"path": str(root / files[i]), "label": kind, "split": split,
                            "keywords": PRODUCT_KEYWORDS.get(kind, kind.lower())})
    return out
