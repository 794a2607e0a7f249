"""Latent space: a 2-D map of what a model has learnt, and nearest-neighbour search in it."""

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from fashion_core.errors import FashionError
from ui import cache, charts, widgets

GALLERY_SIZES = {10000: "10,000 images (fast)", 30000: "30,000 images", None: "all images"}
QUERY_SOURCES = ("Test-set image", "Point clicked on the map", "Upload", "Webcam")
MAP_KEY, SOURCE_KEY = "latent_map", "latent_query_source"


def main():
    st.title(":material/scatter_plot: Latent space")
    st.caption("Every image becomes a vector inside the model: the autoencoder's latent code, or a "
               "classifier's last hidden layer. Similar garments lie close together. Pick a query "
               "image and see its nearest neighbours among the training and test images.")
    entries, problems = cache.model_entries()
    widgets.registry_problems_notice(problems)
    if not entries:
        widgets.no_models_notice()
        return
    entry, gallery_size, method, k = settings_ui(entries)
    try:
        _encoder, description = cache.encoder(entry.name)
        data = cache.model_dataset(entry.metadata)
        embeddings, labels, sources, rows = cache.gallery_embeddings(entry.name, entry.metadata, gallery_size)
        index = cache.neighbour_index(entry.name, entry.metadata, gallery_size)
    except FashionError as exc:
        st.error(str(exc))
        return
    st.caption(f"Vectors: {description}; gallery of {len(labels):,} images from **{data.name}**.")
    map_col, query_col = st.columns([3, 2], gap="large")
    with map_col:
        map_ui(embeddings, labels, data.class_names, method)
    with query_col:
        query = query_ui(entry, data, rows)
    if query is not None:
        neighbours_ui(entry, data, query, index, labels, sources, rows, k)


def settings_ui(entries):
    from fashion_core.inference import default_photo_model_name

    default = default_photo_model_name(cache.registry()) or widgets.best_entry_name(entries)
    c1, c2, c3, c4 = st.columns([3, 2, 2, 1])
    with c1:
        entry = widgets.model_selector(entries, "Model", key="latent_model", default=default,
                                       help="The photo model is chosen by default: it understands uploaded and "
                                            "webcam photos best. Autoencoder models use their latent code; the "
                                            "others their last hidden layer.")
    gallery_size = c2.selectbox("Gallery", list(GALLERY_SIZES), format_func=GALLERY_SIZES.get, key="latent_gallery",
                                help="Training + test images searched for neighbours (a random sample when smaller). "
                                     "Embeddings are computed once per model and kept.")
    method = c3.radio("Map", ["pca", "tsne"], format_func={"pca": "PCA", "tsne": "t-SNE (3,000 points)"}.get,
                      horizontal=True, key="latent_method", help="t-SNE separates clusters better but takes longer.")
    k = c4.number_input("Neighbours", 1, 50, 8, key="latent_k")
    return entry, gallery_size, method, int(k)


def map_ui(embeddings, labels, class_names, method):
    sample = 3000 if method == "tsne" else min(len(labels), 6000)
    try:
        coords, points = cache.projection(embeddings, method, sample)
    except FashionError as exc:
        st.error(str(exc))
        return
    fig = go.Figure()
    for c, name in enumerate(class_names):
        members = np.flatnonzero(labels[points] == c)
        fig.add_trace(go.Scattergl(x=coords[members, 0], y=coords[members, 1], mode="markers", name=name,
                                   marker=dict(size=5, opacity=0.7, color=charts.PALETTE[c % len(charts.PALETTE)]),
                                   customdata=points[members], hovertemplate=f"{name}<extra>click: use as query</extra>"))
    fig.update_layout(height=520, template="plotly_white", margin=dict(l=10, r=10, t=10, b=10), dragmode="pan",
                      legend=dict(itemsizing="constant"), xaxis=dict(showticklabels=False), yaxis=dict(showticklabels=False))
    st.plotly_chart(fig, on_select="rerun", selection_mode="points", key=MAP_KEY)
    st.caption(f"{'PCA' if method == 'pca' else 't-SNE'} of {len(points):,} gallery images, coloured by class.")


def _clicked_row():
    """The gallery row of the last point clicked on the map, or None."""
    event = st.session_state.get(MAP_KEY)
    points = (event or {}).get("selection", {}).get("points", []) if event else []
    if points and points[0].get("customdata") is not None:
        custom = points[0]["customdata"]
        return int(custom[0] if isinstance(custom, (list, tuple)) else custom)
    return None


def query_ui(entry, data, rows):
    """The query: {"image", "label" (or None), "row" (gallery row to exclude or -1), "title"}."""
    clicked = _clicked_row()
    if clicked is not None and st.session_state.get("latent_clicked_applied") != clicked:
        st.session_state["latent_clicked_applied"] = clicked
        st.session_state[SOURCE_KEY] = QUERY_SOURCES[1]
    source = st.radio("Query", QUERY_SOURCES, horizontal=True, key=SOURCE_KEY)
    n_train = len(data.y_train)
    if source == QUERY_SOURCES[0]:
        i = int(st.number_input("Test-set index", 0, len(data.y_test) - 1, 0, key="latent_test_index",
                                help=f"0 … {len(data.y_test) - 1}"))
        position = np.searchsorted(rows, n_train + i)
        row = int(position) if position < len(rows) and rows[position] == n_train + i else -1
        return {"image": data.x_test[i], "label": int(data.y_test[i]), "row": row, "title": f"test image {i}"}
    if source == QUERY_SOURCES[1]:
        if clicked is None:
            st.info("Click a point on the map to use it as the query.")
            return None
        original = int(rows[clicked])
        image = data.x_train[original] if original < n_train else data.x_test[original - n_train]
        label = int(data.y_train[original] if original < n_train else data.y_test[original - n_train])
        return {"image": image, "label": label, "row": clicked, "title": "the clicked image"}
    upload = (st.file_uploader("Image", type=["png", "jpg", "jpeg", "webp", "bmp", "gif"], key="latent_upload")
              if source == QUERY_SOURCES[2] else st.camera_input("Take a photo", key="latent_camera"))
    if upload is None:
        return None
    from fashion_core.preprocess import prepare_image

    try:
        prepared = prepare_image(upload.getvalue(), data.image_shape, name=upload.name)
    except FashionError as exc:
        st.error(str(exc))
        return None
    return {"image": prepared.preview, "label": None, "row": -1, "title": upload.name}


def neighbours_ui(entry, data, query, index, labels, sources, rows, k):
    from fashion_core import latent

    encoder_model, _ = cache.encoder(entry.name)
    vector = latent.embed(encoder_model, query["image"][None])
    label = query["label"]
    label_note = "its label"
    if label is None:  # an upload: compare with what the model predicts for it
        from fashion_core.training import predict_probabilities

        label = int(predict_probabilities(cache.classifier(entry.name), query["image"][None]).argmax())
        label_note = "the predicted class"
    try:
        distances, found = index.query(vector, k=k, exclude=[query["row"]])
    except FashionError as exc:
        st.error(str(exc))
        return
    distances, found = distances[0], found[0]
    agree = labels[found] == label
    st.subheader(f"The {k} nearest neighbours of {query['title']}")
    c1, c2 = st.columns([1, 4], gap="large")
    with c1:
        scale = max(1, 112 // data.image_shape[1])
        st.image(widgets.to_display(query["image"], scale), caption=f"Query: {data.class_names[label]}")
        reconstruction = latent.reconstruct(entry.name, query["image"][None], registry=cache.registry())
        if reconstruction is not None:
            st.image(widgets.to_display(reconstruction[0], scale), caption="Its reconstruction")
        st.metric(f"Precision@{k}", f"{agree.mean():.0%}",
                  help=f"Share of the {k} neighbours whose label equals {label_note}.")
    with c2:
        images = [_gallery_image(data, int(rows[r])) for r in found]
        captions = [f"{'✓' if ok else '✗'} {data.class_names[labels[r]]} · d={d:.2f} · {sources[r]}"
                    for r, d, ok in zip(found, distances, agree)]
        widgets.image_gallery(images, captions, columns=min(k, 6), width=104)


def _gallery_image(data, original_row):
    n_train = len(data.y_train)
    return data.x_train[original_row] if original_row < n_train else data.x_test[original_row - n_train]


main()
