"""The sidebar's data-source selector, shared by every page through ``st.session_state``.

The user picks Fashion-MNIST (default), the generated demo catalogue, a catalogue folder on this
machine, an uploaded zip of one, or "My corrections" (the photos corrected on Classify, offered
once two classes have two photos each). The choice is kept as the dataset's JSON recipe
(``st.session_state["data_spec"]``); the Home and Train pages use it. Evaluate, Latent space and
Classify always use each model's *own* dataset, never this selection.
"""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

import streamlit as st

from fashion_core.data import FASHION_MNIST_SPEC
from fashion_core.errors import FashionError
from ui import cache

SPEC_KEY = "data_spec"
SOURCES = {
    "fashion-mnist": "Fashion-MNIST",
    "demo": "Demo catalogue (generated)",
    "folder": "Catalogue folder on this machine",
    "zip": "Upload a catalogue (.zip)",
}
CORRECTIONS = "corrections"  # offered once the corrections catalogue is loadable
WORK_DIR = Path(tempfile.gettempdir()) / "fashion_studio"
CATALOGUE_HELP = (
    "A catalogue is a folder with one subfolder per class (the subfolder's name is the class "
    "name) holding PNG/JPEG/WebP/BMP/GIF product photos, or a CSV file with `path,label` columns."
)


def current_spec():
    """The recipe of the selected dataset (Fashion-MNIST until the user picks another)."""
    return st.session_state.get(SPEC_KEY) or dict(FASHION_MNIST_SPEC)


def current_dataset():
    """The selected ``Dataset``, or None after showing why it could not be loaded."""
    try:
        return cache.dataset(current_spec())
    except FashionError as exc:
        st.error(str(exc))
        return None


def data_source_ui():
    """Sidebar widgets; stores the chosen recipe in session state and returns it."""
    with st.sidebar:
        st.subheader("Data source", help="Used by Home and Train. Evaluate, Latent space and "
                     "Classify always use the dataset each model was trained on.")
        sources = dict(SOURCES)
        store = cache.corrections()
        if _has_corrections_catalogue(store):
            sources[CORRECTIONS] = f"My corrections ({len(store.list())} photos)"
        kind = st.radio("Images", list(sources), format_func=sources.get, key="data_source_kind",
                        label_visibility="collapsed")
        if kind == "fashion-mnist":
            _use({**FASHION_MNIST_SPEC})
        else:
            image_size, color = _catalogue_options()
            if kind == "demo":
                _demo_ui(image_size, color)
            elif kind == "folder":
                _folder_ui(image_size, color)
            elif kind == CORRECTIONS:
                st.caption("The photos you corrected on Classify, with the labels you gave them.")
                _load(_catalogue_spec(store.csv_path, image_size, color))
            else:
                _zip_ui(image_size, color)
        spec = current_spec()
        st.caption(f"In use: **{_describe(spec)}**")
    return spec


def _has_corrections_catalogue(store):
    try:
        return store.is_catalogue()
    except FashionError:  # an unreadable corrections file: the other sources still work
        return False


def _catalogue_options():
    cols = st.columns(2)
    image_size = cols[0].number_input("Image size (px)", 8, 128, 28, step=4, key="catalogue_image_size",
                                      help="Every image is resized to this square size for the models.")
    color = cols[1].checkbox("Colour", key="catalogue_color", help="Keep RGB instead of greyscale.")
    return int(image_size), bool(color)


def _catalogue_spec(path, image_size, color):
    return {"kind": "folder", "path": str(path), "image_size": image_size, "color": color,
            "test_fraction": 0.2, "seed": 0}


def _demo_ui(image_size, color):
    st.caption("Three classes (bag, shirt, trousers) of simple product shots on white, drawn for you.")
    folder = WORK_DIR / "demo_catalogue"
    if not folder.is_dir():  # written on an explicit click only, never during a render
        if not st.button("Generate the demo catalogue", key="make_demo_catalogue"):
            return
        from fashion_core.democatalogue import make_demo_catalogue

        make_demo_catalogue(folder)
    _load(_catalogue_spec(folder, image_size, color))


def _folder_ui(image_size, color):
    path = st.text_input("Folder or CSV path", key="catalogue_path", help=CATALOGUE_HELP,
                         placeholder="/data/my_catalogue")
    if path.strip():
        _load(_catalogue_spec(Path(path.strip()).expanduser(), image_size, color))
    else:
        st.caption(CATALOGUE_HELP)


def _zip_ui(image_size, color):
    upload = st.file_uploader("Catalogue zip", type=["zip"], key="catalogue_zip", help=CATALOGUE_HELP)
    if upload is None:
        st.caption(CATALOGUE_HELP)
        return
    data = upload.getvalue()
    folder = WORK_DIR / "uploads" / hashlib.sha256(data).hexdigest()[:16]
    root_marker = folder / ".root"
    try:
        if not root_marker.is_file():  # extract each distinct upload once
            from fashion_core.safezip import extract_catalogue_zip

            root = extract_catalogue_zip(data, folder / "content")
            root_marker.write_text(str(root))
        root = Path(root_marker.read_text())
    except FashionError as exc:
        st.error(f"{upload.name}: {exc}")
        return
    _load(_catalogue_spec(root, image_size, color))


def _load(spec):
    """Load a catalogue recipe; on success make it the current data source."""
    if cache.spec_key(spec) == cache.spec_key(st.session_state.get(SPEC_KEY)):
        return
    try:
        data = cache.dataset(spec)
    except FashionError as exc:
        st.error(str(exc))
        return
    if data.skipped:
        st.warning(f"{len(data.skipped)} file(s) could not be read and were skipped.")
    _use(spec)


def _use(spec):
    st.session_state[SPEC_KEY] = spec


def _describe(spec):
    if spec.get("kind") == "fashion-mnist":
        return "Fashion-MNIST"
    size = spec.get("image_size")
    path = Path(spec.get("path", "?"))
    name = "My corrections" if path == cache.corrections().csv_path else path.name
    return f"{name} ({size}x{size}, {'colour' if spec.get('color') else 'grey'})"
