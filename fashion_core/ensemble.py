"""Several registry models answering as one: the ensemble is an ordinary Keras classifier built
from its members' files, so every page, the predict helper, LiteRT serving and the evaluation use
it unchanged.

An ensemble's registry folder holds no model file of its own: ``metadata["ensemble"]`` names its
members (``{"members": [...], "weights": [...]}``) and the model is assembled when it is loaded
(``Registry.load_classifier``) from the members' own files, each loaded in safe mode — the
weights live once, in the members. The graph takes the model contract's input at the first
member's shape (the *lead*, e.g. ``photo_lite0``'s 128x128 colour) and gives every other member
its own shape inside the graph, with built-in layers only:

- **resolution**: a separable resampling whose matrices are Pillow's LANCZOS filter (the one
  ``preprocess.resize_to_fit`` uses) applied to unit impulses, so a member sees what the upload
  path would have made at its size, up to rounding (two fixed ``Dense`` layers between
  ``Permute``\\ s); values are clipped back to [0, 1];
- **channels**: ITU-R 601 luminance (``preprocess.luminance``) for grey members, three equal
  channels for colour members fed a grey lead.

The answer is the weighted mean of the members' probabilities (a probability distribution
again). Flip test-time augmentation, where wanted, is chosen per member and happens inside the
graph (``metadata["ensemble"]["flip"]``), so a member whose mirror image adds little costs one
pass, not two; when every member flips, the ensemble as a whole is served with flip-TTA instead
(the image and its mirror in one batch: faster than two passes inside the graph). The embedding
of an ensemble (Latent space) is its lead member's.
"""

from __future__ import annotations

import numpy as np

from .errors import ModelFileError

KEY = "ensemble"  # metadata field: {"members": [names], "weights": [floats]}
LUMA = (0.299, 0.587, 0.114)  # ITU-R 601, as preprocess.luminance and Pillow's "L"


def members_of(metadata):
    """``(names, weights)`` of an ensemble's metadata (weights normalised to sum 1); ``([], [])``
    for a model that is not an ensemble."""
    spec = metadata.get(KEY) if isinstance(metadata, dict) else None
    if not isinstance(spec, dict):
        return [], []
    names = [str(n) for n in spec.get("members") or []]
    weights = [float(w) for w in spec.get("weights") or [1.0] * len(names)]
    if not names or len(weights) != len(names) or min(weights) <= 0:
        raise ModelFileError("the ensemble's members or weights are malformed in its metadata.")
    total = sum(weights)
    return names, [w / total for w in weights]


def flips_of(metadata):
    """Per member: whether it answers with flip test-time augmentation inside the graph (the mean
    of the image and its mirror); none by default."""
    names, _ = members_of(metadata)
    flips = (metadata.get(KEY) or {}).get("flip") or [False] * len(names)
    if len(flips) != len(names):
        raise ModelFileError("the ensemble's flip list does not match its members.")
    return [bool(f) for f in flips]


def resample_matrix(n_in, n_out):
    """(n_in, n_out) float32 matrix ``M`` with ``row @ M`` = Pillow's LANCZOS resize of a row of
    ``n_in`` pixels to ``n_out`` (each column of the filter's response to one unit impulse)."""
    from PIL import Image

    eye = np.eye(n_in, dtype=np.float32)
    return np.stack([np.asarray(Image.fromarray(eye[j][None, :], mode="F").resize((n_out, 1), Image.LANCZOS))[0]
                     for j in range(n_in)]).astype(np.float32)


def _fixed_dense(units, kernel, name):
    import keras

    layer = keras.layers.Dense(units, use_bias=False, trainable=False, name=name)
    layer.build((None, kernel.shape[0]))
    layer.set_weights([kernel])
    return layer


def adapt_input(x, source_shape, target_shape, name):
    """Keras tensor (N, *source_shape) → (N, *target_shape): resampled to the target's height and
    width, then grey (luminance) or colour (three equal channels) as the target wants."""
    import keras

    (h, w, c), (h2, w2, c2) = source_shape, target_shape
    if (h, w) != (h2, w2):
        x = keras.layers.Permute((1, 3, 2), name=f"{name}_rows")(x)  # (N, h, c, w)
        x = _fixed_dense(w2, resample_matrix(w, w2), f"{name}_width")(x)  # (N, h, c, w2)
        x = keras.layers.Permute((3, 2, 1), name=f"{name}_columns")(x)  # (N, w2, c, h)
        x = _fixed_dense(h2, resample_matrix(h, h2), f"{name}_height")(x)  # (N, w2, c, h2)
        x = keras.layers.Permute((3, 1, 2), name=f"{name}_image")(x)  # (N, h2, w2, c)
        x = keras.layers.ReLU(max_value=1.0, name=f"{name}_clip")(x)  # LANCZOS rings past [0, 1]
    if c != c2:
        if c2 == 1:
            x = _fixed_dense(1, np.array(LUMA, np.float32)[:, None], f"{name}_grey")(x)
        else:
            x = keras.layers.Concatenate(name=f"{name}_colour")([x, x, x])
    return x


def mirror(x, width, name):
    """Keras tensor (N, H, W, C) → the same images mirrored left-right (a fixed permutation of
    the width axis: built-in layers only)."""
    import keras

    x = keras.layers.Permute((1, 3, 2), name=f"{name}_rows")(x)
    x = _fixed_dense(width, np.eye(width, dtype=np.float32)[::-1].copy(), f"{name}_flip")(x)
    return keras.layers.Permute((1, 3, 2), name=f"{name}_image")(x)


def member_view(member, input_shape, name, flip=False):
    """``member`` fed through ``adapt_input`` from ``input_shape``: what it sees inside an
    ensemble whose lead takes ``input_shape`` (a Keras model, input ``input_shape``); with
    ``flip`` it answers the mean of the image and its mirror (flip test-time augmentation)."""
    import keras

    inputs = keras.Input(tuple(input_shape), name=f"{name}_image")
    own = tuple(int(d) for d in member.input_shape[1:])
    x = adapt_input(inputs, tuple(input_shape), own, f"{name}_input") if own != tuple(input_shape) else inputs
    wrapped = keras.Model(member.inputs[0], member.outputs[0], name=f"{name}_model")
    out = wrapped(x)
    if flip:
        out = keras.layers.Average(name=f"{name}_flip_tta")([out, wrapped(mirror(x, own[1], f"{name}_mirror"))])
    return keras.Model(inputs, out, name=name)


def build(members, weights, name="ensemble", flips=None):
    """One Keras classifier from ``members`` (Keras classifiers with the same classes) averaged
    with ``weights`` (each member with flip-TTA inside the graph where ``flips`` says so); its
    input is the first member's shape."""
    import keras

    if not members:
        raise ModelFileError("an ensemble needs at least one member.")
    shapes = [tuple(int(d) for d in m.input_shape[1:]) for m in members]
    classes = {int(m.output_shape[-1]) for m in members}
    if len(classes) != 1:
        raise ModelFileError(f"the ensemble's members disagree on the number of classes ({sorted(classes)}).")
    inputs = keras.Input(shapes[0], name="image")
    outputs = []
    for i, (member, weight, flip) in enumerate(zip(members, weights, flips or [False] * len(members))):
        view = member_view(member, shapes[0], f"member{i}", flip=flip)  # unique names outside
        outputs.append(keras.layers.Rescaling(float(weight), name=f"member{i}_weight")(view(inputs)))
    probabilities = outputs[0] if len(outputs) == 1 else keras.layers.Add(name="probabilities")(outputs)
    return keras.Model(inputs, probabilities, name=name)


def lead_model(model):
    """The first member's own Keras model inside a ``build`` graph (it takes the graph's input
    unchanged), or None for any other model."""
    try:
        return model.get_layer("member0").get_layer("member0_model")
    except (ValueError, AttributeError):
        return None
