"""The corrections catalogue: photos a person said a model got wrong, with the right class.

A folder (``models/_corrections/`` beside the registry by default, ``$FASHION_CORRECTIONS_DIR``
or an argument elsewhere) that is an ordinary catalogue CSV the loader already reads::

    _corrections/labels.csv         path,label,model,added_at,name  (one row per photo)
    _corrections/images/<id>.jpg    the photo's original bytes; <id> is a hash of them

so the Data-source sidebar offers it like any catalogue, and ``finetune`` trains on it. The
same photo corrected twice keeps one row with the latest label. Every write is atomic (a
temporary file renamed into place) and serialised by a lock file, so the CSV is never half
written and two sessions never lose each other's rows; an image is written before its row and
removed after it, so a row never points at a missing file.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as _dt
import hashlib
import io
import os
import threading
from dataclasses import asdict, dataclass
from pathlib import Path

from .catalogue import MIN_IMAGES_PER_CLASS
from .errors import DataError, FashionError, InvalidParameterError
from .preprocess import check_upload_size, decode_image
from .registry import CORRECTIONS_DIR, Registry, write_bytes_atomic

CORRECTIONS_ENV = "FASHION_CORRECTIONS_DIR"
LABELS_FILE = "labels.csv"
IMAGES_DIR = "images"
COLUMNS = ("path", "label", "model", "added_at", "name")
EXTENSIONS = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp", "BMP": ".bmp", "GIF": ".gif", "MPO": ".jpg"}
MAX_LABEL_LENGTH = 64
_LOCK = threading.Lock()


@dataclass(frozen=True)
class Correction:
    """One stored photo: ``id`` (hash of its bytes), ``path`` (relative to the store), ``label``,
    the ``model`` it corrected, ``added_at`` (UTC, ISO) and the photo's original ``name``."""

    id: str
    path: str
    label: str
    model: str = ""
    added_at: str = ""
    name: str = ""

    def row(self):
        return {k: v for k, v in asdict(self).items() if k in COLUMNS}


def default_corrections_dir(registry=None):
    """``$FASHION_CORRECTIONS_DIR``, else ``_corrections`` inside the registry's folder."""
    env = os.environ.get(CORRECTIONS_ENV)
    return Path(env) if env else (registry or Registry()).root / CORRECTIONS_DIR


def check_label(label, class_names=None):
    """``label`` stripped, if it is one of ``class_names`` (any short label without them);
    else ``InvalidParameterError`` naming the choices."""
    text = label.strip() if isinstance(label, str) else ""
    if class_names is not None and text not in list(class_names):
        raise InvalidParameterError(f"{label!r} is not one of the model's classes; choose one of: {', '.join(class_names)}.")
    if not text or len(text) > MAX_LABEL_LENGTH or not text.isprintable():
        raise InvalidParameterError(f"a label must be 1–{MAX_LABEL_LENGTH} printable characters; got {label!r}.")
    return text


class CorrectionsStore:
    """Add, relabel, delete and list corrections in one folder (see the module docstring)."""

    def __init__(self, root=None, registry=None):
        self.root = Path(root) if root else default_corrections_dir(registry)
        self._registry = registry

    @property
    def csv_path(self):
        return self.root / LABELS_FILE

    # --- reading -------------------------------------------------------------------------------

    def list(self):
        """Every correction, oldest first (the CSV's order). Rows without a path or label, or
        whose path leaves the folder, are ignored."""
        try:
            with open(self.csv_path, newline="", encoding="utf-8") as handle:
                rows = list(csv.DictReader(handle))
        except FileNotFoundError:
            return []
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            raise DataError(f"{self.csv_path}: not a readable corrections file ({exc}).") from None
        out = []
        for row in rows:
            path, label = (row.get("path") or "").strip(), (row.get("label") or "").strip()
            if not path or not label or not _inside(path):
                continue
            out.append(Correction(Path(path).stem, path, label, *((row.get(k) or "") for k in COLUMNS[2:])))
        return out

    def get(self, correction_id):
        for correction in self.list():
            if correction.id == correction_id:
                return correction
        raise DataError(f"no correction {correction_id!r} in {self.root}.")

    def image_bytes(self, correction_id):
        """The stored photo's original bytes."""
        return (self.root / self.get(correction_id).path).read_bytes()

    def counts(self, class_names=None):
        """``{label: photos}``, only labels in ``class_names`` when given."""
        counts = {}
        for correction in self.list():
            if class_names is None or correction.label in class_names:
                counts[correction.label] = counts.get(correction.label, 0) + 1
        return counts

    def is_catalogue(self):
        """True when the catalogue loader accepts it: two classes with ``MIN_IMAGES_PER_CLASS``
        photos each (classes with fewer are listed as too small by the loader)."""
        counts = self.counts()
        return len(counts) >= 2 and min(counts.values()) >= MIN_IMAGES_PER_CLASS

    # --- writing -------------------------------------------------------------------------------

    def add(self, data, label, model=None, class_names=None, name="photo"):
        """Store a photo's original bytes with its right ``label``; returns the ``Correction``.

        ``model`` (a registry name or ``ModelEntry``) is the model that got it wrong; its class
        names are the allowed labels (or ``class_names``). The bytes are checked like an upload
        (size limit, a decodable image) before anything is written: ``ImageError`` otherwise.
        The same photo added again keeps one row, with the new label.
        """
        model_name, class_names = self._model_classes(model, class_names)
        label = check_label(label, class_names)
        if isinstance(data, (bytearray, memoryview)):
            data = bytes(data)
        if isinstance(data, bytes):
            check_upload_size(len(data), name)
        decode_image(data, name)  # ImageError for anything that is not a safe image (or not bytes)
        from PIL import Image

        with Image.open(io.BytesIO(data)) as image:
            extension = EXTENSIONS.get(image.format or "", ".img")
        correction_id = hashlib.sha256(data).hexdigest()[:20]
        correction = Correction(correction_id, f"{IMAGES_DIR}/{correction_id}{extension}", label, model_name,
                                _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                                _clean_name(name))
        with self._locked():
            image_path = self.root / correction.path
            if not image_path.is_file():
                _write_atomic(image_path, data)
            rows = [c for c in self.list() if c.id != correction_id]
            self._write_rows(rows + [correction])
        return correction

    def relabel(self, correction_id, label, class_names=None):
        """Give a stored photo another label (one of ``class_names`` when given, else of the
        classes of the model it corrected when that model is still in the registry)."""
        with self._locked():
            rows = self.list()
            current = next((c for c in rows if c.id == correction_id), None)
            if current is None:
                raise DataError(f"no correction {correction_id!r} in {self.root}.")
            if class_names is None and current.model:
                class_names = self._model_classes(current.model, None, missing_ok=True)[1]
            label = check_label(label, class_names)
            updated = Correction(**{**asdict(current), "label": label})
            self._write_rows([updated if c.id == correction_id else c for c in rows])
        return updated

    def delete(self, correction_id):
        """Remove a correction: its row first, then its photo."""
        with self._locked():
            rows = self.list()
            gone = [c for c in rows if c.id == correction_id]
            if not gone:
                raise DataError(f"no correction {correction_id!r} in {self.root}.")
            self._write_rows([c for c in rows if c.id != correction_id])
            (self.root / gone[0].path).unlink(missing_ok=True)

    def csv_for(self, class_names):
        """A ``path,label`` CSV of the corrections whose labels are ``class_names`` (what a model
        of those classes can be fine-tuned on): the store's own file when every row fits, else
        ``for-<hash>.csv`` in the store (absolute paths; written atomically). Raises
        ``DataError`` when no correction fits."""
        rows = self.list()
        fitting = [c for c in rows if c.label in class_names]
        if not fitting:
            raise DataError(f"none of your corrections is labelled with one of: {', '.join(class_names)}.")
        if len(fitting) == len(rows):
            return self.csv_path
        digest = hashlib.sha1("\n".join(class_names).encode()).hexdigest()[:12]
        path = self.root / f"for-{digest}.csv"
        with self._locked():
            _write_atomic(path, _csv_text([{**c.row(), "path": str((self.root / c.path).resolve())} for c in fitting]))
        return path

    # --- internals -----------------------------------------------------------------------------

    def _model_classes(self, model, class_names, missing_ok=False):
        """``(model name, allowed labels)`` from a registry name or entry."""
        if model is None:
            return "", class_names
        if isinstance(model, str):
            try:
                model = (self._registry or Registry()).get(model)
            except FashionError:
                if missing_ok:
                    return str(model), class_names
                raise
        names = class_names if class_names is not None else model.metadata.get("class_names")
        return model.name, names

    def _write_rows(self, corrections):
        _write_atomic(self.csv_path, _csv_text([c.row() for c in corrections]))

    @contextlib.contextmanager
    def _locked(self):
        """One writer at a time: a thread lock, and an ``flock`` on ``.lock`` across processes."""
        self.root.mkdir(parents=True, exist_ok=True)
        with _LOCK, open(self.root / ".lock", "a") as handle:
            try:
                import fcntl

                fcntl.flock(handle, fcntl.LOCK_EX)
            except ImportError:  # not POSIX: the thread lock still serialises one process
                pass
            yield


def _inside(path):
    parts = Path(path).parts
    return not Path(path).is_absolute() and ".." not in parts and len(parts) == 2 and parts[0] == IMAGES_DIR


def _clean_name(name):
    text = "".join(ch for ch in str(name or "photo") if ch.isprintable())
    return Path(text).name[:120] or "photo"


def _csv_text(rows):
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue().encode("utf-8")


def _write_atomic(path, data):
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(path, data)
