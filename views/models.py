"""Models: import a .keras file, download a model (Keras, SavedModel or TFLite), delete one."""

import tempfile
from pathlib import Path

import pandas as pd
import streamlit as st

from fashion_core.errors import FashionError
from fashion_core.export import export_archive
from fashion_core.registry import dataset_metadata, suggest_name
from ui import cache, widgets
from ui.data_source import current_dataset


def main():
    st.title(":material/inventory_2: Models")
    st.caption("The model registry: every model you trained or imported, with its files.")
    entries, problems = cache.model_entries()
    widgets.registry_problems_notice(problems)
    if entries:
        table_ui(entries)
        c1, c2 = st.columns(2, gap="large")
        with c1:
            download_ui(entries)
        with c2:
            delete_ui(entries)
    else:
        widgets.no_models_notice()
    import_ui()


def table_ui(entries):
    table = pd.DataFrame([e.summary() for e in entries])
    st.dataframe(table, hide_index=True, column_config={
        "test_accuracy": st.column_config.NumberColumn("test accuracy", format="percent"),
        "size_mb": st.column_config.NumberColumn("size (MB)", format="%.2f"),
        "has_encoder": st.column_config.CheckboxColumn("autoencoder"),
        "lineage": st.column_config.TextColumn("built from", help="A fine-tuned model: the model it started from, "
                                               "and that model's own parent (photo_net ← fashion_net). An ensemble: "
                                               "the models whose answers it averages (photo_lite0 + photo_net)."),
    })
    for entry in entries:
        if entry.is_ensemble:
            weights = (entry.metadata.get("ensemble") or {}).get("weights") or []
            parts = [f"{m} ({w:.0%})" for m, w in zip(entry.members, weights)] or entry.members
            st.caption(f"**{entry.name}**: an ensemble averaging {' + '.join(parts)}; it has no weights of its own, "
                       "so its members cannot be deleted while it exists.")
        elif entry.lineage:
            st.caption(f"**{entry.name}**: fine-tuned from {' ← '.join(entry.lineage)}")
        earlier = entry.metadata.get("continued_from")
        if earlier:
            where = f" on an {earlier['accelerator']}" if earlier.get("accelerator") else ""
            accuracy = f"{earlier['test_accuracy']:.2%}" if isinstance(earlier.get("test_accuracy"), (int, float)) else "?"
            st.caption(f"**{entry.name}**: trained further from its own earlier run ({accuracy}{where}); "
                       "the command in its metadata chains both runs.")


EXPORT_FORMATS = {"keras": "Keras 3 (.keras)", "savedmodel": "TensorFlow SavedModel (TF Serving)",
                  "tflite": "TFLite (phones, edge devices)"}


def download_ui(entries):
    st.subheader("Download")
    entry = widgets.model_selector(entries, "Model to download", key="download_model")
    fmt = st.radio("Format", list(EXPORT_FORMATS), format_func=EXPORT_FORMATS.get, horizontal=True,
                   key="download_format")
    if fmt == "keras" and not entry.is_ensemble:  # an ensemble's file is assembled on request, below
        st.download_button(f"Download {entry.name}.keras", entry.model_file.read_bytes(), file_name=f"{entry.name}.keras",
                           mime="application/octet-stream", icon=":material/download:", key="download_button")
        st.caption("The classifier as a Keras 3 file; load it with `keras.saving.load_model`. "
                   "Its preprocessing is in the other formats' `preprocessing.json`.")
        return
    prepared = st.session_state.get("download_export")
    if prepared and prepared[:2] == (entry.name, fmt):
        st.download_button(f"Download {prepared[2]}", prepared[3], file_name=prepared[2], mime="application/zip",
                           icon=":material/download:", key="download_export_button")
    elif st.button(f"Prepare {EXPORT_FORMATS[fmt]}", icon=":material/build:", key="download_prepare"):
        with st.spinner(f"Converting {entry.name}…"):
            try:
                file_name, data = export_archive(entry.name, fmt, registry=cache.registry())
            except FashionError as exc:
                st.error(str(exc))
                return
        st.session_state["download_export"] = (entry.name, fmt, file_name, data)
        st.rerun()
    st.caption("A zip with the model and `preprocessing.json`: input size, channels, light-background "
               "inversion, class names and temperature — what a deployed model needs to see what the studio sees. "
               "Same as `python -m fashion_core export NAME PATH --format " + fmt + "`.")


def delete_ui(entries):
    st.subheader("Delete")
    entry = widgets.model_selector(entries, "Model to delete", key="delete_model")
    confirm = st.checkbox(f"Yes, delete **{entry.name}** and all its files", key=f"delete_confirm_{entry.name}")
    if st.button("Delete", type="primary", disabled=not confirm, icon=":material/delete:", key="delete_button"):
        try:
            cache.registry().delete(entry.name)
        except FashionError as exc:
            st.error(str(exc))
            return
        st.toast(f"Deleted {entry.name}.")
        st.rerun()


def import_ui():
    st.subheader("Import a .keras model")
    st.caption("The file is loaded in safe mode (no code can run) and checked against the data source "
               "chosen in the sidebar: the same image size and number of classes. Then it is evaluated "
               "on Evaluate like any other model.")
    upload = st.file_uploader("Keras model file", type=["keras"], key="import_file")
    if upload is None:
        return
    dataset = current_dataset()
    if dataset is None:
        return
    name = st.text_input("Name in the registry", value=suggest_name(Path(upload.name).stem), key="import_name")
    if st.button("Import", type="primary", icon=":material/upload:", key="import_button"):
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / Path(upload.name).name
            path.write_bytes(upload.getvalue())
            try:
                with st.spinner("Checking the model…"):
                    entry = cache.registry().import_model(path, name, dataset_metadata(dataset))
            except FashionError as exc:
                st.error(str(exc))
                return
        st.success(f"Imported **{entry.name}** for {dataset.name}. Evaluate it on the Evaluate page.")
        st.page_link("views/evaluate.py", label="Go to Evaluate", icon=":material/analytics:")


main()
