"""The model registry: the one module that knows the ``models/`` folder layout.

Layout (one folder per model)::

    models/<name>/model.keras        the classifier (model contract)
    models/<name>/autoencoder.keras  autoencoder-based models only (reconstructions, latent)
    models/<name>/metadata.json      architecture, hyper-parameters, dataset, metrics, command
    models/<name>/history.json       training curves per stage
    models/<name>/evaluation.json    test-set evaluation (confusion matrix, per class, mistakes)
    models/<name>/cv.json, sweep.json  optional experiment results
    models/<name>/calibration.json  confidence map fitted on the validation split, test-set ECE
    models/_audits/<name>.json   saved label audits (scan() skips "_" folders: never a model)
    models/_jobs/<id>/           background jobs' state (``jobs.JobStore``; never a model)
    models/_corrections/         the corrections catalogue (``corrections.py``: labels.csv + images/)

Saving is atomic: everything is written into a hidden temporary folder that is renamed into
place at the end, so a process killed mid-save leaves no half model in the listing. Loading
always uses Keras safe mode, so a model file can never run code.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import re
import shutil
import tempfile
import uuid
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import ensemble
from .data import FASHION_MNIST_SPEC
from .errors import InvalidNameError, InvalidParameterError, ModelFileError, ModelNotFoundError

MODELS_DIR_ENV = "FASHION_MODELS_DIR"
MODEL_FILE = "model.keras"
AUTOENCODER_FILE = "autoencoder.keras"
METADATA_FILE = "metadata.json"
HISTORY_FILE = "history.json"
EVALUATION_FILE = "evaluation.json"
CALIBRATION_FILE = "calibration.json"
AUDITS_DIR = "_audits"  # scan() skips "_" folders, and no model name can start with "_"
JOBS_DIR = "_jobs"  # background jobs' state (``jobs.JobStore``), never a model
CORRECTIONS_DIR = "_corrections"  # the corrections catalogue (``corrections.CorrectionsStore``)
EXPERIMENT_FILES = {"cv": "cv.json", "sweep": "sweep.json"}
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
MAX_IMPORT_BYTES = 200 * 1024 * 1024


REPOSITORY_MODELS_DIR = Path(__file__).resolve().parent.parent / "models"  # resolved once: pages ask on every run


def default_models_dir():
    """``$FASHION_MODELS_DIR`` or the repository's ``models/`` folder."""
    env = os.environ.get(MODELS_DIR_ENV)
    return Path(env) if env else REPOSITORY_MODELS_DIR


def validate_name(name):
    """Return ``name`` if it is a safe model name, else raise ``InvalidNameError``.

    Allowed: 1–64 letters, digits, '_', '-', '.', starting with a letter or digit, and no '..'
    (so ``../x``, absolute paths and hidden folders are refused).
    """
    if not isinstance(name, str) or not name.strip():
        raise InvalidNameError("a model name is required.")
    if not NAME_PATTERN.match(name) or ".." in name:
        raise InvalidNameError(
            f"invalid model name {name!r}: use 1–64 letters, digits, '_', '-' or '.', "
            "starting with a letter or digit (no spaces, slashes or '..')."
        )
    return name


def suggest_name(text):
    """Turn any text into a valid model name (for default names in the dashboard)."""
    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "-", str(text)).strip("-._")[:64] or "model"
    return re.sub(r"\.{2,}", ".", cleaned)


def free_name(text, taken):
    """``suggest_name(text)``, with -2, -3, … added until it is not in ``taken``."""
    base = suggest_name(text)
    name, n = base, 2
    while name in taken:
        name, n = suggest_name(f"{base}-{n}"), n + 1
    return name


def _json_default(value):
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (Path,)):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def write_file_atomic(path, write):
    """Call ``write(handle)`` on a temporary file in ``path``'s folder, then rename it to ``path``,
    so readers see the old file or the new one, never half of one (a process killed mid-save
    leaves no partial file behind)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_bytes_atomic(path, data):
    """Write ``data`` (bytes) to ``path`` atomically (``write_file_atomic``)."""
    return write_file_atomic(path, lambda handle: handle.write(data))


def write_json_atomic(path, data):
    """Write JSON to ``path`` via a temporary file + rename (never a half-written file)."""
    write_bytes_atomic(path, json.dumps(data, indent=1, default=_json_default).encode("utf-8"))


def load_keras_file(path):
    """Load a ``.keras`` file in safe mode, turning every failure into a ``ModelFileError``."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path.name}: file not found.")
    if not zipfile.is_zipfile(path):
        raise ModelFileError(f"{path.name}: not a Keras model file (a .keras file is a zip archive).")
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
    except zipfile.BadZipFile as exc:
        raise ModelFileError(f"{path.name}: damaged archive ({exc}).") from None
    if "config.json" not in names:
        raise ModelFileError(f"{path.name}: not a Keras 3 model file (no config.json inside).")
    import keras

    try:
        return keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as exc:  # Keras raises many types; all mean "unusable file"
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if "lambda" in message.lower() or "safe_mode" in message or "unsafe" in message.lower():
            raise ModelFileError(
                f"{path.name}: refused: the model contains code (e.g. a Lambda layer), which safe "
                "mode never runs. Rebuild it with built-in layers only."
            ) from None
        raise ModelFileError(f"{path.name}: could not be loaded as a Keras model: {message[:300]}") from None


def check_classifier(model, image_shape, num_classes):
    """Check a loaded model against a dataset: input (H, W, C), class count, softmax output."""
    inputs = getattr(model, "inputs", None) or []
    if len(inputs) != 1:
        raise ModelFileError(f"the model must take one image input; it takes {len(inputs)}.")
    got = tuple(inputs[0].shape[1:])
    if got != tuple(image_shape):
        raise ModelFileError(
            f"the model expects images of shape {got}, but this dataset's images are {tuple(image_shape)}."
        )
    out_shape = tuple(model.outputs[0].shape[1:]) if getattr(model, "outputs", None) else ()
    if out_shape != (num_classes,):
        raise ModelFileError(f"the model outputs {out_shape}, but this dataset has {num_classes} classes.")
    probe = np.asarray(model(np.zeros((1, *image_shape), np.float32), training=False))
    if not np.all(np.isfinite(probe)) or abs(float(probe.sum()) - 1.0) > 1e-3 or probe.min() < -1e-6:
        raise ModelFileError("the model's output is not a probability distribution (softmax expected).")


@dataclass
class ModelEntry:
    """One usable model folder."""

    name: str
    path: Path
    metadata: dict

    @property
    def model_file(self):
        return self.path / MODEL_FILE

    @property
    def members(self):
        """The models an ensemble is built from (``ensemble.py``), in order; [] for a model of
        its own."""
        return ensemble.members_of(self.metadata)[0]

    @property
    def is_ensemble(self):
        return bool(self.members)

    @property
    def content_files(self):
        """The files the model is loaded from: its model file (and autoencoder), or an
        ensemble's members' model files. What the precomputed artefacts and caches are keyed by."""
        if self.is_ensemble:
            return [self.path.parent / member / MODEL_FILE for member in self.members]
        return [self.model_file] + ([self.path / AUTOENCODER_FILE] if self.has_autoencoder else [])

    @property
    def has_autoencoder(self):
        return (self.path / AUTOENCODER_FILE).is_file()

    @property
    def dataset_spec(self):
        """The recipe of the dataset the model was trained on (``loaders.load_dataset``)."""
        return model_dataset_spec(self.metadata)

    @property
    def heldout_photo_accuracy(self):
        """Accuracy on the real photos training held out (photo models; None otherwise)."""
        accuracy = (self.metadata.get("ood") or {}).get("in_accuracy")
        return float(accuracy) if isinstance(accuracy, (int, float)) else None

    @property
    def test_accuracy(self):
        """Test accuracy as a float (0.0 when unknown), for ranking models."""
        accuracy = self.metadata.get("test_accuracy")
        return float(accuracy) if isinstance(accuracy, (int, float)) else 0.0

    @property
    def uses_flip_tta(self):
        """The model was evaluated with flip test-time augmentation, so it is served that way."""
        return self.metadata.get("flip_tta_accuracy") is not None

    @property
    def calibration(self):
        """The stored confidence calibration (``calibration.json``: ``temperature``, test-set
        ``ece`` / ``ece_before``, reliability bins), or None for a model never calibrated."""
        try:
            data = json.loads((self.path / CALIBRATION_FILE).read_text())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    @property
    def calibrator(self):
        """The confidence map served with the model (``calibration.Calibration``; the identity for
        a model never calibrated)."""
        from .calibration import Calibration

        classes = self.metadata.get("class_names")
        return Calibration.from_json(self.calibration, num_classes=len(classes) if classes else None)

    @property
    def temperature(self):
        """The softmax temperature fitted over all of the model's validation answers (1.0:
        uncalibrated); ``calibrator`` is what is served."""
        return self.calibrator.temperature

    @property
    def class_keywords(self):
        """A catalogue model's own shopper keywords, {class: [keyword, ...]} ({} for none)."""
        keywords = self.metadata.get("class_keywords")
        return dict(keywords) if isinstance(keywords, dict) else {}

    @property
    def lineage(self):
        """The models this one was fine-tuned from, nearest first (``["photo_net", "fashion_net"]``);
        [] for a model trained from scratch."""
        stored = self.metadata.get("lineage")
        if isinstance(stored, list):
            return [str(name) for name in stored]
        parent = self.metadata.get("parent")
        return [str(parent)] if parent else []

    @property
    def is_photo_model(self):
        """True for a model trained with real photos (``train --photos``)."""
        return is_photo_model(self.metadata)

    def summary(self):
        """Row for tables: name, arch, test_accuracy, size, created, lineage ("photo_net ← fashion_net",
        or an ensemble's members: "photo_lite0 + photo_net")."""
        size = sum(p.stat().st_size for p in self.path.iterdir() if p.is_file())
        return {
            "name": self.name,
            "arch": self.metadata.get("arch", "imported"),
            "test_accuracy": self.metadata.get("test_accuracy"),
            "dataset": self.metadata.get("dataset_name", ""),
            "size_mb": round(size / 1e6, 2),
            "created": self.metadata.get("created_at", ""),
            "has_encoder": self.has_autoencoder,
            "lineage": " + ".join(self.members) if self.is_ensemble else " ← ".join(self.lineage),
        }


class Registry:
    """The ``models/`` folder: list, load, save, import, export, delete."""

    def __init__(self, root=None):
        self.root = Path(root) if root else default_models_dir()

    # --- reading -----------------------------------------------------------------------------

    def scan(self):
        """``(entries, problems)``: usable models sorted by name, and ``(folder, reason)`` for
        folders that are corrupt or foreign (reported, never fatal). Hidden folders (our
        temporary saves) are ignored."""
        entries, problems = [], []
        if not self.root.is_dir():
            return entries, problems
        for folder in sorted(self.root.iterdir()):
            if not folder.is_dir() or folder.name.startswith((".", "_")):
                continue
            try:
                entries.append(self._read_entry(folder))
            except ModelFileError as exc:
                problems.append((folder.name, str(exc)))
        return entries, problems

    def list(self):
        return self.scan()[0]

    def names(self):
        return [e.name for e in self.list()]

    def _read_entry(self, folder):
        if not NAME_PATTERN.match(folder.name):
            raise ModelFileError("folder name is not a valid model name.")
        meta_path = folder / METADATA_FILE
        if not meta_path.is_file():
            raise ModelFileError(f"missing {METADATA_FILE} or {MODEL_FILE}.")
        try:
            metadata = json.loads(meta_path.read_text())
        except (OSError, ValueError) as exc:
            raise ModelFileError(f"unreadable {METADATA_FILE}: {exc}.") from None
        if not isinstance(metadata, dict):
            raise ModelFileError(f"{METADATA_FILE} is not a JSON object.")
        members, _weights = ensemble.members_of(metadata)
        if members:  # an ensemble: no model file of its own, its members' must be there
            missing = [m for m in members if not (folder.parent / m / MODEL_FILE).is_file()]
            if missing:
                raise ModelFileError(f"an ensemble whose member{'s' if len(missing) > 1 else ''} "
                                     f"{', '.join(missing)} {'are' if len(missing) > 1 else 'is'} missing.")
        elif not (folder / MODEL_FILE).is_file():
            raise ModelFileError(f"missing {METADATA_FILE} or {MODEL_FILE}.")
        return ModelEntry(folder.name, folder, metadata)

    def check_name_free(self, name, overwrite=False):
        """``name`` if it is valid and free (or ``overwrite``); else ``InvalidNameError``."""
        validate_name(name)
        if not overwrite and (self.root / name).exists():
            raise InvalidNameError(f"a model named {name!r} already exists; choose another name or delete it first.")
        return name

    def get(self, name):
        validate_name(name)
        folder = self.root / name
        if not folder.is_dir():
            raise ModelNotFoundError(f"no model named {name!r} in {self.root}.")
        return self._read_entry(folder)

    def load_classifier(self, name):
        """The classifier as trained (the file's model: what fine-tuning and transfer start from);
        an ensemble is assembled from its members' files (``ensemble.build``)."""
        entry = self.get(name)
        if entry.is_ensemble:
            return self._ensemble(entry, self.load_classifier)
        return load_keras_file(entry.model_file)

    def load_served(self, name):
        """The classifier as served: ``zoo.serving_model`` of it (an equivalent, faster form where
        its architecture has one). Predictions, embeddings and timings use this."""
        from . import zoo

        entry = self.get(name)
        if entry.is_ensemble:
            return self._ensemble(entry, self.load_served)
        return zoo.serving_model(self.load_classifier(name), entry.metadata.get("arch"))

    @staticmethod
    def _ensemble(entry, load):
        members, weights = ensemble.members_of(entry.metadata)
        return ensemble.build([load(member) for member in members], weights, name=entry.name,
                              flips=ensemble.flips_of(entry.metadata))

    def dependents(self, name):
        """Names of the ensembles built from model ``name``."""
        return [e.name for e in self.list() if name in e.members]

    def load_autoencoder(self, name):
        """The autoencoder of an autoencoder-based model, or None."""
        entry = self.get(name)
        return load_keras_file(entry.path / AUTOENCODER_FILE) if entry.has_autoencoder else None

    def read_json(self, name, filename):
        """A JSON side file (history, evaluation, cv, sweep) or None when absent/unreadable."""
        path = self.get(name).path / filename
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            return None

    def history(self, name):
        return self.read_json(name, HISTORY_FILE) or {}

    def evaluation(self, name):
        return self.read_json(name, EVALUATION_FILE)

    def experiments(self, name):
        """{"cv": ..., "sweep": ...} for whichever experiment files exist."""
        return {k: v for k, f in EXPERIMENT_FILES.items() if (v := self.read_json(name, f)) is not None}

    # --- saved label audits (``audit.audit_labels`` results) -------------------------------------

    def audit_names(self):
        """Names of the saved label audits, sorted."""
        folder = self.root / AUDITS_DIR
        return sorted(p.stem for p in folder.glob("*.json") if NAME_PATTERN.match(p.stem)) if folder.is_dir() else []

    def load_audit(self, name):
        """A saved label audit; ``ModelNotFoundError`` when there is none of that name."""
        validate_name(name)
        try:
            data = json.loads((self.root / AUDITS_DIR / f"{name}.json").read_text())
        except (OSError, ValueError):
            raise ModelNotFoundError(f"no saved label audit named {name!r} in {self.root / AUDITS_DIR}.") from None
        return data

    def save_audit(self, name, audit):
        """Store (atomically) a label audit under ``name``; returns its path."""
        validate_name(name)
        folder = self.root / AUDITS_DIR
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{name}.json"
        write_json_atomic(path, audit)
        return path

    # --- writing -----------------------------------------------------------------------------

    def save(self, name, classifier, metadata, history=None, evaluation=None, autoencoder=None,
             extra_json=None, overwrite=False):
        """Write a model folder atomically and return its ``ModelEntry``.

        Everything goes into ``.<name>.<random>.tmp`` first; only the final ``rename`` makes the
        model visible. With ``overwrite`` the old folder is swapped out and then removed.
        """
        self.check_name_free(name, overwrite)
        self.root.mkdir(parents=True, exist_ok=True)
        final = self.root / name
        staging = self.root / f".{name}.{uuid.uuid4().hex[:8]}.tmp"
        staging.mkdir()
        try:
            if classifier is not None:
                without_optimizer(classifier).save(staging / MODEL_FILE)
            elif not ensemble.members_of(metadata)[0]:
                raise ModelFileError("nothing to save: no model, and the metadata names no ensemble members.")
            if autoencoder is not None:
                without_optimizer(autoencoder).save(staging / AUTOENCODER_FILE)
            metadata = dict(metadata)
            metadata["name"] = name
            metadata.setdefault("created_at", _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
            for filename, data in ((HISTORY_FILE, history), (EVALUATION_FILE, evaluation), *(extra_json or {}).items()):
                if data is not None:
                    write_json_atomic(staging / filename, data)
            write_json_atomic(staging / METADATA_FILE, metadata)  # written last: marks completeness
            self._swap_into_place(staging, final)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return self.get(name)

    def _swap_into_place(self, staging, final):
        if final.exists():
            trash = self.root / f".{final.name}.{uuid.uuid4().hex[:8]}.old"
            os.replace(final, trash)
            os.replace(staging, final)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.replace(staging, final)

    def update_json(self, name, filename, data):
        """Atomically (re)write one side file of an existing model (cv, sweep, evaluation...)."""
        entry = self.get(name)
        write_json_atomic(entry.path / filename, data)

    def update_metadata(self, name, **fields):
        entry = self.get(name)
        write_json_atomic(entry.path / METADATA_FILE, {**entry.metadata, **fields})

    def delete(self, name):
        entry = self.get(name)
        users = self.dependents(name)
        if users:
            raise InvalidParameterError(f"{name} cannot be deleted: the ensemble{'s' if len(users) > 1 else ''} "
                                        f"{', '.join(users)} {'are' if len(users) > 1 else 'is'} built from it; "
                                        "delete the ensemble first.")
        trash = self.root / f".{name}.{uuid.uuid4().hex[:8]}.deleted"
        os.replace(entry.path, trash)  # disappears from the listing at once
        shutil.rmtree(trash, ignore_errors=True)

    def import_model(self, source, name, dataset_meta, overwrite=False):
        """Validate a user's ``.keras`` file (safe mode, shape, classes) and add it to the registry.

        ``dataset_meta`` is a dict with ``spec``, ``name``, ``class_names``, ``image_shape``
        (see ``dataset_metadata``). The user's file is evaluated by the caller if wanted.
        """
        validate_name(name)
        source = Path(source)
        if source.is_file() and source.stat().st_size > MAX_IMPORT_BYTES:
            raise ModelFileError(f"{source.name}: larger than {MAX_IMPORT_BYTES // 2**20} MB.")
        model = load_keras_file(source)
        check_classifier(model, dataset_meta["image_shape"], len(dataset_meta["class_names"]))
        metadata = {
            "arch": "imported",
            "title": f"Imported from {source.name}",
            "params": int(model.count_params()),
            "command": None,
            **dataset_metadata_fields(dataset_meta),
        }
        return self.save(name, model, metadata, overwrite=overwrite)


def dataset_metadata(dataset):
    """What a model must remember about its dataset."""
    return {
        "spec": dict(dataset.spec),
        "name": dataset.name,
        "class_names": list(dataset.class_names),
        "image_shape": list(dataset.image_shape),
        "class_keywords": {c: list(k) for c, k in dataset.class_keywords.items()},
    }


def dataset_metadata_fields(meta):
    fields = {
        "dataset": meta["spec"],
        "dataset_name": meta["name"],
        "class_names": list(meta["class_names"]),
        "image_shape": list(meta["image_shape"]),
    }
    if meta.get("class_keywords"):
        fields["class_keywords"] = dict(meta["class_keywords"])
    return fields


def model_dataset_spec(metadata):
    """The dataset recipe in a model's metadata; models saved without one were trained on
    Fashion-MNIST."""
    return dict(metadata.get("dataset") or FASHION_MNIST_SPEC)


def without_optimizer(model):
    """``model`` without its optimizer, for saving: a registry file holds the architecture and the
    weights (what serving, fine-tuning and transfer read, all of which compile afresh), not the
    optimizer's slots, which made a trained AdamW model's file 2.5x larger (photo_lite0: 38 MB →
    15 MB). An uncompiled model is returned as it is; a compiled one as an uncompiled copy."""
    if getattr(model, "optimizer", None) is None:
        return model
    copy = type(model).from_config(model.get_config())  # built-in layers only: safe to rebuild
    copy.set_weights(model.get_weights())
    return copy


def is_photo_model(metadata):
    """True for a model trained with real photos (``train --photos``)."""
    return bool((metadata.get("additions") or {}).get("photos"))


# --- which model by default ----------------------------------------------------------------------


def _photo_rank(entry):
    """How photo models are ranked: accuracy on the photos their training held out, then test."""
    return (entry.heldout_photo_accuracy or 0.0, entry.test_accuracy)


def best_entry(entries, dataset_kind=None, arch=None, photo=None):
    """The entry with the highest test accuracy (the first on a tie) among ``entries`` of that
    dataset kind / architecture / photo training (None: any), or None; photo models only
    (``photo=True``) are ranked by ``_photo_rank``."""
    candidates = [e for e in entries
                  if (dataset_kind is None or e.dataset_spec.get("kind") == dataset_kind)
                  and (arch is None or e.metadata.get("arch") == arch)
                  and (photo is None or e.is_photo_model == photo)]
    return max(candidates, key=_photo_rank if photo else (lambda e: e.test_accuracy), default=None)


def default_entry(entries, any_dataset=False):
    """The model uploads and webcam photos go to by default: the model trained with real photos
    that is most accurate on the photos its training held out (then on its test set), else the
    best Fashion-MNIST model, else (``any_dataset``) the best of any."""
    return (best_entry(entries, photo=True) or best_entry(entries, dataset_kind=FASHION_MNIST_SPEC["kind"])
            or (best_entry(entries) if any_dataset else None))


def _name(entry):
    return entry.name if entry is not None else None


def best_model_name(registry=None, dataset_kind=FASHION_MNIST_SPEC["kind"], photo_models=True):
    """Name of the registry model with the highest test accuracy on that dataset kind, or None.
    ``photo_models=False`` leaves out models trained with real photos (``is_photo_model``)."""
    entries = (registry or Registry()).list()
    return _name(best_entry(entries, dataset_kind=dataset_kind, photo=None if photo_models else False))


def default_photo_model_name(registry=None):
    """Name of ``default_entry`` of the registry; None when it has no Fashion-MNIST or photo model."""
    return _name(default_entry((registry or Registry()).list()))
