"""Shared Streamlit helpers for the dashboard pages (the engine, ``fashion_core``, never imports
Streamlit; everything that does lives here, in ``app.py`` and in ``views/`` (the pages))."""
