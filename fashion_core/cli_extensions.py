"""Sub-commands that live in their own modules register here (imported by ``cli.main``)."""
