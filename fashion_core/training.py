"""Training: one ``train`` entry point, k-fold cross-validation and optimizer/learning-rate sweeps.

All three take a ``Dataset`` and report progress through a ``TrainingProgress`` object, so the
CLI (Keras progress bars) and the dashboard (``st.progress`` + live chart) share this code.
Parameters are validated in ``TrainConfig`` before any work starts.
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from . import zoo
from .data import to_model_input, train_validation_split
from .errors import InvalidParameterError
from .predict import accuracy

OPTIMIZERS = ("adam", "adamw", "rmsprop", "sgd", "adadelta")
LR_SCHEDULES = ("constant", "warmup_cosine")
PRECISIONS = ("float32", "mixed_bfloat16")
# Which layers fine-tuning trains after the head stage: every layer, the architecture's last
# block (``ArchSpec.top_block``) and the head, or the head alone.
UNFREEZE = ("all", "top", "none")
HEAD_LEARNING_RATE = 3e-3  # the head stage (Adam on the frozen backbone's embeddings)
MAX_EPOCHS = 1000
MAX_BATCH_SIZE = 8192


@dataclass
class TrainConfig:
    """Every knob of one training run; ``None`` means "the architecture's default".

    Validated by ``resolve()`` before anything is built, so a bad value is one clear error.
    """

    arch: str
    epochs: int | None = None
    batch_size: int | None = None
    optimizer: str | None = None
    learning_rate: float | None = None
    validation_fraction: float = 0.1
    seed: int = 0
    limit: int | None = None
    lr_schedule: str | None = None
    label_smoothing: float | None = None
    weight_decay: float | None = None
    patience: int | None = None
    pretrain_epochs: int | None = None
    fine_tune_epochs: int | None = None
    precision: str = "float32"
    class_weights: bool = False
    init_from: str | None = None  # registry model whose weights start the run (fine-tuning)
    build_options: dict = field(default_factory=dict)
    preset: str | None = None  # the ``PRESETS`` row these knobs came from (recorded, not used)
    # Transfer to a catalogue's own classes (``transfer.transfer_config`` sets these): epochs of a
    # new head alone on the frozen backbone's embeddings, then fine-tuning of ``unfreeze`` layers
    # with batch norm kept in inference mode (``freeze_bn``). 0 / "all" / False: a plain run.
    head_epochs: int | None = None
    unfreeze: str | None = None
    freeze_bn: bool = False
    # One model over several devices of this machine (``MirroredStrategy``): a count or "all";
    # None / 1: the default device. ``batch_size`` is then the global batch, split between them.
    devices: int | str | None = None

    def resolve(self):
        """A copy with defaults filled in from the architecture, after checking every value."""
        spec = zoo.get_spec(self.arch)
        c = TrainConfig(**asdict(self))
        c.epochs = spec.epochs if c.epochs is None else c.epochs
        c.batch_size = spec.batch_size if c.batch_size is None else c.batch_size
        c.optimizer = (c.optimizer or spec.optimizer).lower()
        c.learning_rate = spec.learning_rate if c.learning_rate is None else c.learning_rate
        c.lr_schedule = c.lr_schedule or spec.lr_schedule
        c.label_smoothing = spec.label_smoothing if c.label_smoothing is None else c.label_smoothing
        c.weight_decay = spec.weight_decay if c.weight_decay is None else c.weight_decay
        if spec.pretrain:
            c.pretrain_epochs = c.pretrain_epochs if c.pretrain_epochs is not None else min(
                c.epochs, spec.extra.get("pretrain_epochs", c.epochs)
            )
            c.fine_tune_epochs = spec.extra.get("fine_tune_epochs", 0) if c.fine_tune_epochs is None else c.fine_tune_epochs
            c.fine_tune_epochs = min(c.fine_tune_epochs, c.epochs)
        else:
            c.pretrain_epochs, c.fine_tune_epochs = 0, 0
        c.patience = max(3, c.epochs // 3) if c.patience is None else c.patience
        zoo.check_options(c.arch, c.build_options)
        c.head_epochs = 0 if c.head_epochs is None else c.head_epochs
        c.unfreeze = c.unfreeze or "all"
        c.freeze_bn = bool(c.freeze_bn)
        _check_int("head epochs", c.head_epochs, 0, MAX_EPOCHS)
        if c.unfreeze not in UNFREEZE:
            raise InvalidParameterError(f"unknown unfreeze {c.unfreeze!r}; choose one of: {', '.join(UNFREEZE)}.")
        if c.head_epochs and spec.pretrain:
            raise InvalidParameterError(f"{c.arch} trains in two stages of its own; a head stage does not apply.")
        _check_int("epochs", c.epochs, 1, MAX_EPOCHS)
        _check_int("batch size", c.batch_size, 1, MAX_BATCH_SIZE)
        _check_int("pre-training epochs", c.pretrain_epochs, 0, MAX_EPOCHS)
        _check_int("fine-tuning epochs", c.fine_tune_epochs, 0, MAX_EPOCHS)
        _check_int("patience", c.patience, 1, MAX_EPOCHS)
        _check_int("seed", c.seed, 0, 2**31 - 1)
        if c.limit is not None:
            _check_int("limit", c.limit, 10, 10**9)
        if c.optimizer not in OPTIMIZERS:
            raise InvalidParameterError(f"unknown optimizer {c.optimizer!r}; choose one of: {', '.join(OPTIMIZERS)}.")
        if c.lr_schedule not in LR_SCHEDULES:
            raise InvalidParameterError(f"unknown schedule {c.lr_schedule!r}; choose one of: {', '.join(LR_SCHEDULES)}.")
        if c.precision not in PRECISIONS:
            raise InvalidParameterError(f"unknown precision {c.precision!r}; choose one of: {', '.join(PRECISIONS)}.")
        _check_float("learning rate", c.learning_rate, 0.0, 10.0, open_low=True)
        _check_float("validation fraction", c.validation_fraction, 0.0, 0.5)
        _check_float("label smoothing", c.label_smoothing, 0.0, 0.5)
        _check_float("weight decay", c.weight_decay, 0.0, 1.0)
        if c.devices is not None and c.devices != "all":
            _check_int("devices", c.devices, 1, 1024)
        return c


def _device_strategy(devices):
    """A ``tf.distribute.MirroredStrategy`` over ``devices`` of this machine's accelerators (its
    CPUs' logical devices when it has none), or None for one device. Asking for more devices than
    there are is one clear error."""
    if devices in (None, 1):
        return None
    import tensorflow as tf

    available = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
    wanted = len(available) if devices == "all" else int(devices)
    if wanted > len(available):
        kind = "GPU" if tf.config.list_logical_devices("GPU") else "CPU"
        raise InvalidParameterError(f"{wanted} devices asked for; this machine has {len(available)} {kind} device(s).")
    if wanted == 1:
        return None
    return tf.distribute.MirroredStrategy(devices=[d.name for d in available[:wanted]])


@dataclass(frozen=True)
class Preset:
    """A named, measured set of training knobs (``train --preset NAME``).

    ``seconds_per_image_epoch`` is measured (``measured``): the wall time of the whole command
    on Fashion-MNIST divided by training images × epochs, so pages can show an expected time
    for any dataset size before a run starts.
    """

    name: str
    description: str
    arch: str
    epochs: int
    batch_size: int
    learning_rate: float
    build_options: dict
    seconds_per_image_epoch: float
    measured: str

    def config(self, **overrides):
        """The preset's ``TrainConfig``; ``overrides`` (not None) replace its values."""
        values = {"arch": self.arch, "epochs": self.epochs, "batch_size": self.batch_size,
                  "learning_rate": self.learning_rate, "build_options": dict(self.build_options),
                  "preset": self.name}
        values.update({k: v for k, v in overrides.items() if v is not None})
        return TrainConfig(**values)

    def expected_seconds(self, n_train, epochs=None):
        return self.seconds_per_image_epoch * n_train * (epochs or self.epochs)


PRESETS = {
    "quick": Preset(
        name="quick",
        description="FashionNet at width 24 without random erasing, 12 epochs, batch 256, AdamW 6e-3 "
                    "with warm-up + cosine.",
        arch="fashion_net", epochs=12, batch_size=256, learning_rate=6e-3,
        build_options={"width": 24, "random_erasing": False},
        seconds_per_image_epoch=543.0 / (12 * 54000),
        measured="543 s for the whole command, 12 epochs of 54,000 images, 2-core CPU, 2026-11-27; docs/quick.json",
    ),
}


def get_preset(name):
    try:
        return PRESETS[name]
    except KeyError:
        raise InvalidParameterError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}.") from None


def _check_int(label, value, low, high):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise InvalidParameterError(f"{label} must be a whole number; got {value!r}.")
    if not low <= value <= high:
        raise InvalidParameterError(f"{label} must be between {low} and {high}; got {value}.")


def _check_float(label, value, low, high, open_low=False):
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise InvalidParameterError(f"{label} must be a number; got {value!r}.") from None
    if not np.isfinite(value) or value > high or value < low or (open_low and value == low):
        bound = f"above {low}" if open_low else f"at least {low}"
        raise InvalidParameterError(f"{label} must be {bound} and at most {high}; got {value}.")


class TrainingProgress:
    """Receives progress during training. Subclass and override what you need.

    ``stage`` is "autoencoder" (pre-training), "head" (a new head on a frozen backbone),
    "classifier" or "fine_tune".
    ``logs`` holds Keras metrics such as ``loss``, ``accuracy``, ``val_loss``, ``val_accuracy``.
    """

    def on_stage_begin(self, stage, epochs, steps_per_epoch):
        pass

    def on_batch_end(self, stage, epoch, batch, logs):
        pass

    def on_epoch_end(self, stage, epoch, logs):
        pass

    def should_stop(self):
        """Return True to stop training after the current batch (e.g. a Cancel button)."""
        return False


class TrainingCancelled(Exception):
    """Raised when ``TrainingProgress.should_stop()`` asked to stop."""


@dataclass
class TrainResult:
    """What ``train`` produces: models, history, the resolved config and timing."""

    config: TrainConfig
    bundle: zoo.ModelBundle
    history: dict
    train_seconds: float
    dataset_spec: dict
    class_names: tuple
    image_shape: tuple
    cancelled: bool = False

    @property
    def model(self):
        return self.bundle.classifier


def _keras_callback(progress, stage):
    import keras

    class _Adapter(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            params = self.params or {}
            progress.on_stage_begin(stage, params.get("epochs", 0), params.get("steps") or 0)

        def on_train_batch_end(self, batch, logs=None):
            progress.on_batch_end(stage, self._epoch, batch, dict(logs or {}))
            if progress.should_stop():
                self.model.stop_training = True
                self.cancelled = True

        def on_epoch_begin(self, epoch, logs=None):
            self._epoch = epoch

        def on_epoch_end(self, epoch, logs=None):
            progress.on_epoch_end(stage, epoch, {k: float(v) for k, v in (logs or {}).items()})

    adapter = _Adapter()
    adapter._epoch = 0
    adapter.cancelled = False
    return adapter


def make_optimizer(name, learning_rate, weight_decay=0.0, schedule="constant", total_steps=1):
    """A Keras optimizer by name, with an optional linear warm-up + cosine decay."""
    import keras

    lr = learning_rate
    if schedule == "warmup_cosine":
        warmup = max(1, min(total_steps // 10, 3 * max(1, total_steps // 30)))
        lr = keras.optimizers.schedules.CosineDecay(
            initial_learning_rate=learning_rate / 20,
            decay_steps=max(1, total_steps - warmup),
            alpha=0.01,
            warmup_target=learning_rate,
            warmup_steps=warmup,
        )
    if name == "adam":
        return keras.optimizers.Adam(learning_rate=lr)
    if name == "adamw":
        return keras.optimizers.AdamW(learning_rate=lr, weight_decay=weight_decay or 1e-4)
    if name == "rmsprop":
        return keras.optimizers.RMSprop(learning_rate=lr)
    if name == "sgd":
        return keras.optimizers.SGD(learning_rate=lr, momentum=0.9)
    if name == "adadelta":
        return keras.optimizers.Adadelta(learning_rate=lr)
    raise InvalidParameterError(f"unknown optimizer {name!r}.")


@contextlib.contextmanager
def _dtype_policy(precision):
    """Layers built inside take ``precision``'s dtype policy. Keras 3 keeps its global policy per
    thread (``keras.src.backend.common.global_state`` is a ``threading.local``), so this is
    never seen by another thread — another dashboard session, or the page that started the
    run (``tests/test_isolation.py``); it is restored on exit all the same."""
    import keras

    previous = keras.mixed_precision.global_policy().name
    keras.mixed_precision.set_global_policy(precision)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


# Keras marks its affine augmentations (RandomTranslation, RandomRotation, RandomZoom, ...) as not
# XLA-compilable. That is true on TensorFlow (ImageProjectiveTransformV3 has no XLA kernel) but not
# on JAX, where the transform is jax.scipy's map_coordinates; yet the mark makes Keras run a JAX
# training step op by op: fashion_net took 2 s a step on this CPU and 3 s on an H100 that way.
_JAX_COMPILABLE_LAYERS = ("RandomTranslation", "RandomRotation", "RandomZoom")


def compile_where_possible(model):
    """On the JAX backend, let ``model``'s (already compiled) training step compile with XLA even
    though it holds Keras' affine augmentation layers (see ``_JAX_COMPILABLE_LAYERS``). Nothing
    changes on TensorFlow, where those layers cannot compile. Returns whether the step compiles."""
    import keras

    if keras.backend.backend() != "jax":
        return bool(getattr(model, "jit_compile", False))
    pending = list(model.layers)
    while pending:
        layer = pending.pop()
        pending.extend(getattr(layer, "layers", []))
        if type(layer).__name__ in _JAX_COMPILABLE_LAYERS:
            layer.supports_jit = True
    model.jit_compile = True
    return bool(model.jit_compile)


def fit_data(x, y, batch_size, class_weight=None):
    """``model.fit``'s data arguments for training arrays ``x``, ``y`` (shuffled every epoch).

    On TensorFlow: a tf.data pipeline with autotuning off and one private thread, in the layout
    Keras builds for arrays (shuffled indices, batches gathered from the arrays held once). Keras'
    own pipeline, autotuned, made about every other epoch twice as slow on a 2-core CPU (the same
    steps: 10 s or 19 s for 12,800 images, fashion_net width 24; 14 epochs of 14 at 10 s with this
    one: docs/QUICK.md). ``class_weight`` becomes per-image weights. Other backends: the arrays.
    """
    import keras

    if keras.backend.backend() != "tensorflow":
        return {"x": x, "y": y, "batch_size": batch_size, "shuffle": True, "class_weight": class_weight}
    import tensorflow as tf

    arrays = (x, y)
    if class_weight is not None:
        classes = np.asarray(y).argmax(axis=-1) if np.ndim(y) > 1 else np.asarray(y)
        lookup = np.ones(int(classes.max()) + 1, np.float32)
        for label, weight in class_weight.items():
            if int(label) < len(lookup):
                lookup[int(label)] = weight
        arrays += (lookup[classes],)
    options = tf.data.Options()
    options.autotune.enabled = False
    options.threading.private_threadpool_size = 1
    indices = tf.data.Dataset.range(len(x)).shuffle(len(x), reshuffle_each_iteration=True).batch(batch_size)
    held = tf.data.Dataset.from_tensors(arrays).repeat()
    batches = tf.data.Dataset.zip((indices, held)).map(lambda i, data: tuple(tf.gather(a, i) for a in data))
    return {"x": batches.prefetch(1).with_options(options), "shuffle": False}  # the pipeline shuffles


_SEED_LOCK = threading.Lock()


@contextlib.contextmanager
def _seeded(seed):
    """Reproducible weights for models built inside, without leaving the process seeded.

    Keras draws each unseeded initializer's and dropout layer's seed from Python's global
    ``random`` when the layer is *built*, so that module is seeded for the build only (under a
    lock, usually well under a second) and its state — and NumPy's global state, which
    ``keras.utils.set_random_seed`` also seeds — is put back afterwards. Keras' own seed
    generator is per thread. TensorFlow's global seed (``fit``'s shuffling) stays set: that is
    unavoidable for a reproducible run, and the dashboard's other work (inference, embeddings)
    runs no random ops, so another session cannot see it.
    """
    import random

    import keras

    with _SEED_LOCK:
        python_state, numpy_state = random.getstate(), np.random.get_state()
        keras.utils.set_random_seed(seed)
        try:
            yield
        finally:
            random.setstate(python_state)
            np.random.set_state(numpy_state)


def _to_float32(bundle, arch, input_shape, num_classes, build_options):
    """Copy weights trained under mixed precision into plain float32 models for saving."""
    fresh = zoo.build(arch, input_shape, num_classes, **build_options)
    for attr in ("classifier", "autoencoder", "encoder"):
        src, dst = getattr(bundle, attr), getattr(fresh, attr)
        if src is not None and dst is not None:
            dst.set_weights(src.get_weights())
    return fresh


def _class_weight_dict(y, num_classes):
    from sklearn.utils.class_weight import compute_class_weight

    present = np.unique(y)
    weights = compute_class_weight(class_weight="balanced", classes=present, y=y)
    out = {i: 1.0 for i in range(num_classes)}
    out.update({int(c): float(w) for c, w in zip(present, weights)})
    return out


def transfer_weights(source, target):
    """Copy weights from ``source`` into ``target`` layer by layer (matched by name).

    Layers whose weights have the same shapes are copied; a first convolution that differs only
    in input channels (a grey model started from for a colour one, or the reverse) is adapted by
    spreading / averaging its kernel over the channels. Returns the names of the copied layers;
    raises InvalidParameterError when nothing matches.
    """
    sources = {layer.name: layer for layer in source.layers}
    copied = []
    for layer in target.layers:
        other = sources.get(layer.name)
        if other is None or not layer.weights or len(layer.weights) != len(other.weights):
            continue
        new = [np.asarray(w) for w in other.get_weights()]
        shapes = [tuple(w.shape) for w in layer.weights]
        if [w.shape for w in new] != shapes:
            kernel = new[0]
            if kernel.ndim != 4 or kernel.shape[:2] + kernel.shape[3:] != shapes[0][:2] + shapes[0][3:] or \
                    [w.shape for w in new[1:]] != shapes[1:]:
                continue
            new[0] = np.repeat(kernel.mean(axis=2, keepdims=True), shapes[0][2], axis=2) * (kernel.shape[2] / shapes[0][2])
        layer.set_weights(new)
        copied.append(layer.name)
    if not copied:
        raise InvalidParameterError(f"{source.name} shares no layer with {target.name}: nothing to start from.")
    return copied


def check_transferred(source, copied, arch, image_shape):
    """Refuse a start whose backbone did not carry over: every weighted layer of ``source`` up to
    its embedding must be among the ``copied`` layer names (``transfer_weights``): a Flatten →
    Dense network started at another image size would keep only its first convolution."""
    names = [layer.name for layer in source.layers]
    stop = names.index(zoo.EMBEDDING_LAYER) if zoo.EMBEDDING_LAYER in names else len(names) - 1
    missing = [layer.name for layer in source.layers[:stop + 1] if layer.weights and layer.name not in copied]
    if missing:
        got = tuple(int(d) for d in source.inputs[0].shape[1:])
        raise InvalidParameterError(f"{source.name} ({arch}, input {got[0]}x{got[1]}x{got[2]}) cannot be adapted to "
                       f"{image_shape[0]}x{image_shape[1]}x{image_shape[2]} images: its layers "
                       f"{', '.join(missing[:3])} depend on the input size; use --image-size {got[0]}.")


FEATURE_CHUNK = 4096  # images whose features are computed at once (cached features are written in place)


def _features(extractor, images):
    """``extractor``'s outputs for ``images`` (inference mode), written into one preallocated
    float32 array: a 14x14x128 feature map is 100 KB per image, so a concatenated list would
    briefly need twice the memory."""
    from .predict import predict_batches

    out = np.empty((len(images), *extractor.output_shape[1:]), np.float32)
    for i in range(0, len(images), FEATURE_CHUNK):
        out[i: i + FEATURE_CHUNK] = predict_batches(extractor, images[i: i + FEATURE_CHUNK])
    return out


def _head_and_embeddings(classifier, x_train, x_val, first_head_layer=None):
    """``(head, f_train, f_val)``: the layers from ``first_head_layer`` on (default: those after
    the embedding) as a model of their own, and the frozen part's outputs (inference mode: no
    augmentation) for the training and validation images. Training the head on these stored
    features costs a fraction of a second per epoch where a pass through the frozen part costs
    tens of seconds (120 epochs of DeepAutoDNN's dense network: minutes instead of hours on a CPU).
    The head shares its layers (and weights) with ``classifier``."""
    import keras

    names = [layer.name for layer in classifier.layers]
    if first_head_layer is None:
        if zoo.EMBEDDING_LAYER not in names:
            raise InvalidParameterError(f"{classifier.name} has no '{zoo.EMBEDDING_LAYER}' layer: no head to train on its own.")
        start = names.index(zoo.EMBEDDING_LAYER) + 1
    else:
        start = names.index(first_head_layer)
    extractor = keras.Model(classifier.inputs[0], classifier.layers[start].input)
    f_train, f_val = _features(extractor, x_train), _features(extractor, x_val)
    head_in = keras.Input(shape=f_train.shape[1:], name="features_in")
    h = head_in
    for layer in classifier.layers[start:]:
        h = layer(h)
    return keras.Model(head_in, h, name="head"), f_train, f_val


def _set_trainable(model, unfreeze, top_block, freeze_bn):
    """Which layers fine-tuning trains: ``all``, the ``top`` block (layer-name prefixes) and
    everything after the embedding, or ``none`` (the head only); batch norm layers stay in
    inference mode with ``freeze_bn`` (Keras runs a non-trainable BatchNormalization so)."""
    import keras

    names = [layer.name for layer in model.layers]
    head_start = names.index(zoo.EMBEDDING_LAYER) + 1 if zoo.EMBEDDING_LAYER in names else len(names) - 1
    for i, layer in enumerate(model.layers):
        if unfreeze == "all":
            layer.trainable = True
        elif unfreeze == "top":
            layer.trainable = i >= head_start or layer.name.startswith(tuple(top_block)) or \
                layer.name.startswith(zoo.EMBEDDING_LAYER)
        else:
            layer.trainable = i >= head_start
        if freeze_bn:
            for sub in (layer.layers if isinstance(layer, keras.Model) else (layer,)):
                if isinstance(sub, keras.layers.BatchNormalization):
                    sub.trainable = False


def validation_data(data, validation_fraction, seed=0):
    """``(x_val, y_val)``: the validation images (uint8) and labels training holds out of ``data``
    (its own ``x_val``, else a seeded stratified share of the training images). Temperature
    calibration reuses exactly this split."""
    if data.x_val is not None:
        return data.x_val, data.y_val
    _, val_idx = train_validation_split(len(data.y_train), validation_fraction, seed, data.y_train)
    return data.x_train[val_idx], data.y_train[val_idx]


def training_arrays(data, config):
    """(x_train, y_train, x_val, y_val, labels of x_train) as float inputs and (soft) targets.

    Validation is the dataset's own (``x_val``) or a seeded stratified share of the training
    images; outlier images are appended to the training part with a uniform target.
    """
    onehot = np.eye(data.num_classes, dtype=np.float32)
    if data.x_val is not None:
        x_train, labels = to_model_input(data.x_train), data.y_train
        x_val, y_val = to_model_input(data.x_val), onehot[data.y_val]
    else:
        train_idx, val_idx = train_validation_split(len(data.y_train), config.validation_fraction, config.seed, data.y_train)
        x_all = to_model_input(data.x_train)
        x_train, x_val, labels = x_all[train_idx], x_all[val_idx], data.y_train[train_idx]
        y_val = onehot[data.y_train[val_idx]]
    y_train = onehot[labels]
    if data.x_outliers is not None and len(data.x_outliers):
        x_train = np.concatenate([x_train, to_model_input(data.x_outliers)])
        y_train = np.concatenate([y_train, np.full((len(data.x_outliers), data.num_classes), 1.0 / data.num_classes, np.float32)])
    return x_train, y_train, x_val, y_val, labels


def train(dataset, config, progress=None, verbose=0, init_model=None, init_autoencoder=None):
    """Train ``config.arch`` on ``dataset``.

    Parameters
    ----------
    dataset : Dataset
        Training images are split into train/validation (``config.validation_fraction``,
        seeded, stratified); the test set is never touched here.
    config : TrainConfig
        Validated (``resolve``) before any work starts.
    progress : TrainingProgress, optional
        Receives per-batch and per-epoch updates.
    verbose : int
        Keras' console progress (1 = progress bar), for the CLI.
    init_model : keras.Model, optional
        Start from this model's weights (``transfer_weights``) instead of a random initialisation.
    init_autoencoder : keras.Model, optional
        The same for the autoencoder of a two-stage architecture (``init_model``'s own): its
        decoder carries over too, so a run with ``pretrain_epochs=0`` keeps working
        reconstructions (the Latent space page, the out-of-distribution check).

    Returns
    -------
    TrainResult
    """
    import keras

    config = config.resolve()
    zoo.check_fits(config.arch, dataset.image_shape)
    progress = progress or TrainingProgress()
    spec = zoo.get_spec(config.arch)
    data = dataset.subset(config.limit, seed=config.seed) if config.limit else dataset
    if len(data.y_train) < 2 * data.num_classes:
        raise InvalidParameterError(f"too few training images ({len(data.y_train)}) for {data.num_classes} classes.")
    x_train, y_train, x_val, y_val, labels = training_arrays(data, config)
    has_val = len(x_val) > 0
    class_weight = _class_weight_dict(labels, data.num_classes) if config.class_weights else None

    started = time.perf_counter()
    history = {}
    cancelled = False
    strategy = _device_strategy(config.devices)
    with _dtype_policy(config.precision), (strategy.scope() if strategy else contextlib.nullcontext()):
        with _seeded(config.seed):
            bundle = zoo.build(config.arch, data.image_shape, data.num_classes, **config.build_options)
        if init_autoencoder is not None and bundle.autoencoder is not None:
            transfer_weights(init_autoencoder, bundle.autoencoder)
        if init_model is not None:
            copied = transfer_weights(init_model, bundle.classifier)
            check_transferred(init_model, copied, config.arch, data.image_shape)

        def fit(model, stage, x, y, epochs, batch_size, val, monitor, mode, **kwargs):
            nonlocal cancelled
            adapter = _keras_callback(progress, stage)
            callbacks = [adapter]
            if val is not None:
                callbacks.append(
                    keras.callbacks.EarlyStopping(
                        monitor=monitor, mode=mode, patience=config.patience, restore_best_weights=True
                    )
                )
            compile_where_possible(model)
            hist = model.fit(**fit_data(x, y, batch_size, kwargs.pop("class_weight", None)), epochs=epochs,
                             validation_data=val, callbacks=callbacks, verbose=verbose, **kwargs)
            history[stage] = {k: [float(v) for v in vals] for k, vals in hist.history.items()}
            cancelled = cancelled or adapter.cancelled
            if adapter.cancelled:
                raise TrainingCancelled(stage)

        try:
            if spec.pretrain:
                ae_batch = spec.extra.get("pretrain_batch_size", config.batch_size)
                ae_steps = int(np.ceil(len(x_train) / ae_batch)) * max(1, config.pretrain_epochs)
                bundle.autoencoder.compile(
                    optimizer=make_optimizer(config.optimizer, config.learning_rate, config.weight_decay, "constant", ae_steps),
                    loss="mse",
                )
                if config.pretrain_epochs:
                    fit(bundle.autoencoder, "autoencoder", x_train, x_train, config.pretrain_epochs, ae_batch,
                        (x_val, x_val) if has_val else None, "val_loss", "min")
                bundle.encoder.trainable = not bundle.frozen_encoder

            if config.head_epochs:
                head, f_train, f_val = _head_and_embeddings(bundle.classifier, x_train, x_val)
                head.compile(optimizer=make_optimizer("adam", HEAD_LEARNING_RATE),
                             loss=keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing),
                             metrics=["accuracy"])
                fit(head, "head", f_train, y_train, config.head_epochs, config.batch_size,
                    (f_val, y_val) if has_val else None, "val_accuracy", "max", class_weight=class_weight)
            if config.unfreeze != "all" or config.freeze_bn:  # a plain run keeps its own choices (frozen encoders)
                _set_trainable(bundle.classifier, config.unfreeze, spec.top_block, config.freeze_bn)

            steps = int(np.ceil(len(x_train) / config.batch_size)) * config.epochs
            # The frozen encoder of a two-stage architecture: its outputs are computed once and the
            # dense network trains on them (the same weights, shared with the classifier).
            model, inputs, val = bundle.classifier, x_train, ((x_val, y_val) if has_val else None)
            if spec.pretrain and bundle.frozen_encoder:
                model, inputs, f_val = _head_and_embeddings(bundle.classifier, x_train, x_val, zoo.FLATTEN_LAYER)
                val = (f_val, y_val) if has_val else None
            model.compile(
                optimizer=make_optimizer(config.optimizer, config.learning_rate, config.weight_decay, config.lr_schedule, steps),
                loss=keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing),
                metrics=["accuracy"],
            )
            fit(model, "classifier", inputs, y_train, config.epochs, config.batch_size, val, "val_accuracy", "max",
                class_weight=class_weight)
            del inputs, val

            if spec.pretrain and config.fine_tune_epochs:
                bundle.encoder.trainable = True
                ft_steps = int(np.ceil(len(x_train) / config.batch_size)) * config.fine_tune_epochs
                bundle.classifier.compile(
                    optimizer=make_optimizer(config.optimizer, config.learning_rate / 10, config.weight_decay, "constant", ft_steps),
                    loss=keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing),
                    metrics=["accuracy"],
                )
                fit(bundle.classifier, "fine_tune", x_train, y_train, config.fine_tune_epochs, config.batch_size,
                    (x_val, y_val) if has_val else None, "val_accuracy", "max", class_weight=class_weight)
        except TrainingCancelled:
            cancelled = True
    if config.precision != "float32":
        bundle = _to_float32(bundle, config.arch, data.image_shape, data.num_classes, config.build_options)

    return TrainResult(
        config=config,
        bundle=bundle,
        history=history,
        train_seconds=time.perf_counter() - started,
        dataset_spec=dict(dataset.spec),
        class_names=dataset.class_names,
        image_shape=dataset.image_shape,
        cancelled=cancelled,
    )


def fit_classifier(model, x, y, *, epochs, batch_size=128, learning_rate=3e-4, optimizer="adamw",
                   weight_decay=0.0, label_smoothing=0.0, schedule="warmup_cosine", seed=0, progress=None,
                   verbose=0, stage="fine_tune"):
    """Go on training an already built (e.g. loaded) classifier on ``(x, y)``: fine-tuning.

    Unlike ``train`` nothing is built from ``zoo``, so any registry classifier can be continued,
    imported ones included. ``x`` is uint8 or float images (N, H, W, C), ``y`` class indices (N,);
    no validation split and no early stopping (the caller measures on data it held out).
    ``progress`` sees the ``stage`` ("fine_tune" by default). Returns ``(history, seconds)``;
    raises ``TrainingCancelled`` when ``progress.should_stop()`` asked to stop.
    """
    import keras

    _check_int("epochs", epochs, 1, MAX_EPOCHS)
    _check_int("batch size", batch_size, 1, MAX_BATCH_SIZE)
    _check_float("learning rate", learning_rate, 0.0, 10.0, open_low=True)
    progress = progress or TrainingProgress()
    num_classes = int(model.outputs[0].shape[-1])
    x, y = to_model_input(x), np.eye(num_classes, dtype=np.float32)[np.asarray(y)]
    steps = int(np.ceil(len(x) / batch_size)) * epochs
    started = time.perf_counter()
    with _seeded(seed):  # fit's shuffling and the augmentation layers' draws
        model.compile(optimizer=make_optimizer(optimizer, learning_rate, weight_decay, schedule, steps),
                      loss=keras.losses.CategoricalCrossentropy(label_smoothing=label_smoothing),
                      metrics=["accuracy"])
    compile_where_possible(model)
    adapter = _keras_callback(progress, stage)
    hist = model.fit(**fit_data(x, y, batch_size), epochs=epochs, callbacks=[adapter], verbose=verbose)
    if adapter.cancelled:
        raise TrainingCancelled(stage)
    history = {stage: {k: [float(v) for v in vals] for k, vals in hist.history.items()}}
    return history, time.perf_counter() - started


def _fold_row(fold, fold_data, config, progress=None, verbose=0):
    """Train and score one cross-validation fold (a Ray task with ``ray=``, or in this process)."""
    result = train(fold_data, config, progress=progress, verbose=verbose)
    return {"fold": fold, "train_accuracy": accuracy(result.model, fold_data.x_train, fold_data.y_train),
            "test_accuracy": accuracy(result.model, fold_data.x_test, fold_data.y_test),
            "epochs_run": len(result.history.get("classifier", {}).get("loss", [])),
            "seconds": result.train_seconds}


def _sweep_row(data, config, progress=None, verbose=0):
    """Train and score one (optimizer, learning rate) run of a sweep."""
    result = train(data, config, progress=progress, verbose=verbose)
    stage = result.history.get("fine_tune") or result.history.get("classifier", {})
    val = stage.get("val_accuracy") or [float("nan")]
    return {"optimizer": config.optimizer, "learning_rate": config.learning_rate,
            "val_accuracy": float(np.nanmax(val)), "test_accuracy": accuracy(result.model, data.x_test, data.y_test),
            "epochs_run": len(stage.get("loss", [])), "seconds": result.train_seconds}


def run_each(function, calls, ray=None, progress=None, verbose=0):
    """``[function(*args, progress=..., verbose=...) for args in calls]``, in this process, or as
    one Ray task per call when ``ray`` is a cluster address or "local" (this machine's Ray); each
    task gets an equal share of the cluster's CPUs and the results come back in order. Ray tasks
    report no per-batch progress (it cannot cross processes); the CLI says when each one ends."""
    if not ray:
        return [function(*args, progress=progress, verbose=verbose) for args in calls]
    from .cluster import cpu_share, init_ray, ray_module

    init_ray(None if ray == "local" else ray)
    ray_api = ray_module()
    task = ray_api.remote(function).options(num_cpus=cpu_share(len(calls)), max_retries=0)
    shared = {}  # one object-store copy per argument object (a sweep's data is passed to every run)

    def put(value):
        if id(value) not in shared:
            shared[id(value)] = ray_api.put(value)
        return shared[id(value)]

    pending = [task.remote(*map(put, args)) for args in calls]
    say = getattr(progress, "on_task_end", None)
    results = dict.fromkeys(range(len(pending)))
    order = {ref: i for i, ref in enumerate(pending)}
    remaining = list(pending)
    while remaining:
        done, remaining = ray_api.wait(remaining, num_returns=1)
        i = order[done[0]]
        results[i] = ray_api.get(done[0])
        if say:
            say(i, len(pending))
    return [results[i] for i in range(len(pending))]


def cross_validate(dataset, config, folds=5, progress=None, verbose=0, ray=None):
    """k-fold cross-validation on the training images (seed 003's method).

    Each fold trains a fresh model on k-1 parts and tests on the held-out part; with ``ray`` (a
    cluster address, or "local") the folds train at the same time as Ray tasks.

    Returns
    -------
    dict with ``folds`` (list of per-fold ``train_accuracy``/``test_accuracy``/``seconds``),
    ``mean_test_accuracy``, ``std_test_accuracy``, ``mean_train_accuracy``, ``std_train_accuracy``,
    ``config``, ``ray`` (where the folds ran: null in this process).
    """
    from sklearn.model_selection import StratifiedKFold

    from .data import Dataset

    _check_int("folds", folds, 2, 20)
    config = config.resolve()
    data = dataset.subset(config.limit, seed=config.seed) if config.limit else dataset
    if np.bincount(data.y_train).min() < folds:
        raise InvalidParameterError(f"every class needs at least {folds} training images for {folds}-fold CV.")
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=config.seed)
    fold_config = TrainConfig(**{**asdict(config), "limit": None})
    calls = [(fold, Dataset(name=f"{data.name} fold {fold}", class_names=data.class_names,
                            x_train=data.x_train[tr], y_train=data.y_train[tr],
                            x_test=data.x_train[te], y_test=data.y_train[te], spec=data.spec), fold_config)
             for fold, (tr, te) in enumerate(splitter.split(data.x_train, data.y_train), start=1)]
    rows = run_each(_fold_row, calls, ray=ray, progress=progress, verbose=verbose)
    test = np.array([r["test_accuracy"] for r in rows])
    train_ = np.array([r["train_accuracy"] for r in rows])
    return {
        "arch": config.arch,
        "folds": rows,
        "mean_test_accuracy": float(test.mean()),
        "std_test_accuracy": float(test.std()),
        "mean_train_accuracy": float(train_.mean()),
        "std_train_accuracy": float(train_.std()),
        "config": asdict(config),
        "ray": ray or None,
    }


def sweep_grid(optimizers, learning_rates):
    """The runs of a sweep, in the order they train: ``[(optimizer, learning rate)]``."""
    return [(opt, float(lr)) for opt in optimizers for lr in learning_rates]


def sweep(dataset, config, optimizers=("adam", "rmsprop", "adadelta"), learning_rates=(1e-3, 1e-4), progress=None,
          verbose=0, ray=None):
    """Train one run per (optimizer, learning rate) and record validation and test accuracy.

    Seed 000 compares Adam, RMSprop and Adadelta at several learning rates. Returns
    ``{"arch", "runs": [...], "best": {...}, "ray"}``; each run has ``optimizer``, ``learning_rate``,
    ``val_accuracy`` (best epoch), ``test_accuracy``, ``epochs_run``, ``seconds``. With ``ray`` (a
    cluster address, or "local") the runs train at the same time as Ray tasks.
    """
    base = config.resolve()
    if not optimizers or not learning_rates:
        raise InvalidParameterError("a sweep needs at least one optimizer and one learning rate.")
    runs_config = [
        TrainConfig(**{**asdict(base), "optimizer": opt, "learning_rate": lr, "limit": None}).resolve()
        for opt, lr in sweep_grid(optimizers, learning_rates)
    ]  # validates every combination before the first run starts
    data = dataset.subset(base.limit, seed=base.seed) if base.limit else dataset
    runs = run_each(_sweep_row, [(data, run_config) for run_config in runs_config], ray=ray, progress=progress,
                    verbose=verbose)
    best = max(runs, key=lambda r: (r["val_accuracy"], r["test_accuracy"]))
    return {"arch": base.arch, "runs": runs, "best": best, "config": asdict(base), "ray": ray or None}
