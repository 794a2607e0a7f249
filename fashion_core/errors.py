"""Error types shared by the whole engine.

Every error a user can cause (bad file, bad name, bad parameter, missing data) is a
``FashionError``: callers (CLI, dashboard) show its message as one line and carry on.
Anything else is a bug and may surface as a traceback.
"""


class FashionError(Exception):
    """Base class: a problem with the user's input or environment, with a readable message."""


class DataError(FashionError):
    """A dataset is missing, truncated or malformed."""


class ImageError(FashionError):
    """An image could not be decoded or is unsafe to decode."""


class ModelFileError(FashionError):
    """A model file is not a valid, safe Keras model for this dataset."""


class InvalidNameError(FashionError):
    """A model name is empty, too long or could escape the registry folder."""


class InvalidParameterError(FashionError):
    """A training or evaluation parameter is out of range."""


class ModelNotFoundError(FashionError):
    """No model of that name exists in the registry."""


class CommandError(FashionError):
    """A command-line argument that is wrong in a way argparse cannot see."""
