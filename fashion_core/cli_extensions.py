"""Sub-commands that live in their own modules register here (imported by ``cli.main``)."""
from . import cli_classify  # noqa: F401
from . import cli_bench  # noqa: F401
