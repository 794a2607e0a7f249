"""A run: train → evaluate on the test set → save to the registry, in one call; and the
evaluation of a model already in the registry, stored with it.

Used by the CLI (``train``, ``evaluate``) and the dashboard (Train, Evaluate), so a model trained
or evaluated either way carries the same metadata (including the CLI command that reproduces it).
"""

from __future__ import annotations

import json
import platform
import shlex
from dataclasses import asdict


from . import litert, transfer, zoo
from .loaders import load_dataset
from .errors import DataError
from .evaluation import evaluate_model
from .calibration import Calibration, calibration_report, fit_calibration
from .predict import served_probabilities, test_set_predictions
from .registry import CALIBRATION_FILE, EVALUATION_FILE, Registry, dataset_metadata, dataset_metadata_fields
from .training import TrainingCancelled, train, validation_data


def reproduce_command(config, name, dataset_spec, additions=None):
    """The ``python -m fashion_core train ...`` line that reproduces a run."""
    parts = ["python", "-m", "fashion_core", "train", "--arch", config.arch,
             "--epochs", str(config.epochs), "--batch-size", str(config.batch_size),
             "--optimizer", config.optimizer, "--lr", repr(config.learning_rate),
             "--val-fraction", repr(config.validation_fraction), "--seed", str(config.seed)]
    if config.limit:
        parts += ["--limit", str(config.limit)]
    if config.precision != "float32":
        parts += ["--precision", config.precision]
    if config.pretrain_epochs:
        parts += ["--pretrain-epochs", str(config.pretrain_epochs)]
    if config.fine_tune_epochs:
        parts += ["--fine-tune-epochs", str(config.fine_tune_epochs)]
    if config.class_weights:
        parts += ["--class-weights"]
    if config.init_from:
        parts += ["--from", config.init_from]
    for key, value in sorted((config.build_options or {}).items()):
        if key == "weights":  # an ImageNet backbone's weights: --weights below
            continue
        parts += ["--option", f"{key}={value if isinstance(value, str) else json.dumps(value)}"]
    weights = config.build_options.get("weights")
    if weights and weights != "imagenet":
        parts += ["--weights", str(weights)]
    if config.head_epochs:
        parts += ["--head-epochs", str(config.head_epochs)]
    if config.unfreeze != "all":
        parts += ["--unfreeze", config.unfreeze]
    if dataset_spec.get("kind") == "folder":
        parts += ["--data-dir", str(dataset_spec["path"])]
    if dataset_spec.get("kind") == "folder" or dataset_spec.get("image_size"):
        parts += ["--image-size", str(dataset_spec.get("image_size", 28))]
    if dataset_spec.get("color"):
        parts += ["--color"]
    photos = (additions or {}).get("photos")
    if photos:
        parts += ["--photos", "--replay", str(photos["replay"])]
        if photos.get("phone_repeat", 1) != 1:
            parts += ["--phone-repeat", str(photos["phone_repeat"])]
    parts += ["--name", name]
    return shlex.join(parts)


def train_and_save(dataset, config, name, registry=None, progress=None, verbose=0, overwrite=False,
                   command=None, tta=None):
    """Train, evaluate on the test set and save atomically. Returns ``(entry, result, evaluation)``.

    The name is validated *before* training so a bad name never costs a training run. A run
    whose ``progress.should_stop()`` is true after training raises ``TrainingCancelled`` and
    saves nothing.
    """
    registry = registry or Registry()
    registry.check_name_free(name, overwrite)
    config = config.resolve()
    init_model = transfer.init_model(config, registry)
    result = train(dataset, config, progress=progress, verbose=verbose, init_model=init_model,
                   init_autoencoder=transfer.init_autoencoder(config, registry))
    _check_not_stopped(progress)
    # ``limit`` only shrinks the training data: the evaluation always covers the dataset's whole
    # test set, so stored mistakes index ``load_dataset(metadata["dataset"]).x_test``.
    use_tta = zoo.get_spec(config.arch).flip_tta if tta is None else tta
    trained_on = dataset.subset(config.limit, seed=config.seed) if config.limit else dataset
    calibrator, calibration = calibrate_on_validation(result.model, trained_on, config.validation_fraction, config.seed,
                                                      use_tta)
    predictions = test_set_predictions(result.model, dataset.x_test, use_tta)
    evaluation = evaluate_model(result.model, dataset, tta=use_tta, calibration=calibrator, predictions=predictions)
    calibration = {**calibration, **calibration_on_test(evaluation)} if calibration else None
    spec = zoo.get_spec(config.arch)
    import keras

    stages = result.history
    metadata = {
        "arch": config.arch,
        "title": spec.title,
        "source": spec.source,
        "paper_accuracy": spec.paper_accuracy,
        "hyper_parameters": asdict(config),
        **dataset_metadata_fields(dataset_metadata(dataset)),
        "train_size": int(min(config.limit or len(dataset.y_train), len(dataset.y_train))),
        "test_size": int(len(dataset.y_test)),
        "test_accuracy": evaluation["accuracy"],
        "test_loss": evaluation["loss"],
        "flip_tta_accuracy": evaluation.get("flip_tta_accuracy"),
        "epochs_run": {stage: len(h.get("loss", [])) for stage, h in stages.items()},
        "train_seconds": round(result.train_seconds, 1),
        "params": zoo.count_params(result.model),
        "cancelled": result.cancelled,
        "command": command or reproduce_command(config, name, dataset.spec, dataset.additions),
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "keras_version": keras.__version__,
        "keras_backend": keras.backend.backend(),
    }
    accelerator = training_accelerator()
    if accelerator:
        metadata["accelerator"] = accelerator
    if config.init_from == name:  # a model continued in place: the earlier run's record is kept inside
        metadata.update(_continued(registry.get(name).metadata))
        metadata["command"] = f"{metadata['continued_from']['command']} && {metadata['command']}"
    elif config.init_from:
        metadata["parent"] = config.init_from
        metadata["lineage"] = transfer.lineage_of(config.init_from, registry)
    if config.head_epochs or config.freeze_bn:
        metadata["schedule"] = {k: getattr(config, k) for k in (
            "head_epochs", "epochs", "learning_rate", "batch_size", "unfreeze", "freeze_bn", "optimizer", "lr_schedule")}
    if dataset.additions:
        metadata["additions"] = dataset.additions
    metadata.update(_ood_calibration(result, dataset, use_tta))
    _check_not_stopped(progress)
    entry = registry.save(name, result.model, metadata, history=stages, evaluation=evaluation,
                          autoencoder=result.bundle.autoencoder, overwrite=overwrite,
                          extra_json={CALIBRATION_FILE: calibration} if calibration else None)
    precompute_and_store(name, registry=registry, model=result.model, dataset=dataset, predictions=predictions)
    return entry, result, evaluation


def training_accelerator():
    """The GPU Keras trains on in this process ("NVIDIA H100 80GB HBM3"), or None on a CPU."""
    import keras

    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        gpus = [d for d in jax.devices() if d.platform == "gpu"]
        return gpus[0].device_kind if gpus else None
    if backend == "torch":
        import torch

        return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    return tf.config.experimental.get_device_details(gpus[0]).get("device_name", "GPU") if gpus else None


def _check_not_stopped(progress):
    """A run asked to stop (``progress.should_stop()``: a background job's Cancel) registers
    nothing, even when the request comes after training, before the save."""
    if progress is not None and progress.should_stop():
        raise TrainingCancelled("stopped before saving")


def calibrate_on_validation(model, data, validation_fraction, seed, flip_tta):
    """``(Calibration, facts)``: the confidence map (``calibration.fit_calibration``) fitted on the
    validation split training held out of ``data`` (``training.validation_data``), never on the
    test set; ``(Calibration(), None)`` without a validation split. ``facts`` is what
    ``calibration.json`` stores of the fit: the map, where it was fitted and the cross-validated
    top-label log-loss of each method it chose among (``selection``)."""
    x_val, y_val = validation_data(data, validation_fraction, seed)
    if not len(y_val):
        return Calibration(), None
    calibrator, losses = fit_calibration(served_probabilities(model, x_val, flip_tta), y_val)
    return calibrator, {**calibrator.to_json(), "flip_tta": bool(flip_tta),
                        "fitted_on": f"validation split ({len(y_val)} images, fraction {validation_fraction}, seed {seed})",
                        "validation_images": int(len(y_val)),
                        **({"selection": {"cv_top_label_log_loss": {m: round(v, 6) for m, v in losses.items()}}}
                           if losses else {})}


def calibration_on_test(evaluation):
    """The test-set part of ``calibration.json``, from an evaluation with a temperature."""
    report = evaluation["calibration"]
    return {"test_images": evaluation["n_samples"], **{k: report[k] for k in ("ece", "ece_before", "bins", "bins_before")}}


def training_dataset_for(entry):
    """The data model ``entry`` was trained on, rebuilt from its recipe (``limit`` subset and
    real photos included), so its validation split is exactly the one training held out."""
    hp = entry.metadata.get("hyper_parameters") or {}
    photos = (entry.metadata.get("additions") or {}).get("photos")
    if photos:
        from .photos import photo_training_dataset

        shape = tuple(entry.metadata.get("image_shape") or (28, 28, 1))
        return photo_training_dataset(shape, replay=photos.get("replay", 12000), holdout=photos.get("holdout", 0.15),
                                      seed=photos.get("seed", hp.get("seed", 0)), outliers=False,
                                      phone_repeat=photos.get("phone_repeat", 1))
    data = dataset_for_model(entry)
    return data.subset(hp["limit"], seed=hp.get("seed", 0)) if hp.get("limit") else data


def calibrate_and_store(name, registry=None):
    """Fit registry model ``name``'s confidence map on its training validation split, measure the
    test-set ECE before and after, and store both in ``calibration.json`` (a side file: the
    model and its metadata are left as they are). Returns the stored dict."""
    registry = registry or Registry()
    entry = registry.get(name)
    hp = entry.metadata.get("hyper_parameters") or {}
    model = registry.load_classifier(name)
    fraction = hp.get("validation_fraction", 0.1)
    calibrator, calibration = calibrate_on_validation(model, training_dataset_for(entry), fraction, hp.get("seed", 0),
                                                      entry.uses_flip_tta)
    if calibration is None:
        raise DataError(f"{name} was trained without a validation split (fraction {fraction}): nothing to fit a temperature on.")
    test = dataset_for_model(entry)
    evaluation = {"n_samples": int(len(test.y_test)),
                  "calibration": calibration_report(served_probabilities(model, test.x_test, entry.uses_flip_tta),
                                                    test.y_test, calibrator)}
    calibration = {**calibration, **calibration_on_test(evaluation)}
    registry.update_json(name, CALIBRATION_FILE, calibration)
    return calibration


CONTINUED_FIELDS = ("command", "train_seconds", "wall_seconds", "epochs_run", "test_accuracy", "keras_version",
                    "keras_backend", "accelerator", "created_at", "hyper_parameters", "continued_from")


def _continued(earlier):
    """What a model trained further under its own name (``--from NAME --name NAME --overwrite``)
    keeps of its earlier run: ``continued_from`` (that run's command, time, epochs, accuracy,
    machine; nested when it was itself continued), and its parent and lineage, if any."""
    kept = {"continued_from": {k: earlier[k] for k in CONTINUED_FIELDS if earlier.get(k) is not None}}
    for key in ("parent", "lineage"):
        if earlier.get(key):
            kept[key] = earlier[key]
    return kept


def _ood_calibration(result, dataset, tta):
    """What flags "none of these": for a model trained with real photos, a confidence threshold
    set on its held-out photos; otherwise reconstruction-error statistics on the test set."""
    from .ood import calibrate, calibrate_confidence
    from .photos import calibration_photos

    recipe = dataset.additions.get("photos")
    if not recipe:
        return calibrate(result.bundle, dataset)
    photos = calibration_photos(dataset.image_shape, recipe)
    probabilities = served_probabilities(result.model, photos.images, tta)
    return {"ood": calibrate_confidence(probabilities, photos.labels)}


def dataset_for_model(entry):
    """The dataset model ``entry`` was trained on (never another one): ``DataError`` when its
    classes have changed since training."""
    dataset = load_dataset(entry.dataset_spec)
    expected = entry.metadata.get("class_names")
    if expected and list(dataset.class_names) != list(expected):
        raise DataError("the model's dataset has changed since training (different classes); refusing to evaluate.")
    return dataset


def evaluate_and_store(name, registry=None, model=None, dataset=None):
    """Evaluate registry model ``name`` on its own dataset's test set and store the result
    (``evaluation.json``, and ``test_accuracy`` / ``test_loss`` in its metadata).

    ``model`` and ``dataset`` skip loading them when the caller already holds them (the
    dashboard's caches). Returns the evaluation dict (``evaluation.evaluate_probabilities``).
    """
    registry = registry or Registry()
    entry = registry.get(name)
    model = registry.load_classifier(name) if model is None else model
    dataset = dataset_for_model(entry) if dataset is None else dataset
    predictions = test_set_predictions(model, dataset.x_test, entry.uses_flip_tta)
    evaluation = evaluate_model(model, dataset, tta=entry.uses_flip_tta, calibration=entry.calibrator,
                                predictions=predictions)
    registry.update_json(name, EVALUATION_FILE, evaluation)
    registry.update_metadata(name, test_accuracy=evaluation["accuracy"], test_loss=evaluation["loss"],
                             **({"flip_tta_accuracy": evaluation["flip_tta_accuracy"]} if "flip_tta_accuracy" in evaluation else {}))
    precompute_and_store(name, registry=registry, model=model, dataset=dataset, predictions=predictions)
    return evaluation


def precompute_and_store(name, registry=None, model=None, dataset=None, predictions=None):
    """Compute and store what the dashboard's pages need from registry model ``name``
    (``precompute``: test probabilities, gallery embeddings, the 2-D map; for photo models the
    LiteRT file that answers single photos) — on save, after an
    evaluation and by ``python -m fashion_core precompute``. ``predictions``: the evaluation's
    ``predict.test_set_predictions``, not computed again. Returns ``(path, sizes)``."""
    from . import latent, precompute

    registry = registry or Registry()
    entry = registry.get(name)
    model = registry.load_classifier(name) if model is None else model
    dataset = dataset_for_model(entry) if dataset is None else dataset
    encoder, _ = latent.encoder_for(name, registry=registry)
    path, sizes = precompute.build(entry, model, encoder, dataset, predictions)
    if litert.wanted(entry):  # the single-photo serving form (litert.py), with its embedding for Latent space
        served_encoder = None if entry.has_autoencoder else latent.classifier_encoder(model, name)
        sizes["litert_bytes"] = litert.write(entry, model, precompute.stamp(entry), encoder=served_encoder).stat().st_size
    return path, sizes


def ensemble_and_save(members, name, weights=None, registry=None, overwrite=False, progress=None, flip=None):
    """Register an ensemble of registry models (``ensemble.py``): calibrate its confidence on the
    lead member's validation split, evaluate it on the lead's test set, calibrate "none of these"
    on the photos the photo members' training held out, and store what the pages need. The
    ensemble's folder holds no weights: its members' files are read when it is loaded.

    Parameters
    ----------
    members : list of str
        Two or more registry models with the same classes (not ensembles); the first, the *lead*,
        sets the input shape and the dataset the ensemble is evaluated on.
    weights : list of float, optional
        One positive weight per member (normalised to sum 1; default equal).
    flip : list of str, optional
        The members that answer with flip test-time augmentation (default: those served with it
        on their own). All of them: the ensemble is served with flip-TTA (image and mirror in
        one batch); some: inside the graph, for those members only (``metadata["ensemble"]["flip"]``).
    progress : callable(str), optional
        Told what is being done (the evaluation of a 128-px model takes minutes on a CPU).

    Returns
    -------
    (entry, evaluation)
    """
    from . import ensemble
    from .errors import InvalidParameterError
    from .registry import ModelEntry

    say = progress or (lambda message: None)
    registry = registry or Registry()
    registry.check_name_free(name, overwrite)
    members = [str(m) for m in members]
    if len(members) < 2 or len(set(members)) != len(members):
        raise InvalidParameterError("an ensemble needs two or more different models.")
    weights = [1.0] * len(members) if not weights else [float(w) for w in weights]
    if len(weights) != len(members) or min(weights) <= 0:
        raise InvalidParameterError(f"give one positive weight per member ({len(members)} members, {len(weights)} weights).")
    if name in members:
        raise InvalidParameterError(f"{name} cannot be one of its own members.")
    entries = [registry.get(m) for m in members]
    nested = [e.name for e in entries if e.is_ensemble]
    if nested:
        raise InvalidParameterError(f"{', '.join(nested)} is an ensemble already; list its members instead.")
    lead = entries[0]
    for entry in entries[1:]:
        if list(entry.metadata.get("class_names") or []) != list(lead.metadata.get("class_names") or []):
            raise InvalidParameterError(f"{entry.name} and {lead.name} do not have the same classes.")
    unknown = sorted(set(flip or []) - set(members))
    if unknown:
        raise InvalidParameterError(f"--flip names {', '.join(unknown)}, not a member of the ensemble.")
    own_flips = [e.uses_flip_tta for e in entries]
    flips = own_flips if flip is None else [m in set(flip) for m in members]
    # every member flipped: the ensemble is served with flip-TTA (image and mirror in one batch,
    # faster than two passes inside the graph); some: inside the graph, for those members only
    use_tta = all(flips)
    total = sum(weights)
    weights = [round(w / total, 6) for w in weights]
    command = ["python", "-m", "fashion_core", "ensemble", *members]
    if len(set(weights)) > 1:
        command += ["--weights", *(f"{w:g}" for w in weights)]
    if flips != own_flips:
        command += ["--flip", *(m for m, f in zip(members, flips) if f)]
    command += ["--name", name]
    import keras

    photo_member = next((e for e in entries if e.is_photo_model), None)
    lead_meta = lead.metadata
    metadata = {
        "arch": "ensemble",
        "title": "Ensemble of " + " + ".join(members),
        "source": "the weighted mean of its members' probabilities, each member at its own input size "
                  "(fashion_core/ensemble.py)",
        "paper_accuracy": "",
        ensemble.KEY: {"members": members, "weights": weights, "flip": [f and not use_tta for f in flips]},
        "hyper_parameters": {k: (lead_meta.get("hyper_parameters") or {}).get(k, default)
                             for k, default in (("validation_fraction", 0.1), ("seed", 0))},
        **{k: lead_meta[k] for k in ("dataset", "dataset_name", "class_names", "image_shape") if k in lead_meta},
        "params": int(sum(int(e.metadata.get("params") or 0) for e in entries)),
        "command": shlex.join(command),
        "member_commands": {e.name: e.metadata.get("command") for e in entries},
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "keras_version": keras.__version__,
    }
    if photo_member is not None:
        metadata["additions"] = photo_member.metadata["additions"]
    provisional = ModelEntry(name, registry.root / name, metadata)
    say("assembling the members")
    model = ensemble.build([registry.load_classifier(m) for m in members], weights, name=name,
                           flips=metadata[ensemble.KEY]["flip"])
    say("fitting the confidence calibration on the validation split")
    calibrator, calibration = calibrate_on_validation(model, training_dataset_for(provisional),
                                                      metadata["hyper_parameters"]["validation_fraction"],
                                                      metadata["hyper_parameters"]["seed"], use_tta)
    say("evaluating on the test set")
    dataset = dataset_for_model(provisional)
    predictions = test_set_predictions(model, dataset.x_test, use_tta)
    evaluation = evaluate_model(model, dataset, tta=use_tta, calibration=calibrator, predictions=predictions)
    calibration = {**calibration, **calibration_on_test(evaluation)} if calibration else None
    metadata.update({"test_size": int(len(dataset.y_test)), "test_accuracy": evaluation["accuracy"],
                     "test_loss": evaluation["loss"], "flip_tta_accuracy": evaluation.get("flip_tta_accuracy")})
    recipe = (metadata.get("additions") or {}).get("photos")
    if recipe:  # "none of these": a confidence threshold on the photos the members' training held out
        from .ood import calibrate_confidence
        from .photos import calibration_photos

        say("calibrating 'none of these' on the held-out photos")
        photos = calibration_photos(dataset.image_shape, recipe)
        metadata["ood"] = calibrate_confidence(served_probabilities(model, photos.images, use_tta), photos.labels)
    entry = registry.save(name, None, metadata, evaluation=evaluation, overwrite=overwrite,
                          extra_json={CALIBRATION_FILE: calibration} if calibration else None)
    say("storing what the pages need")
    precompute_and_store(name, registry=registry, model=model, dataset=dataset, predictions=predictions)
    return entry, evaluation
