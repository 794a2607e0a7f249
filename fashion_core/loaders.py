"""The dataset-loader table: a dataset's JSON recipe (``Dataset.spec``, stored with every model)
→ the ``Dataset`` it describes. One entry per ``spec["kind"]``; a new kind of dataset is one more
row here, and ``data`` never needs to know the loaders built on it.
"""

from __future__ import annotations

from .catalogue import load_catalogue
from .data import FASHION_MNIST_SPEC, load_fashion_mnist
from .errors import DataError


def _fashion_mnist(spec, **kwargs):
    return load_fashion_mnist(image_size=spec.get("image_size"), color=spec.get("color", False), **kwargs)


def _folder(spec, **kwargs):
    return load_catalogue(**{k: v for k, v in spec.items() if k != "kind"})


LOADERS = {"fashion-mnist": _fashion_mnist, "folder": _folder}


def load_dataset(spec=None, **kwargs):
    """Reload a dataset from the JSON recipe stored with a model (default: Fashion-MNIST).

    ``kwargs`` go to the Fashion-MNIST loader (e.g. ``allow_download``). A recipe with a
    ``subset`` entry is rebuilt with ``Dataset.subset``.
    """
    spec = dict(spec or FASHION_MNIST_SPEC)
    subset = spec.pop("subset", None)
    loader = LOADERS.get(spec.get("kind"))
    if loader is None:
        raise DataError(f"unknown dataset kind {spec.get('kind')!r}.")
    dataset = loader(spec, **kwargs)
    return dataset.subset(subset["limit"], seed=subset.get("seed", 0)) if subset else dataset
