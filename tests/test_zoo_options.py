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
