"""Architecture options of the seed readings (no training)."""

import pytest

from fashion_core import zoo


def test_architecture_options_of_the_seed_readings():
    """DeepAutoDNN's Table III reading feeds 14x14x128 to its dense network; fashion_net's depth
    is the convolutions per stage; bad values are refused in one line."""
    from fashion_core.errors import InvalidParameterError

    paper = zoo.build("deep_autoencoder_dnn", (28, 28, 1), 10, tap="14x14x128").classifier
    assert tuple(paper.get_layer(zoo.FLATTEN_LAYER).input.shape[1:]) == (14, 14, 128)
    text = zoo.build("deep_autoencoder_dnn", (28, 28, 1), 10).classifier
    assert tuple(text.get_layer(zoo.FLATTEN_LAYER).input.shape[1:]) == (7, 7, 8)
    deep = zoo.build("fashion_net", (28, 28, 1), 10, width=8, depth=3).classifier
    assert sum(layer.name.endswith("_conv") for layer in deep.layers) == 9
    with pytest.raises(InvalidParameterError, match="tap"):
        zoo.build("deep_autoencoder_dnn", (28, 28, 1), 10, tap="big")
    with pytest.raises(InvalidParameterError, match="depth"):
        zoo.build("fashion_net", (28, 28, 1), 10, depth=0)
    lean = zoo.build("fashion_net", (28, 28, 1), 10, width=8, depth=2, first_stage_depth=1).classifier
    assert [layer.name for layer in lean.layers if layer.name.endswith("_conv")][:2] == ["s1c1_conv", "s2c1_conv"]
    with pytest.raises(InvalidParameterError, match="first_stage_depth"):
        zoo.build("fashion_net", (28, 28, 1), 10, first_stage_depth=True)
    with pytest.raises(InvalidParameterError, match="frozen_encoder"):
        zoo.build("deep_autoencoder_dnn", (28, 28, 1), 10, frozen_encoder="no")
    assert zoo.build("conv_autoencoder", (28, 28, 1), 10, frozen_encoder=False).frozen_encoder is False


def test_compile_where_possible_leaves_tensorflow_as_it_is():
    """Lifting Keras' "not XLA-compilable" mark from the affine augmentations is for JAX only: on
    TensorFlow (where ImageProjectiveTransformV3 has no XLA kernel) the model keeps it."""
    import keras

    from fashion_core import training

    model = zoo.build("fashion_net", (28, 28, 1), 10, width=4).classifier
    model.compile(optimizer="adam", loss="categorical_crossentropy")
    assert keras.backend.backend() == "tensorflow"
    assert training.compile_where_possible(model) is False
    assert model.get_layer("aug_shift").supports_jit is False
