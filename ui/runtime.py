"""Streamlit's per-run housekeeping that the dashboard turns off, so a rerun costs only its page.

After every script run (every session, every widget change) Streamlit calls
``keras.backend.clear_session()`` when Keras is imported (``script_runner._clean_problem_modules``)
and then ``gc.collect(2)`` (the ``runner.postScriptGC`` option). With the models loaded, both hold
the GIL for about a second each (full garbage collections of a large heap), while every other
session waits; ``clear_session`` also empties TensorFlow's kernel cache, so each model's next call
re-instantiates its compiled function (~0.4 s for photo_net), and it resets Keras' per-thread state
in *every* thread, a training run in another session included. Eight sessions uploading at once
paid all of it eight times, one after another (docs/PERFORMANCE.md).

The dashboard loads each model once and shares it (``ui.cache``), so there is nothing to clear:
``keep_keras_session`` leaves Keras alone (Streamlit's other clean-up, closing pyplot figures,
is kept), and ``.streamlit/config.toml`` sets ``runner.postScriptGC = false`` (Python's own
generational collector still runs).
"""

from __future__ import annotations

import sys


def _close_pyplot_figures():
    """What Streamlit's clean-up does besides clearing Keras: close matplotlib's figures."""
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is not None:
        pyplot.close("all")


def keep_keras_session():
    """Stop Streamlit from clearing the Keras session after each script run (idempotent; a
    Streamlit without that hook is left as it is)."""
    from streamlit.runtime.scriptrunner import script_runner

    if hasattr(script_runner, "_clean_problem_modules"):
        script_runner._clean_problem_modules = _close_pyplot_figures
