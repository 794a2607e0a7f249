"""An on-disk cache for arrays that take minutes to compute (preprocessed photos, resized datasets).

Files live in ``$FASHION_CACHE_DIR`` (default ``~/.cache/fashion-studio``), are named by a key that
says what they hold plus ``PREPROCESS_VERSION``, and are written atomically (a temporary file
renamed into place), so a killed process never leaves half an array behind. A damaged file is
rebuilt, never trusted.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

CACHE_DIR_ENV = "FASHION_CACHE_DIR"
# Bump when preprocess.prepare_image changes what it produces: cached arrays are then rebuilt.
PREPROCESS_VERSION = 1


def cache_dir():
    return Path(os.environ.get(CACHE_DIR_ENV) or Path.home() / ".cache" / "fashion-studio")


def cache_path(key, suffix=".npz"):
    return cache_dir() / f"{key}-v{PREPROCESS_VERSION}{suffix}"


def read_npz(path):
    """dict of arrays from ``path``, or None when it is missing or unreadable."""
    try:
        with np.load(path, allow_pickle=False) as data:
            return {name: data[name] for name in data.files}
    except (OSError, ValueError, KeyError, EOFError):
        return None


def _replace_atomically(path, fill):
    """``fill(tmp)`` writes a temporary file beside ``path``, which is then renamed to ``path``.
    False (nothing left behind) when the cache cannot be written, e.g. on a read-only disk; any
    other error also removes the temporary file, and is raised."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fill(tmp)
        os.replace(tmp, path)
        return True
    except OSError:
        tmp.unlink(missing_ok=True)
        return False
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _write_atomically(path, write):
    """``write(handle)`` into ``path`` (``_replace_atomically``)."""
    def fill(tmp):
        with open(tmp, "wb") as handle:
            write(handle)
    return _replace_atomically(path, fill)


def write_npz(path, **arrays):
    """Write arrays atomically; a cache that cannot be written (read-only disk) is skipped."""
    _write_atomically(path, lambda handle: np.savez(handle, **arrays))


def cached_array(key, build, shape=None, dtype=None):
    """The array stored under ``key``, or the one ``build`` makes, stored for next time.

    Returned read-only and memory-mapped from the cache file when there is one, so a process
    holds only the pages it touches and no caller can change a shared array by accident.

    Without ``shape``, ``build()`` returns the array. With ``shape`` and ``dtype``,
    ``build(out)`` fills ``out`` in place: an array of that shape mapped onto the (temporary)
    cache file, so a gigabyte of rendered images never sits in the process's own memory at once.
    """
    path = cache_path(key, ".npy")
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, EOFError):
        pass  # missing or damaged: rebuilt below
    if shape is not None:
        def fill(tmp):  # the .npy file itself, mapped as the array ``build`` fills
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.dtype(dtype), shape=tuple(shape))
            build(out)
            out.flush()
            del out

        if _replace_atomically(path, fill):
            return np.load(path, mmap_mode="r", allow_pickle=False)
        array = np.zeros(shape, dtype)  # a read-only disk: fill in memory instead
        build(array)
    else:
        array = build()
        if _write_atomically(path, lambda handle: np.save(handle, array, allow_pickle=False)):
            return np.load(path, mmap_mode="r", allow_pickle=False)
    array.flags.writeable = False  # a read-only disk: keep the array in memory
    return array

