"""``python -m fashion_core``: the command-line contract other tools script against.

Exit codes: 0 success, 2 bad input (one line on stderr, no traceback), 1 anything else.
With ``--json`` exactly one JSON value goes to stdout; Keras progress goes to stderr.

Every command is one row of ``COMMANDS`` (name, help, arguments, run). A command's ``run(args)``
returns ``(payload, human)`` — or ``(payload, human, failed)`` — and never prints its result:
``main`` prints the payload as JSON (``--json``) or the human text, in one place.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import shlex
import signal
import sys
import time
from dataclasses import dataclass

from . import cli_bench, cli_classify
from .errors import CommandError, FashionError, InvalidNameError

EXIT_OK, EXIT_FAILURE, EXIT_BAD_INPUT = 0, 1, 2


def _add_dataset_args(parser, photos=False):
    parser.add_argument("--data-dir", help="catalogue folder (one subfolder per class) or CSV of path,label")
    parser.add_argument("--image-size", type=int, default=None, help="model resolution in pixels (default 28)")
    parser.add_argument("--color", action="store_true", help="colour model (default grayscale)")
    if photos:
        parser.add_argument("--photos", nargs="?", const="", metavar="DIR",
                            help="add the real photos' train split (labels.csv + images/; default $FASHION_PHOTOS_DIR "
                                 "or ../shared/data/real-photos) to Fashion-MNIST: a model for uploaded photos")
        parser.add_argument("--replay", type=int, default=12000,
                            help="with --photos: Fashion-MNIST training images mixed in (default 12000)")
        parser.add_argument("--phone-repeat", type=int, default=1,
                            help="with --photos: show each phone photo this many times per epoch (default 1)")


def _print_load_progress(done, total):
    """Catalogue decoding progress on stderr (a 44k-image folder takes minutes)."""
    end = "\n" if done >= total else ""
    print(f"\rreading images: {done}/{total}", end=end, file=sys.stderr, flush=True)


def _dataset_from_args(args):
    photos = getattr(args, "photos", None)
    if getattr(args, "data_dir", None):
        if photos is not None:
            raise CommandError("--photos adds real photos to Fashion-MNIST; it does not apply with --data-dir.")
        from .catalogue import load_catalogue

        return load_catalogue(path=args.data_dir, image_size=args.image_size or 28, color=args.color,
                              progress=_print_load_progress)
    if photos is not None:
        from .photos import photo_training_dataset

        size = args.image_size or 28
        return photo_training_dataset((size, size, 3 if args.color else 1), folder=photos or None,
                                      replay=args.replay, phone_repeat=args.phone_repeat, seed=args.seed,
                                      progress=_print_load_progress)
    from .data import load_fashion_mnist

    return load_fashion_mnist(image_size=getattr(args, "image_size", None), color=getattr(args, "color", False))


def _train_config(args):
    from .training import TrainConfig, get_preset

    preset = getattr(args, "preset", None)
    if preset:
        preset = get_preset(preset)
        if args.arch and args.arch != preset.arch:
            raise CommandError(f"--preset {preset.name} trains {preset.arch}; drop --arch {args.arch}.")
        options = {**preset.build_options, **_build_options(getattr(args, "option", None) or [])}
        return preset.config(
            epochs=args.epochs, batch_size=getattr(args, "batch_size", None),
            optimizer=getattr(args, "optimizer", None), learning_rate=getattr(args, "lr", None),
            validation_fraction=getattr(args, "val_fraction", 0.1), seed=args.seed, limit=args.limit,
            precision=getattr(args, "precision", "float32"), class_weights=getattr(args, "class_weights", False),
            init_from=getattr(args, "init_from", None), build_options=options,
            devices=_devices(getattr(args, "devices", None)),
        )
    if not args.arch:
        raise CommandError("train needs --arch ARCH or --preset NAME.")
    return TrainConfig(
        arch=args.arch, epochs=args.epochs, batch_size=getattr(args, "batch_size", None),
        optimizer=getattr(args, "optimizer", None), learning_rate=getattr(args, "lr", None),
        validation_fraction=getattr(args, "val_fraction", 0.1), seed=args.seed, limit=args.limit,
        precision=getattr(args, "precision", "float32"),
        pretrain_epochs=getattr(args, "pretrain_epochs", None),
        fine_tune_epochs=getattr(args, "fine_tune_epochs", None),
        class_weights=getattr(args, "class_weights", False),
        init_from=getattr(args, "init_from", None), lr_schedule=getattr(args, "lr_schedule", None),
        build_options=_build_options(getattr(args, "option", None) or []),
        head_epochs=getattr(args, "head_epochs", None), unfreeze=getattr(args, "unfreeze", None),
        devices=_devices(getattr(args, "devices", None)),
    )


def _devices(text):
    """``--devices N|all`` → N or "all" (None without the option)."""
    if text is None or text == "all":
        return text
    try:
        return int(text)
    except ValueError:
        raise CommandError(f"--devices takes a whole number or 'all'; got {text!r}.") from None


def _build_options(pairs):
    """``["width=32", "output=sigmoid"]`` → ``{"width": 32, "output": "sigmoid"}`` (values read
    as JSON where they parse: numbers, true/false; else as text)."""
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise CommandError(f"--option takes KEY=VALUE; got {pair!r}.")
        try:
            options[key.strip()] = json.loads(value)
        except ValueError:
            options[key.strip()] = value
    return options




def _transfer_run(args, registry):
    """``(config, dataset)`` of ``train --from MODEL`` onto a catalogue (or from an ImageNet
    backbone): the backbone is checked (model, weights, shape) before any image is read."""
    from . import transfer

    backbone = transfer.resolve_backbone(args.init_from, registry, args.weights)
    if args.arch and args.arch != backbone.arch:
        raise CommandError(f"--arch {args.arch} differs from {backbone.source}'s architecture ({backbone.arch}); "
                           "leave --arch out with --from.")
    shape = transfer.catalogue_shape(backbone, args.image_size, True if args.color else None)
    transfer.check_fits(backbone, shape)
    config = transfer.transfer_config(
        backbone, epochs=args.epochs, learning_rate=args.lr, batch_size=args.batch_size, head_epochs=args.head_epochs,
        unfreeze=args.unfreeze, seed=args.seed, validation_fraction=args.val_fraction, class_weights=args.class_weights,
        limit=args.limit, precision=args.precision, optimizer=args.optimizer)
    transfer.check_weights_available(backbone)
    args.image_size, args.color = shape[0], shape[2] == 3
    return config, _dataset_from_args(args)


def cmd_train(args):
    from . import zoo
    from .registry import Registry, suggest_name
    from .runs import train_and_save

    registry = Registry()
    transfer_run = bool(args.init_from) and (bool(args.data_dir) or args.init_from.startswith("imagenet:"))
    if args.weights and not transfer_run and not (args.arch and "weights" in zoo.build_options_of(args.arch)):
        raise CommandError("--weights applies with --from imagenet:NAME or an architecture built on ImageNet "
                           "weights (--arch vgg16_transfer).")
    if not args.arch and not args.init_from and not args.preset:
        raise CommandError("train needs --arch ARCH or --preset NAME (or --from MODEL to start from a trained model).")
    if not transfer_run:
        if not args.preset:
            args.arch = args.arch or registry.get(args.init_from).metadata.get("arch")
        config = _train_config(args)
        if args.weights:  # VGG16's ImageNet weights from a local file (offline)
            config = dataclasses.replace(config, build_options={**config.build_options,
                                                                "weights": zoo.local_weights_file(args.weights)})
        config = config.resolve()  # fail fast before loading data
    name = args.name or suggest_name(f"{args.preset or args.arch or args.init_from}-{args.epochs or 'default'}ep")
    try:
        registry.check_name_free(name, args.overwrite)
    except InvalidNameError as exc:
        raise CommandError(f"{exc} (command line: use --name or --overwrite)") from None
    if transfer_run:
        config, dataset = _transfer_run(args, registry)
    else:
        dataset = _dataset_from_args(args)
    command = shlex.join(["python", "-m", "fashion_core", *(a for a in sys.argv[1:] if a not in ("--record-argv", "--json"))]) if args.record_argv else None
    entry, result, evaluation = train_and_save(
        dataset, config, name, registry=registry, verbose=1 if not args.quiet else 0,
        overwrite=args.overwrite, command=command,
    )
    meta = entry.metadata
    payload = {
        "name": entry.name,
        "arch": meta["arch"],
        "test_accuracy": meta["test_accuracy"],
        "flip_tta_accuracy": meta.get("flip_tta_accuracy"),
        "epochs": meta["epochs_run"],
        "train_seconds": meta["train_seconds"],
        "preset": args.preset,
        "params": meta["params"],
        "path": str(entry.path),
    }
    if meta.get("parent"):
        payload["parent"] = meta["parent"]
        payload["lineage"] = entry.lineage
    wall = round(time.perf_counter() - args.started, 1)
    registry.update_metadata(entry.name, wall_seconds=wall)
    payload["wall_seconds"] = wall  # everything: reading images, training, evaluation, saving
    human = (f"saved {entry.name} ({meta['arch']}"
             + (f", from {' ← '.join(entry.lineage)}" if meta.get("parent") else "")
             + f"): test accuracy {meta['test_accuracy']:.4f}"
             + (f", flip-TTA {meta['flip_tta_accuracy']:.4f}" if meta.get("flip_tta_accuracy") else "")
             + f", {meta['train_seconds']:.0f} s of training, {wall:.0f} s in all → {entry.path}")
    return payload, human


def cmd_evaluate(args):
    from .runs import evaluate_and_store

    result = evaluate_and_store(args.name)
    payload = {"name": args.name, **{k: result[k] for k in ("accuracy", "loss", "top_k_accuracy", "confusion_matrix", "per_class", "macro_f1", "n_samples")}}
    calibration = result["calibration"]
    payload["calibration"] = {k: calibration[k] for k in ("ece", "ece_before", "method", "temperature", "bins")}
    lines = [f"{args.name}: accuracy {result['accuracy']:.4f}, loss {result['loss']:.4f} on {result['n_samples']} test images",
             f"calibration: ECE {calibration['ece_before']:.4f} → {calibration['ece']:.4f} ({calibration['method']}, "
             f"temperature {calibration['temperature']:.3f}; {len(calibration['bins'])} bins)",
             f"{'class':<14}{'precision':>10}{'recall':>8}{'f1':>8}{'specif.':>9}{'support':>9}"]
    for row in result["per_class"]:
        lines.append(f"{row['class']:<14}{row['precision']:>10.3f}{row['recall']:>8.3f}{row['f1']:>8.3f}"
                     f"{row['specificity']:>9.3f}{row['support']:>9d}")
    return payload, "\n".join(lines)


def cmd_precompute(args):
    from .registry import Registry
    from .runs import precompute_and_store

    names = [args.name] if args.name else Registry().names()
    rows = []
    for name in names:
        path, sizes = precompute_and_store(name)
        rows.append({"name": name, "path": str(path), **sizes})
    human = "\n".join(f"{r['name']}: {r['precomputed_bytes'] / 1e6:.2f} MB beside the model, "
                      f"{r['embeddings_bytes'] / 1e6:.1f} MB of gallery embeddings "
                      + ("beside it too (a photo model)" if r["embeddings_beside_model"] else "in the cache") for r in rows)
    return {"models": rows}, human or "no models in the registry"


def _optional_name_argument(parser):
    parser.add_argument("name", nargs="?", help="one model (default: every model in the registry)")


def cmd_calibrate(args):
    from .runs import calibrate_and_store

    result = calibrate_and_store(args.name)
    payload = {"name": args.name, **{k: result[k] for k in ("method", "temperature", "ece_before", "ece", "fitted_on",
                                                            "validation_images", "test_images", "flip_tta")}}
    human = (f"{args.name}: {result['method']} (temperature {result['temperature']:.3f}) fitted on the "
             f"{result['fitted_on']}; test-set ECE {result['ece_before']:.4f} → {result['ece']:.4f} "
             f"({result['test_images']} images); stored in calibration.json")
    return payload, human


def cmd_audit_labels(args):
    from .audit import audit_labels, check_folds
    from .registry import Registry, validate_name

    check_folds(args.folds)
    if args.limit is not None and args.limit < 2:
        raise CommandError(f"--limit must be at least 2; got {args.limit}.")
    if args.rows < 1:
        raise CommandError(f"--rows must be at least 1; got {args.rows}.")
    name = validate_name(args.name or f"{args.arch}-{args.folds}fold" + (f"-{args.limit}" if args.limit else ""))
    config = _train_config_for_audit(args)
    dataset = _dataset_from_args(args)
    result = audit_labels(dataset, config, folds=args.folds, limit=args.limit, stored_rows=args.rows,
                          verbose=0 if args.quiet else 1, say=lambda line: print(line, file=sys.stderr))
    result["name"] = name
    path = Registry().save_audit(name, result)
    names = result["class_names"]
    lines = [f"label audit {name!r} ({result['arch']}, {result['folds']} folds × {result['epochs']} epochs): "
             f"{result['flagged']} of {result['audited']} training labels flagged; saved to {path}",
             f"{'rank':>5}{'index':>8}  {'given':<14}{'suggested':<14}{'score':>7}"]
    for rank, row in enumerate(result["issues"][:20], start=1):
        lines.append(f"{rank:>5}{row['index']:>8}  {names[row['given']]:<14}{names[row['suggested']]:<14}{row['score']:>7.3f}")
    return {**result, "path": str(path)}, "\n".join(lines)


def _train_config_for_audit(args):
    from .training import TrainConfig

    return TrainConfig(arch=args.arch, epochs=args.epochs, seed=args.seed, validation_fraction=0.0).resolve()


def _ray_argument(p, what):
    p.add_argument("--ray", nargs="?", const="local", metavar="ADDRESS",
                   help=f"train the {what} at the same time as Ray tasks: on this machine, or on the cluster at ADDRESS")


def _task_lines(what, quiet):
    """A ``TrainingProgress`` that says on stderr when each Ray task (a fold, a run) finishes."""
    from .training import TrainingProgress

    class TaskLines(TrainingProgress):

        def __init__(self, what, quiet):
            self.what, self.quiet = what, quiet

        def on_task_end(self, index, total):
            if not self.quiet:
                print(f"{self.what} {index + 1} of {total} finished", file=sys.stderr, flush=True)

    return TaskLines(what, quiet)


def cmd_cv(args):
    from .training import TrainConfig, cross_validate

    config = TrainConfig(arch=args.arch, epochs=args.epochs, seed=args.seed, limit=args.limit,
                         validation_fraction=0.0).resolve()
    dataset = _dataset_from_args(args)
    result = cross_validate(dataset, config, folds=args.folds, verbose=0 if args.quiet else 1, ray=args.ray,
                            progress=_task_lines("fold", args.quiet))
    if args.save_to:
        from .registry import Registry

        Registry().update_json(args.save_to, "cv.json", result)
    lines = [f"{args.folds}-fold cross-validation of {args.arch}:"]
    for row in result["folds"]:
        lines.append(f"  fold {row['fold']}: train {row['train_accuracy']:.4f}  test {row['test_accuracy']:.4f}")
    lines.append(f"  mean test {result['mean_test_accuracy']:.4f} ± {result['std_test_accuracy']:.4f}, "
                 f"mean train {result['mean_train_accuracy']:.4f} ± {result['std_train_accuracy']:.4f}")
    return result, "\n".join(lines)


def cmd_sweep(args):
    from .training import TrainConfig, sweep

    config = TrainConfig(arch=args.arch, epochs=args.epochs, seed=args.seed, limit=args.limit).resolve()
    dataset = _dataset_from_args(args)
    result = sweep(dataset, config, optimizers=args.optimizers, learning_rates=args.lrs,
                   verbose=0 if args.quiet else 1, ray=args.ray, progress=_task_lines("run", args.quiet))
    if args.save_to:
        from .registry import Registry

        Registry().update_json(args.save_to, "sweep.json", result)
    lines = [f"{'optimizer':<10}{'lr':>10}{'val acc':>9}{'test acc':>10}"]
    for r in result["runs"]:
        lines.append(f"{r['optimizer']:<10}{r['learning_rate']:>10g}{r['val_accuracy']:>9.4f}{r['test_accuracy']:>10.4f}")
    return result, "\n".join(lines)


def cmd_finetune(args):
    from .finetune import finetune_and_save

    say = (lambda line: None) if args.quiet else (lambda line: print(line, file=sys.stderr, flush=True))
    result = finetune_and_save(args.base, args.data_csv, args.name, epochs=args.epochs, learning_rate=args.lr,
                               replay=args.replay, correction_share=args.correction_share,
                               batch_size=args.batch_size, heldout_fraction=args.heldout, seed=args.seed,
                               verbose=0 if args.quiet else 1, say=say)
    before, after = result["before"], result["after"]

    def pct(value):
        return "–" if value is None else f"{value:.1%}"

    lines = [f"saved {result['name']} (fine-tuned from {result['base']} on {result['corrections']} photos, "
             f"{result['heldout']} held out by {result['split']} split) → {result['path']}",
             f"held-out photos: {pct(before['heldout_accuracy'])} → {pct(after['heldout_accuracy'])}; "
             f"{result['base']}'s test set: {pct(before['test_accuracy'])} → {pct(after['test_accuracy'])}; "
             f"{result['train_seconds']:.0f} s of training"]
    lines += [f"skipped {file}: {reason}" for file, reason in result["skipped"]]
    return result, "\n".join(lines)


def cmd_list(args):
    from .registry import Registry

    entries, problems = Registry().scan()
    rows = [e.summary() for e in entries]
    for folder, reason in problems:
        print(f"skipped {folder}: {reason}", file=sys.stderr)
    if not rows:
        return rows, "no models yet: train one with `python -m fashion_core train --arch fashion_net`."
    lines = [f"{'name':<28}{'arch':<22}{'test acc':>9}{'size MB':>9}  created"]
    for r in rows:
        acc = f"{r['test_accuracy']:.4f}" if isinstance(r["test_accuracy"], (int, float)) else "-"
        lines.append(f"{r['name']:<28}{r['arch']:<22}{acc:>9}{r['size_mb']:>9}  {r['created']}")
    return rows, "\n".join(lines)


def cmd_import(args):
    from .loaders import load_dataset
    from .registry import Registry, dataset_metadata

    dataset = _dataset_from_args(args) if args.data_dir else load_dataset()
    entry = Registry().import_model(args.file, args.name, dataset_metadata(dataset))
    return {"name": entry.name, "path": str(entry.path)}, f"imported {args.file} as {entry.name}"


def cmd_export(args):
    from .export import export_model

    out = export_model(args.name, args.out, args.format)
    return out, f"exported {args.name} ({args.format}) → {out['path']} (preprocessing: {out['preprocessing']})"


def cmd_ensemble(args):
    from .runs import ensemble_and_save

    def say(message):
        if not args.quiet:
            print(f"{args.name}: {message}…", file=sys.stderr, flush=True)

    entry, evaluation = ensemble_and_save(args.members, args.name, weights=args.weights, overwrite=args.overwrite,
                                          progress=say, flip=args.flip)
    meta = entry.metadata
    ood = meta.get("ood") or {}
    payload = {"name": entry.name, "members": entry.members, "weights": meta["ensemble"]["weights"],
               "flip": meta["ensemble"]["flip"],
               "test_accuracy": meta["test_accuracy"], "flip_tta_accuracy": meta.get("flip_tta_accuracy"),
               "heldout_photo_accuracy": ood.get("in_accuracy"), "min_confidence": ood.get("min_confidence"),
               "command": meta["command"], "seconds": round(time.perf_counter() - args.started, 1)}
    human = (f"saved ensemble {entry.name} ({' + '.join(entry.members)}): test accuracy {evaluation['accuracy']:.2%}"
             + (f", held-out photos {ood['in_accuracy']:.1%}" if ood.get("in_accuracy") is not None else "")
             + f" ({payload['seconds']:.0f} s)")
    return payload, human


def _ensemble_arguments(p):
    p.add_argument("members", nargs="+", metavar="MODEL",
                   help="two or more registry models with the same classes; the first sets the input size")
    p.add_argument("--weights", nargs="+", type=float, metavar="W", help="one positive weight per member (default equal)")
    p.add_argument("--flip", nargs="*", metavar="MODEL",
                   help="the members that answer with flip test-time augmentation (the mean with the mirror image; "
                        "default: those served so on their own; --flip alone: none)")
    p.add_argument("--name", required=True, help="the new registry model")
    p.add_argument("--overwrite", action="store_true", help="replace a model of that name")
    p.add_argument("--quiet", action="store_true", help="no progress")


def cmd_delete(args):
    from .registry import Registry

    Registry().delete(args.name)
    return {"name": args.name, "deleted": True}, f"deleted {args.name}"


def _train_arguments(p):
    from .training import LR_SCHEDULES, OPTIMIZERS, PRECISIONS, PRESETS, UNFREEZE
    from .zoo import ARCHITECTURES

    p.add_argument("--arch", choices=list(ARCHITECTURES),
                   help="the architecture; not needed with --preset, or with --from naming the model to start from")
    p.add_argument("--preset", choices=list(PRESETS),
                   help="a measured recipe: quick = FashionNet, width 24, 12 epochs (docs/QUICK.md)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--optimizer", choices=list(OPTIMIZERS))
    p.add_argument("--lr", type=float)
    p.add_argument("--lr-schedule", choices=list(LR_SCHEDULES),
                   help="constant, or warmup_cosine (a short warm-up, then cosine decay to zero over the epochs); "
                        "default: the architecture's")
    p.add_argument("--val-fraction", type=float, default=0.1)
    p.add_argument("--limit", type=int, help="train on a random subset of this many images")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--name")
    p.add_argument("--devices", metavar="N|all",
                   help="train one model over N devices of this machine (its GPUs, else its logical CPUs) with "
                        "MirroredStrategy; --batch-size is then the global batch")
    p.add_argument("--precision", choices=list(PRECISIONS), default="float32",
                   help="mixed_bfloat16 trains faster on CPUs with bf16 support; the saved model is float32")
    p.add_argument("--pretrain-epochs", type=int, help="autoencoder epochs (autoencoder models)")
    p.add_argument("--fine-tune-epochs", type=int, help="whole-network fine-tuning epochs (conv_autoencoder)")
    p.add_argument("--class-weights", action="store_true", help="balance classes by weighting the loss")
    p.add_argument("--from", dest="init_from", metavar="MODEL",
                   help="start from this registry model's weights (fine-tuning) instead of random ones; with --data-dir, "
                        "or imagenet:NAME, a new head for the catalogue's classes, then fine-tuning (docs/TRANSFER.md)")
    p.add_argument("--weights", metavar="FILE", help="a local ImageNet weights file (offline), with --from imagenet:NAME "
                                                   "or --arch vgg16_transfer (Keras' vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5)")
    p.add_argument("--head-epochs", type=int, help="with --from onto a catalogue: epochs of the new head alone")
    p.add_argument("--unfreeze", choices=list(UNFREEZE), help="with --from onto a catalogue: layers fine-tuned")
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="an architecture option, e.g. output=sigmoid (seed004_cnn) or width=32 (fashion_net)")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--record-argv", action="store_true", help=argparse.SUPPRESS)
    _add_dataset_args(p, photos=True)


def _finetune_arguments(p):
    from .finetune import DEFAULTS

    p.add_argument("base", help="the registry model to start from (never changed)")
    p.add_argument("--data-csv", required=True, metavar="FILE",
                   help="CSV of path,label[,group] rows; labels are class names of BASE; relative paths from the CSV's folder")
    p.add_argument("--name", required=True, help="the new registry model")
    p.add_argument("--epochs", type=int, help=f"default {DEFAULTS.epochs}")
    p.add_argument("--lr", type=float, help=f"peak learning rate (AdamW, warm-up + cosine; default {DEFAULTS.learning_rate:g})")
    p.add_argument("--replay", type=int, help=f"images of BASE's own training data mixed in (default {DEFAULTS.replay})")
    p.add_argument("--correction-share", type=float,
                   help=f"share of each epoch that is your photos (repeated to reach it; default {DEFAULTS.correction_share})")
    p.add_argument("--batch-size", type=int, help=f"default {DEFAULTS.batch_size}")
    p.add_argument("--heldout", type=float, default=0.2,
                   help="share of the photos held out to measure before / after (whole groups with a group column; default 0.2)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true", help="no progress")


def _name_argument(p):
    p.add_argument("name")


def _cv_arguments(p):
    from .zoo import ARCHITECTURES

    p.add_argument("--arch", required=True, choices=list(ARCHITECTURES))
    p.add_argument("--folds", type=int, default=5)
    _ray_argument(p, "folds")
    p.add_argument("--epochs", type=int)
    p.add_argument("--limit", type=int)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--save-to", metavar="MODEL", help="store the result with this registry model")
    p.add_argument("--quiet", action="store_true")
    _add_dataset_args(p)


def _sweep_arguments(p):
    from .training import OPTIMIZERS
    from .zoo import ARCHITECTURES

    p.add_argument("--arch", required=True, choices=list(ARCHITECTURES))
    p.add_argument("--optimizers", nargs="+", default=["adam", "rmsprop", "adadelta"], choices=list(OPTIMIZERS))
    p.add_argument("--lrs", nargs="+", type=float, default=[1e-3, 1e-4])
    _ray_argument(p, "runs")
    p.add_argument("--epochs", type=int)
    p.add_argument("--limit", type=int)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--save-to", metavar="MODEL")
    p.add_argument("--quiet", action="store_true")
    _add_dataset_args(p)


def _audit_arguments(p):
    from .audit import DEFAULT_ARCH, DEFAULT_EPOCHS, DEFAULT_FOLDS, STORED_ROWS
    from .zoo import ARCHITECTURES

    p.add_argument("--arch", default=DEFAULT_ARCH, choices=list(ARCHITECTURES),
                   help=f"architecture of the fold models (default {DEFAULT_ARCH}: fast)")
    p.add_argument("--folds", type=int, default=DEFAULT_FOLDS, help=f"k of k-fold (2-20, default {DEFAULT_FOLDS})")
    p.add_argument("--epochs", type=int, default=DEFAULT_EPOCHS, help=f"epochs per fold model (default {DEFAULT_EPOCHS})")
    p.add_argument("--limit", type=int, help="audit a seeded sample of this many training images (speed)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--name", help="save the audit under this name (default: ARCH-Kfold[-LIMIT])")
    p.add_argument("--rows", type=int, default=STORED_ROWS, help=f"most suspicious rows kept (default {STORED_ROWS})")
    p.add_argument("--quiet", action="store_true")
    _add_dataset_args(p)


def _no_arguments(p):
    pass


def _import_arguments(p):
    p.add_argument("file")
    p.add_argument("--name", required=True)
    _add_dataset_args(p)


def _export_arguments(p):
    from .export import FORMATS

    p.add_argument("name")
    p.add_argument("out", help="a file (keras, tflite) or a folder to create (savedmodel)")
    p.add_argument("--format", default="keras", metavar="|".join(FORMATS),
                   help="keras (default), savedmodel (TF Serving) or tflite (phones, edge devices)")


def _batch_arguments(p):
    p.add_argument("source", help="a folder, a path,label CSV, a glob or a single file; local or an fsspec URL (s3://, gs://)")
    p.add_argument("--model", required=True, help="registry model name")
    p.add_argument("--out", required=True, help="output folder: predictions/*.parquet and errors.parquet (a rerun resumes)")
    p.add_argument("--embed", action="store_true", help="also store each image's embedding (visual search)")
    p.add_argument("--address", help="an existing Ray cluster (ray://HOST:10001 or HOST:6379); default: Ray on this machine")
    p.add_argument("--workers", type=int, help="model copies (Ray actors); default: one per CPU")
    p.add_argument("--batch-size", type=int, default=64)


def cmd_batch(args):
    from .batch import run_batch

    summary = run_batch(args.source, args.model, args.out, embed=args.embed, address=args.address,
                        workers=args.workers, batch_size=args.batch_size,
                        progress=lambda line: print(f"batch: {line}", file=sys.stderr, flush=True))
    payload = {k: summary[k] for k in ("rows", "errors", "skipped", "seconds", "images_per_second")}
    human = (f"{summary['rows']} images classified, {summary['errors']} unreadable (errors.parquet), "
             f"{summary['skipped']} already done; {summary['seconds']:.1f} s, {summary['images_per_second']:.1f} images/s "
             f"with {summary['workers']} worker(s) → {summary['out']}")
    return payload, human


def _serve_arguments(p):
    p.add_argument("--model", help="registry model name (default: the default photo model)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface)")
    p.add_argument("--replicas", type=int, default=1, help="copies of the model answering requests")
    p.add_argument("--address", help="an existing Ray cluster (ray://HOST:10001 or HOST:6379); default: Ray on this machine")


def cmd_serve(args):
    """Start the API and keep it up until Ctrl-C (then stop it cleanly)."""
    from . import serving

    url = serving.start(args.model, port=args.port, replicas=args.replicas, address=args.address, host=args.host)
    try:  # a Ctrl-C that lands while this prints still stops what started (SIGTERM: Ray's handler exits via finally)
        print(f"serving {url} with {args.replicas} replica(s); OpenAPI page {url}/docs; Ctrl-C stops", file=sys.stderr, flush=True)
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        serving.stop()
    return {"url": url, "replicas": args.replicas, "stopped": True}, f"stopped {url}"


def _dashboard_arguments(p):
    p.add_argument("--processes", type=int, default=2,
                   help="dashboard processes behind HAProxy (1: a single process, as `streamlit run app.py`)")
    p.add_argument("--port", type=int, default=8501)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface)")


def cmd_dashboard(args):
    """Start the dashboard (several processes behind HAProxy) and keep it up until Ctrl-C or
    SIGTERM (`kill`, a service manager), which stop it and its children the same way."""
    from . import dashboard

    running, stop_asked = None, []

    def interrupt(signum, frame):
        if running is None:  # still starting: `start` stops whatever it began
            raise KeyboardInterrupt
        stop_asked.append(signum)  # the loop below sees it; a second signal cannot cut `stop` short

    previous = {s: signal.signal(s, interrupt) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        running = dashboard.start(args.processes, port=args.port, host=args.host, capture_output=False)
        try:
            behind = (f"{args.processes} processes behind HAProxy; the addresses they print above are private to it"
                      if args.processes > 1 else "1 process")
            print(f"\nFashion Studio: open {running.url} ({behind}). Ctrl-C stops it.", file=sys.stderr, flush=True)
            while not stop_asked and running.alive():
                time.sleep(0.2)
        finally:
            stopped_itself = not stop_asked and not running.alive()
            running.stop()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    payload = {"url": running.url, "processes": args.processes, "stopped": True}
    if stopped_itself:
        return payload, f"a process of {running.url} stopped; all stopped", True
    return payload, f"stopped {running.url}"


@dataclass(frozen=True)
class Command:
    """One sub-command: its help line, a function adding its arguments to a parser, and
    ``run(args)`` → ``(payload, human)`` or ``(payload, human, failed)``."""

    help: str
    arguments: object
    run: object


COMMANDS = {
    "train": Command("train a model and save it to the registry", _train_arguments, cmd_train),
    "evaluate": Command("evaluate a saved model on its dataset's test set", _name_argument, cmd_evaluate),
    "precompute": Command("store what the dashboard's pages need (test probabilities, embeddings, 2-D map)",
                          _optional_name_argument, cmd_precompute),
    "calibrate": Command("fit a model's confidence calibration on its validation split and store it",
                         _name_argument, cmd_calibrate),
    "audit-labels": Command("rank the training labels out-of-fold models dispute (confident learning)",
                            _audit_arguments, cmd_audit_labels),
    "cv": Command("k-fold cross-validation (seed 003's method)", _cv_arguments, cmd_cv),
    "sweep": Command("compare optimizers and learning rates (seed 000's study)", _sweep_arguments, cmd_sweep),
    "finetune": Command("improve a model with your labelled photos (a new model; before / after on held-out photos "
                        "and the test set)", _finetune_arguments, cmd_finetune),
    "ensemble": Command("register an ensemble of registry models (one model averaging their answers; no new weights)",
                        _ensemble_arguments, cmd_ensemble),
    "list": Command("list the models in the registry", _no_arguments, cmd_list),
    "import": Command("add a .keras file to the registry (validated, safe mode)", _import_arguments, cmd_import),
    "export": Command("export a model for deployment (.keras, SavedModel or TFLite, + preprocessing.json)", _export_arguments, cmd_export),
    "delete": Command("delete a model from the registry", _name_argument, cmd_delete),
    "batch": Command("classify (and embed) a whole folder, CSV or glob with Ray Data into Parquet (resumable)",
                     _batch_arguments, cmd_batch),
    "serve": Command("serve the HTTP API (POST /classify, GET /models, /healthz, /docs) with Ray Serve replicas",
                     _serve_arguments, cmd_serve),
    "dashboard": Command("run the dashboard as several processes behind HAProxy (many visitors at once on one machine)",
                         _dashboard_arguments, cmd_dashboard),
    "classify": Command("classify image files (photos or dataset-style images)", cli_classify.add_arguments,
                        cli_classify.cmd_classify),
    "bench": Command("benchmark accuracy, throughput, latency and retrieval of the shipped models",
                     cli_bench.add_arguments, cli_bench.cmd_bench),
}


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m fashion_core", description="Fashion image classification studio: engine CLI.")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, command in COMMANDS.items():
        p = sub.add_parser(name, help=command.help)
        command.arguments(p)
        p.add_argument("--json", action="store_true")
        p.set_defaults(run=command.run)
    return parser


def print_result(payload, human, as_json, out):
    """The one place a command's result is printed: JSON with ``--json``, else the human text."""
    print(json.dumps(payload, default=float) if as_json else human, file=out)


def main(argv=None):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    started = time.perf_counter()  # commands report their own wall clock from here
    args = build_parser().parse_args(argv)
    args.started = started
    as_json = getattr(args, "json", False)
    out = sys.stdout  # the payload goes here even while Keras' output is redirected
    # With --json, stdout carries exactly one JSON value: Keras' progress goes to stderr.
    redirect = contextlib.redirect_stdout(sys.stderr) if as_json else contextlib.nullcontext()
    try:
        with redirect:
            payload, human, *failed = args.run(args)
    except FashionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_FAILURE
    print_result(payload, human, as_json, out)
    return EXIT_BAD_INPUT if failed and failed[0] else EXIT_OK
