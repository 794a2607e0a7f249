"""Start a catalogue model from a model that knows clothes (``train --data-dir CAT --from MODEL``).

The backbone is a registry classifier (``photo_net``, ``fashion_net``, ...) or an ImageNet
network (``imagenet:mobilenet_v3_small``). The new model is the backbone's architecture built for
the catalogue's classes; the backbone's weights are copied in (``training.transfer_weights``: a
new class count gets a fresh head), then ``SCHEDULE`` trains: the head alone on the frozen
backbone's embeddings, then fine-tuning. docs/TRANSFER.md says how the schedule was chosen.

A backbone that cannot be used says why in one line (``InvalidParameterError``): unknown model,
a model without a classifier, an architecture tied to its input size asked for another one,
images smaller than the architecture takes, ImageNet weights neither downloadable nor given.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import zoo
from .errors import InvalidParameterError, ModelNotFoundError
from .registry import Registry, default_entry
from .training import TrainConfig

IMAGENET_PREFIX = "imagenet:"


@dataclass(frozen=True)
class TransferSchedule:
    """The default transfer schedule (measured: docs/TRANSFER.md)."""

    head_epochs: int = 20      # a new head alone, on the frozen backbone's embeddings (seconds)
    epochs: int = 10           # then fine-tuning, warm-up + cosine learning rate
    learning_rate: float = 2e-3
    batch_size: int = 64
    unfreeze: str = "top"      # training.UNFREEZE: the last block, the embedding and the head
    freeze_bn: bool = True     # batch norm statistics stay the backbone's (small catalogues)
    optimizer: str = "adamw"


SCHEDULE = TransferSchedule()


@dataclass(frozen=True)
class Backbone:
    """What ``--from`` names.

    Attributes
    ----------
    source : str
        ``"photo_net"`` or ``"imagenet:mobilenet_v3_small"`` (recorded as the model's parent).
    arch : str
        The zoo architecture the new model is built with.
    image_shape : tuple (H, W, C)
        The input the backbone was trained at: a catalogue is loaded at this shape unless the
        user asks for another one (and the architecture takes any size).
    lineage : tuple of str
        The backbone and the models it descends from, nearest first.
    weights : str or None
        ImageNet backbones: a local weights file, else None (Keras' download / cache).
    images_per_second : float or None
        Recorded training throughput (the backbone's own training run), for the expected time.
    """

    source: str
    arch: str
    image_shape: tuple
    lineage: tuple
    weights: str | None = None
    images_per_second: float | None = None
    build_options: tuple = ()  # the backbone's own builder options (e.g. a width), as (key, value) pairs

    @property
    def is_imagenet(self):
        return self.source.startswith(IMAGENET_PREFIX)


def imagenet_backbones():
    """Names usable after ``imagenet:`` (zoo architectures with ImageNet weights)."""
    return [name for name, spec in zoo.ARCHITECTURES.items() if spec.imagenet]


def usable_as_backbone(entry):
    """True for a registry classifier whose architecture can be rebuilt for other classes (not
    imported, not a two-stage autoencoder model)."""
    spec = zoo.ARCHITECTURES.get(entry.metadata.get("arch"))
    return bool(spec and not spec.pretrain and entry.metadata.get("class_names"))


def start_from_choices(entries):
    """What "Start from" offers: the registry's usable classifiers, then the ImageNet backbones."""
    return [e.name for e in entries if usable_as_backbone(e)] + [IMAGENET_PREFIX + n for n in imagenet_backbones()]


# Largest input (values) of a backbone pre-selected for a catalogue: the transfer's time grows
# with it. Measured on issue 17's 20-class catalogue (README's transfer table): from photo_net
# (48x48x3) 90.0% in 2.7 min, within the five-minute goal; from photo_lite0 (128x128x3) 91.9% in
# 7.1 min. Larger backbones stay one click away in "Start from".
QUICK_START_VALUES = 64 * 64 * 3


def default_start_from(entries):
    """The backbone to pre-select: the best photo model (on the photos its training held out; it
    has seen product shots: docs/TRANSFER.md) among those small enough to learn a catalogue within
    minutes (``QUICK_START_VALUES``), else the best usable model of any size, else the best
    Fashion-MNIST classifier, else None."""
    usable = [e for e in entries if usable_as_backbone(e)]
    quick = [e for e in usable if int(np.prod(e.metadata.get("image_shape") or (28, 28, 1))) <= QUICK_START_VALUES]
    best = default_entry([e for e in quick if e.is_photo_model]) or default_entry(usable, any_dataset=True)
    return best.name if best is not None else None


def resolve_backbone(source, registry=None, weights=None):
    """The ``Backbone`` that ``--from SOURCE`` names, or a one-line ``InvalidParameterError``."""
    source = str(source or "").strip()
    if not source:
        raise InvalidParameterError("--from needs a registry model or imagenet:NAME.")
    registry = registry or Registry()
    if source.startswith(IMAGENET_PREFIX):
        return _imagenet_backbone(source, weights, registry)
    if weights:
        raise InvalidParameterError("--weights loads ImageNet weights; it applies with --from imagenet:NAME only.")
    try:
        entry = registry.get(source)
    except ModelNotFoundError:
        names = registry.names()
        raise InvalidParameterError(
            f"unknown model {source!r} for --from; choose a registry model ({', '.join(names) or 'none yet'}) "
            f"or imagenet:NAME ({', '.join(imagenet_backbones())})."
        ) from None
    arch = entry.metadata.get("arch")
    if entry.is_ensemble:
        raise InvalidParameterError(f"{source} is an ensemble of {', '.join(entry.members)}: it has no network of its "
                                    "own to fine-tune; start from one of its members.")
    if arch not in zoo.ARCHITECTURES:
        raise InvalidParameterError(f"{source} was imported ({arch or 'unknown architecture'}): its architecture is "
                                    "unknown, so it cannot be rebuilt for other classes; start from a trained model.")
    if not entry.metadata.get("class_names"):
        raise InvalidParameterError(f"{source} is not a classifier (no classes in its metadata): nothing to start from.")
    if zoo.ARCHITECTURES[arch].pretrain:
        raise InvalidParameterError(f"{source} ({arch}) is an autoencoder model trained in two stages; start from a "
                                    "plain classifier (e.g. photo_net or fashion_net).")
    shape = tuple(int(d) for d in entry.metadata.get("image_shape") or (28, 28, 1))
    options = (entry.metadata.get("hyper_parameters") or {}).get("build_options") or {}
    options = {k: v for k, v in options.items() if k != "weights"}  # the model's own weights replace ImageNet's
    return Backbone(source=source, arch=arch, image_shape=shape, lineage=(source, *entry.lineage),
                    images_per_second=_speed(source, registry, entry.metadata),
                    build_options=tuple(sorted(options.items())))


def _imagenet_backbone(source, weights, registry):
    name = source[len(IMAGENET_PREFIX):]
    spec = zoo.ARCHITECTURES.get(name)
    if spec is None or not spec.imagenet:
        raise InvalidParameterError(f"unknown ImageNet backbone {name!r}; choose one of: "
                                    f"{', '.join(IMAGENET_PREFIX + n for n in imagenet_backbones())}.")
    weights = zoo.local_weights_file(weights) if weights else None
    size = spec.extra["default_size"]
    return Backbone(source=source, arch=name, image_shape=(size, size, 3), lineage=(source,), weights=weights,
                    images_per_second=_speed(source, registry))


def check_weights_available(backbone):
    """ImageNet backbones: the weights file given, or Keras' download (cached in ~/.keras/models);
    offline without a file: one line saying what to do. Registry backbones: nothing to check."""
    import contextlib
    import io
    import warnings

    if not backbone.is_imagenet or backbone.weights:
        return
    # Keras prints "Downloading data from ..." and warns about sizes: not this command's output.
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        zoo.build(backbone.arch, backbone.image_shape, 2, weights="imagenet")  # one line when offline


def check_fits(backbone, image_shape):
    """Refuse, in one line, a catalogue shape the backbone cannot take: smaller than its
    architecture's minimum, or another size for an architecture tied to its input size."""
    spec = zoo.get_spec(backbone.arch)
    height, width, channels = (int(d) for d in image_shape)
    if min(height, width) < spec.min_size:
        raise InvalidParameterError(f"{backbone.source} needs images of at least {spec.min_size}x{spec.min_size}; "
                                    f"the catalogue is loaded at {height}x{width}: use --image-size {spec.min_size} or more.")
    if channels not in (1, 3):
        raise InvalidParameterError(f"images must have 1 or 3 channels; got {channels}.")
    if not spec.any_size and (height, width) != tuple(backbone.image_shape[:2]):
        h, w = backbone.image_shape[:2]
        raise InvalidParameterError(f"{backbone.source} ({backbone.arch}) takes only {h}x{w} images (its dense layers "
                                    f"depend on the input size); the catalogue is {height}x{width}: use --image-size {h}.")


def catalogue_shape(backbone, image_size=None, color=None):
    """The shape to load a catalogue at: the backbone's own unless the user chose a size / colour."""
    height = int(image_size) if image_size else backbone.image_shape[0]
    channels = backbone.image_shape[2] if color is None else (3 if color else 1)
    return (height, height, channels)


def transfer_config(backbone, epochs=None, learning_rate=None, batch_size=None, head_epochs=None, unfreeze=None,
                    seed=0, validation_fraction=0.1, class_weights=False, limit=None, precision="float32",
                    optimizer=None):
    """The ``TrainConfig`` of a transfer run: ``SCHEDULE`` where the caller gave no value."""
    build_options = {"weights": backbone.weights or "imagenet"} if backbone.is_imagenet else dict(backbone.build_options)
    return TrainConfig(
        arch=backbone.arch, epochs=SCHEDULE.epochs if epochs is None else epochs,
        batch_size=batch_size or SCHEDULE.batch_size, optimizer=optimizer or SCHEDULE.optimizer,
        learning_rate=learning_rate or SCHEDULE.learning_rate, validation_fraction=validation_fraction,
        seed=seed, limit=limit, lr_schedule="warmup_cosine", precision=precision, class_weights=class_weights,
        init_from=backbone.source, build_options=build_options,
        head_epochs=SCHEDULE.head_epochs if head_epochs is None else head_epochs,
        unfreeze=unfreeze or SCHEDULE.unfreeze, freeze_bn=SCHEDULE.freeze_bn,
    ).resolve()


def init_model(config, registry=None):
    """The registry model whose weights start ``config``'s run, or None (no ``init_from``, or an
    ImageNet backbone, whose weights the architecture's builder loads)."""
    if not config.init_from or config.init_from.startswith(IMAGENET_PREFIX):
        return None
    return (registry or Registry()).load_classifier(config.init_from)


def init_autoencoder(config, registry=None):
    """The autoencoder of the registry model that starts ``config``'s run when it is of the same
    architecture and has one (a two-stage model continued: its decoder carries over), else None."""
    if not config.init_from or config.init_from.startswith(IMAGENET_PREFIX):
        return None
    registry = registry or Registry()
    if registry.get(config.init_from).metadata.get("arch") != config.arch:
        return None
    return registry.load_autoencoder(config.init_from)


def lineage_of(source, registry=None):
    """``[source, its parent, ...]`` for a model started from ``source`` (a registry model that no
    longer exists, or an ImageNet backbone, ends the chain)."""
    if source.startswith(IMAGENET_PREFIX):
        return [source]
    try:
        return [source, *(registry or Registry()).get(source).lineage]
    except ModelNotFoundError:
        return [source]


def _speed(source, registry, own=None):
    """A backbone's recorded training speed: that of the latest model started from it with the
    transfer schedule (the same kind of run), else that of its own training run, else None."""
    children = sorted((e for e in registry.list() if e.metadata.get("parent") == source and e.metadata.get("schedule")),
                      key=lambda e: e.metadata.get("created_at", ""))
    for metadata in [*(c.metadata for c in reversed(children)), own or {}]:
        speed = recorded_speed(metadata)
        if speed:
            return speed
    return None


def recorded_speed(metadata):
    """Training images per second a model's metadata records (its own run), or None."""
    seconds = metadata.get("train_seconds")
    epochs = metadata.get("epochs_run") or {}
    size = metadata.get("train_size")
    images = sum(v for k, v in epochs.items() if k != "head") * (size or 0) if isinstance(epochs, dict) else 0
    if not seconds or not images:
        return None
    return float(images / seconds)


def expected_seconds(backbone, n_train_images, config=None):
    """Seconds a transfer run should take, from the backbone's recorded training speed (None when
    nothing is recorded): fine-tuning epochs over the training images, plus one embedding pass
    (about a third of a training epoch) for the head stage."""
    if not backbone.images_per_second:
        return None
    epochs = (config.epochs if config else SCHEDULE.epochs) + 1 / 3
    return float(epochs * n_train_images / backbone.images_per_second)
