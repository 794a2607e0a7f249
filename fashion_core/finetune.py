"""Teach a model by correcting it: fine-tune a registry classifier on a few labelled photos.

``finetune_and_save`` reads a ``path,label`` CSV (the corrections catalogue, or any CSV whose
labels are class names of the base model), holds out a seeded part of it, measures the base on
that part and on its own test set, continues training the base's weights on the rest
(oversampled) mixed with a replay sample of the base's own training data, so it does not forget,
saves the result as a NEW registry model (the base is never overwritten) and measures again.

Works for any classifier in the registry (grey or colour, any size, imported ones too): photos go
through ``preprocess.prepare_image`` at the base's input shape, and the loaded model is trained
as it is (``training.fit_classifier``), so nothing depends on ``zoo``.

The default schedule (``DEFAULTS``) was chosen by measurement: ``python -m scripts.finetune_check``
(docs/finetune_check.json, quoted in the README).
"""

from __future__ import annotations

import platform
import shlex
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .catalogue import decode_files, read_csv_rows
from .data import sample_indices, train_validation_split
from .errors import DataError, InvalidParameterError
from .evaluation import evaluate_model
from .predict import accuracy, test_set_predictions
from .registry import CALIBRATION_FILE, Registry

MIN_CORRECTIONS = 2  # at least one to learn from and one to hold out
MAX_REPEAT = 20
GROUP_COLUMN = "group"
# What a fine-tuned model keeps from its base's metadata: the dataset it was trained on (so its
# test set and replay data are the base's), the classes, the input, the "none of these" setup.
INHERITED = ("arch", "title", "source", "paper_accuracy", "hyper_parameters", "dataset", "dataset_name",
             "class_names", "image_shape", "additions", "ood", "params", "train_size", "test_size")


@dataclass(frozen=True)
class FinetuneRecipe:
    """The knobs of a fine-tune; ``None`` means the measured default (``DEFAULTS``).

    ``replay``: images of the base's own training data mixed in; ``correction_share``: the share
    of each epoch that is corrections (each correction is repeated to reach it, at most
    ``MAX_REPEAT`` times); the learning rate follows a warm-up + cosine schedule (AdamW).
    """

    epochs: int | None = None
    learning_rate: float | None = None
    replay: int | None = None
    correction_share: float | None = None
    batch_size: int | None = None
    heldout_fraction: float = 0.2
    seed: int = 0

    def resolve(self):
        values = {k: (getattr(DEFAULTS, k) if v is None else v) for k, v in asdict(self).items()}
        recipe = FinetuneRecipe(**values)
        _check(recipe)
        return recipe


DEFAULTS = FinetuneRecipe(epochs=4, learning_rate=5e-4, replay=3000, correction_share=0.3, batch_size=64)


def _check(recipe):
    from .training import MAX_BATCH_SIZE, MAX_EPOCHS

    checks = (("epochs", recipe.epochs, 1, MAX_EPOCHS), ("replay", recipe.replay, 0, 60000),
              ("batch size", recipe.batch_size, 1, MAX_BATCH_SIZE), ("seed", recipe.seed, 0, 2**31 - 1))
    for label, value, low, high in checks:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not low <= value <= high:
            raise InvalidParameterError(f"{label} must be a whole number between {low} and {high}; got {value!r}.")
    for label, value, low, high in (("learning rate", recipe.learning_rate, 0.0, 1.0),
                                    ("correction share", recipe.correction_share, 0.0, 1.0),
                                    ("held-out fraction", recipe.heldout_fraction, 0.0, 0.9)):
        if not isinstance(value, (int, float)) or not np.isfinite(value) or not low <= value <= high \
                or (label != "held-out fraction" and value == low):
            raise InvalidParameterError(f"{label} must be a number in ({low}, {high}]; got {value!r}.")


# --- the corrections -------------------------------------------------------------------------------


@dataclass
class Corrections:
    """Labelled photos read for one model: images at its input shape, class indices, groups."""

    images: np.ndarray
    labels: np.ndarray
    groups: np.ndarray | None
    files: list
    skipped: list

    def __len__(self):
        return len(self.labels)


def read_corrections(csv_path, class_names, image_shape, progress=None):
    """The readable photos of a ``path,label[,group]`` CSV, prepared for a model of
    ``image_shape`` whose classes are ``class_names``.

    A label that is not one of ``class_names`` is a ``DataError`` naming it (nothing is guessed);
    unreadable photos are skipped and listed in ``skipped``; fewer than ``MIN_CORRECTIONS``
    readable photos is a ``DataError``.
    """
    path = Path(csv_path).expanduser()
    if not path.is_file():
        raise DataError(f"{path}: no such CSV file.")
    rows, skipped = read_csv_rows(path)
    names = list(class_names)
    unknown = sorted({row["label"] for row in rows} - set(names))
    if unknown:
        raise DataError(f"{path}: label(s) {', '.join(map(repr, unknown))} are not classes of the model; "
                        f"use one of: {', '.join(names)}.")
    files = [row["file"] for row in rows]
    images, readable, bad = decode_files(files, tuple(image_shape), path.parent, progress)
    skipped = skipped + bad
    labels = np.array([names.index(row["label"]) for row in rows], np.int64)[readable]
    groups = None
    if any(row.get(GROUP_COLUMN) for row in rows):
        groups = np.array([row.get(GROUP_COLUMN) or f"row{i}" for i, row in enumerate(rows)])[readable]
    if readable.sum() < MIN_CORRECTIONS:
        raise DataError(f"{path}: {int(readable.sum())} readable photo(s); fine-tuning needs at least {MIN_CORRECTIONS}.")
    return Corrections(images[readable], labels, groups, [f for f, ok in zip(files, readable) if ok], skipped)


def heldout_split(labels, groups=None, fraction=0.2, seed=0):
    """``(train_idx, heldout_idx, method)``: a seeded held-out part of about ``fraction``.

    With ``groups`` (who took the photo, which product) whole groups are held out, drawn in a
    seeded order until ``fraction`` of the photos is reached, so no room or product is on both
    sides ("group"); when that would leave nothing to train on it falls back to a random split,
    stratified by class when every class has two photos ("random"). At least one photo is held
    out whenever ``fraction`` > 0; ``fraction`` 0 holds out nothing.
    """
    labels = np.asarray(labels)
    n = len(labels)
    everything = np.arange(n)
    if fraction <= 0 or n < 2:
        return everything, everything[:0], "none"
    target = min(n - 1, max(1, int(round(fraction * n))))
    if groups is not None and len(np.unique(groups)) > 1:
        rng = np.random.default_rng(seed)
        unique = np.unique(groups)
        held = np.zeros(n, bool)
        for group in unique[rng.permutation(len(unique))]:
            if held.sum() >= target:
                break
            held |= groups == group
        if 0 < held.sum() < n:
            return everything[~held], everything[held], "group"
    _, compact = np.unique(labels, return_inverse=True)
    counts = np.bincount(compact)
    if counts.min() >= 2 and target >= len(counts) and n - target >= len(counts):
        train_idx, held_idx = train_validation_split(n, target / n, seed, compact)
        return train_idx, held_idx, "stratified"
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[target:]), np.sort(order[:target]), "random"


def replay_sample(data, size, validation_fraction=0.1, split_seed=0, seed=0):
    """``(x, y)``: a seeded sample of ``size`` training images of ``data`` (the base model's own
    training data), never from the validation split its training held out (``validation_fraction``
    and ``split_seed`` are the base's): the confidence calibration is refitted on that split."""
    if data.x_val is not None or not validation_fraction:
        pool = np.arange(len(data.y_train))
    else:
        pool, _ = train_validation_split(len(data.y_train), validation_fraction, split_seed, data.y_train)
    if int(size) <= 0:
        return data.x_train[:0], data.y_train[:0]
    chosen = pool[sample_indices(len(pool), min(int(size), len(pool)), seed)]
    return data.x_train[chosen], data.y_train[chosen]


def training_mix(corrections_x, corrections_y, replay_x, replay_y, share):
    """Corrections repeated to make up about ``share`` of the mix with the replay images;
    ``(x, y, repeat)``."""
    n, r = len(corrections_y), len(replay_y)
    repeat = 1 if r == 0 else int(np.clip(round(share * r / max(1, (1 - share) * n)), 1, MAX_REPEAT))
    x = np.concatenate([replay_x, np.repeat(corrections_x, repeat, axis=0)]) if r else corrections_x
    y = np.concatenate([replay_y, np.repeat(corrections_y, repeat)]) if r else corrections_y
    return x, y, repeat


def _accuracy(model, images, labels, flip_tta):
    """``predict.accuracy`` as served (flip-TTA or not); None for no images."""
    return accuracy(model, images, labels, flip_tta) if len(labels) else None


def reproduce_command(base, csv_path, name, recipe):
    """The ``python -m fashion_core finetune ...`` line that reproduces a fine-tune."""
    parts = ["python", "-m", "fashion_core", "finetune", base, "--data-csv", str(csv_path), "--name", name,
             "--epochs", str(recipe.epochs), "--lr", repr(recipe.learning_rate), "--replay", str(recipe.replay),
             "--correction-share", repr(recipe.correction_share), "--batch-size", str(recipe.batch_size),
             "--heldout", repr(recipe.heldout_fraction), "--seed", str(recipe.seed)]
    return shlex.join(parts)


# --- the run ---------------------------------------------------------------------------------------


def finetune_and_save(base_name, csv_path, name, *, registry=None, progress=None, epochs=None,
                      heldout_fraction=0.2, replay=None, learning_rate=None, correction_share=None,
                      batch_size=None, seed=0, verbose=0, say=None, precompute=True):
    """Fine-tune registry model ``base_name`` on the photos of ``csv_path`` into a new model ``name``.

    Parameters
    ----------
    base_name : str
        Any classifier in the registry; it is never changed.
    csv_path : path
        ``path,label`` rows (relative paths against the CSV's folder), labels = the base's class
        names; an optional ``group`` column (sender, product) makes the held-out part whole groups.
    name : str
        The new model (validated and checked free before anything is loaded).
    progress : training.TrainingProgress, optional
        Per-batch updates of the "fine_tune" stage (and Cancel: nothing is saved then).
    epochs, heldout_fraction, replay, learning_rate, correction_share, batch_size, seed
        See ``FinetuneRecipe``; ``None`` takes the measured default.
    say : callable(str), optional
        Receives one line per step ("measuring the base", ...), e.g. for a CLI or a job log.
    precompute : bool
        Store what the dashboard's pages read (``runs.precompute_and_store``), as every save
        does; only measurement scripts that throw the model away skip it.

    Returns
    -------
    dict
        ``base``, ``name``, ``before`` and ``after`` (each ``heldout_accuracy`` — None without a
        held-out part — and ``test_accuracy``, as served: flip-TTA when the base is), ``corrections``
        (photos trained on), ``heldout`` (photos held out), ``split`` ("group", "stratified",
        "random" or "none"), ``skipped`` ([file, reason]), ``repeat``, ``replay``, ``train_seconds``,
        ``recipe``, ``path``.
    """
    from .runs import calibrate_on_validation, calibration_on_test, dataset_for_model, precompute_and_store, training_dataset_for
    from .training import fit_classifier

    say = say or (lambda line: None)
    registry = registry or Registry()
    recipe = FinetuneRecipe(epochs=epochs, learning_rate=learning_rate, replay=replay, correction_share=correction_share,
                            batch_size=batch_size, heldout_fraction=heldout_fraction, seed=seed).resolve()
    entry = registry.get(base_name)
    registry.check_name_free(name)
    meta = entry.metadata
    class_names = meta.get("class_names")
    image_shape = tuple(meta.get("image_shape") or ())
    if not class_names or len(image_shape) != 3:
        raise DataError(f"{base_name} does not record its class names and input shape; it cannot be fine-tuned.")
    say(f"reading the photos of {csv_path}")
    corrections = read_corrections(csv_path, class_names, image_shape)
    train_idx, held_idx, split = heldout_split(corrections.labels, corrections.groups, recipe.heldout_fraction, recipe.seed)
    held_x, held_y = corrections.images[held_idx], corrections.labels[held_idx]
    tta = entry.uses_flip_tta

    say(f"measuring {base_name} on {len(held_idx)} held-out photos and its test set")
    model = registry.load_classifier(base_name)  # a fresh copy: the base's file is never written
    test = dataset_for_model(entry)
    before = {"heldout_accuracy": _accuracy(model, held_x, held_y, tta),
              "test_accuracy": _accuracy(model, test.x_test, test.y_test, tta)}

    say(f"replaying {recipe.replay} images of {base_name}'s own training data")
    hp = meta.get("hyper_parameters") or {}
    own = training_dataset_for(entry)
    validation_fraction, base_seed = hp.get("validation_fraction", 0.1), hp.get("seed", 0)
    replay_x, replay_y = replay_sample(own, recipe.replay, validation_fraction, base_seed, recipe.seed)
    x, y, repeat = training_mix(corrections.images[train_idx], corrections.labels[train_idx], replay_x, replay_y,
                                recipe.correction_share)
    say(f"fine-tuning on {len(train_idx)} photos (x{repeat}) + {len(replay_y)} replay images, {recipe.epochs} epochs")
    history, seconds = fit_classifier(model, x, y, epochs=recipe.epochs, batch_size=recipe.batch_size,
                                      learning_rate=recipe.learning_rate, optimizer="adamw",
                                      weight_decay=hp.get("weight_decay") or 0.0,
                                      label_smoothing=hp.get("label_smoothing") or 0.0, seed=recipe.seed,
                                      progress=progress, verbose=verbose)

    say("measuring the fine-tuned model")
    calibrator, calibration = calibrate_on_validation(model, own, validation_fraction, base_seed, tta)
    predictions = test_set_predictions(model, test.x_test, tta)
    evaluation = evaluate_model(model, test, tta=tta, calibration=calibrator, predictions=predictions)
    calibration = {**calibration, **calibration_on_test(evaluation)} if calibration else None
    after = {"heldout_accuracy": _accuracy(model, held_x, held_y, tta),
             "test_accuracy": evaluation["flip_tta_accuracy"] if tta else evaluation["accuracy"]}
    result = {"base": base_name, "name": name, "before": before, "after": after,
              "corrections": int(len(train_idx)), "heldout": int(len(held_idx)), "split": split,
              "skipped": [list(s) for s in corrections.skipped], "repeat": repeat, "replay": int(len(replay_y)),
              "train_seconds": round(seconds, 1), "recipe": asdict(recipe)}
    import keras

    metadata = {**{k: meta[k] for k in INHERITED if k in meta},
                "parent": base_name,
                "command": reproduce_command(base_name, csv_path, name, recipe),
                "finetune": {k: result[k] for k in ("corrections", "heldout", "split", "repeat", "replay", "recipe",
                                                    "before", "after")},
                "test_accuracy": evaluation["accuracy"], "test_loss": evaluation["loss"],
                "flip_tta_accuracy": evaluation.get("flip_tta_accuracy"),
                "epochs_run": {stage: len(h.get("loss", [])) for stage, h in history.items()},
                "train_seconds": result["train_seconds"], "cancelled": False,
                "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
                "keras_version": keras.__version__}
    say(f"saving {name}")
    saved = registry.save(name, model, metadata, history=history, evaluation=evaluation,
                          extra_json={CALIBRATION_FILE: calibration} if calibration else None)
    if precompute:
        precompute_and_store(name, registry=registry, model=model, dataset=test, predictions=predictions)
    return {**result, "path": str(saved.path)}


def finetune_job(params, progress, registry):
    """``finetune_and_save`` as a background job (``(params, progress, registry) -> dict``):
    ``params`` holds ``base``, ``data_csv``, ``name`` and optionally the recipe's knobs."""
    params = dict(params)
    knobs = {k: params[k] for k in ("epochs", "heldout_fraction", "replay", "learning_rate", "correction_share",
                                    "batch_size", "seed") if params.get(k) is not None}
    return finetune_and_save(params["base"], params["data_csv"], params["name"], registry=registry,
                             progress=progress, **knobs)
