"""Home: what the studio does, the data in use (sample grid and counts) and the registry's models."""

import pandas as pd
import streamlit as st

from fashion_core.data import FASHION_MNIST_DIR_ENV
from ui import cache, widgets
from ui.data_source import current_dataset


def main():
    st.title(":material/checkroom: Fashion Studio")
    st.markdown(
        "Train image classifiers for clothing and products, then see how good they really are: "
        "confusion matrix, per-class scores, the worst mistakes and a map of what the model has "
        "learnt. Classify your own photos — uploads or the webcam — with any model you trained "
        "or imported."
    )
    quick_links_ui()
    data_ui()
    models_ui()  # full width: six columns do not fit beside the sample grid


def quick_links_ui():
    cols = st.columns(4)
    cols[0].page_link("views/train.py", label="Train a model", icon=":material/model_training:")
    cols[1].page_link("views/evaluate.py", label="Evaluate and compare", icon=":material/analytics:")
    cols[2].page_link("views/latent.py", label="Explore the latent space", icon=":material/scatter_plot:")
    cols[3].page_link("views/classify.py", label="Classify your photos", icon=":material/photo_camera:")


def data_ui():
    st.subheader("The data")
    dataset = current_dataset()
    if dataset is None:
        st.markdown(
            f"**How to provide Fashion-MNIST offline:** download the four files "
            "`train-images-idx3-ubyte.gz`, `train-labels-idx1-ubyte.gz`, `t10k-images-idx3-ubyte.gz`, "
            "`t10k-labels-idx1-ubyte.gz` (from github.com/zalandoresearch/fashion-mnist), put them in "
            f"one folder, set `{FASHION_MNIST_DIR_ENV}` to it and restart the app. Meanwhile you can "
            "pick another data source in the sidebar, and Classify and the Models page work with "
            "the models already in the registry."
        )
        return
    h, w, c = dataset.image_shape
    st.markdown(
        f"**{dataset.name}** — {dataset.num_classes} classes, {len(dataset.y_train):,} training and "
        f"{len(dataset.y_test):,} test images of {h}x{w} pixels ({'colour' if c == 3 else 'greyscale'}).  \n"
        f"Read from `{dataset.source}`. Change the data source in the sidebar."
    )
    widgets.class_sample_grid(dataset, per_row=10)
    if dataset.spec.get("kind") != "fashion-mnist":
        catalogue_counts_ui(dataset)


def catalogue_counts_ui(dataset):
    from fashion_core.catalogue import catalogue_summary

    summary = catalogue_summary(dataset)
    st.dataframe(summary, hide_index=True,
                 column_config={"share": st.column_config.ProgressColumn("share", format="percent",
                                                                        min_value=0.0, max_value=1.0)})
    ratio = summary.attrs.get("imbalance_ratio", 1.0)
    if ratio > 3:
        st.warning(f"The classes are imbalanced (largest / smallest = {ratio:.1f}); consider "
                   "class weights when training or collecting more images of the small classes.")
    if dataset.skipped:
        with st.expander(f"{len(dataset.skipped)} file(s) could not be read"):
            st.dataframe(pd.DataFrame(dataset.skipped, columns=["file", "reason"]), hide_index=True)


def models_ui():
    st.subheader("Models in the registry")
    entries, problems = cache.model_entries()
    if not entries:
        widgets.no_models_notice()
    else:
        table = pd.DataFrame([e.summary() for e in entries])
        table["created"] = table["created"].astype(str).str.slice(0, 16).str.replace("T", " ")
        st.dataframe(
            table[["name", "arch", "dataset", "test_accuracy", "size_mb", "created"]],
            hide_index=True,
            column_config={
                "name": "Model",
                "arch": "Architecture",
                "dataset": "Dataset",
                "test_accuracy": st.column_config.NumberColumn("Test accuracy", format="percent"),
                "size_mb": st.column_config.NumberColumn("Size (MB)", format="%.2f"),
                "created": "Created (UTC)",
            },
        )
        st.caption(f"Folder: `{cache.registry().root}`. Manage models on the Models page.")
    widgets.registry_problems_notice(problems)


main()
