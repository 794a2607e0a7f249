"""Latent space: a 2-D map of what a model has learnt, and nearest-neighbour search in it."""

import streamlit as st

from fashion_core import latent
from fashion_core.errors import FashionError
from fashion_core.latent import MAX_TSNE_ROWS
from fashion_core.batch import saved_indexes
from fashion_core.precompute import MAP_SAMPLE
from fashion_core.registry import default_entry
from ui import cache, charts, links, widgets

GALLERY_SIZES = {10000: "10,000 images (fast)", 30000: "30,000 images", None: "all images"}
QUERY_SOURCES = ("Test-set image", "Point clicked on the map", "Upload", "Webcam")
CATALOGUE_QUERIES = ("A catalogue photo", "Upload", "Webcam")
INDEX_PREFIX = "index:"  # a Gallery choice naming a saved catalogue index (batch --embed)
MAP_KEY, SOURCE_KEY = "latent_map", "latent_query_source"
HERE_NEIGHBOURS = 5


def main():
    st.title(":material/scatter_plot: Latent space")
    st.caption("Every image becomes a vector inside the model: the autoencoder's latent code, or a "
               "classifier's last hidden layer. Similar garments lie close together. Pick a query "
               "image and see its nearest neighbours among the training and test images.")
    entries = widgets.registry_entries_ui()
    if not entries:
        return
    entry, gallery_size, method, k = settings_ui(entries)
    if isinstance(gallery_size, str):
        catalogue_ui(entry, gallery_size.removeprefix(INDEX_PREFIX), k)
        return
    try:
        encoder_model, description = cache.encoder(entry.name)
        data = cache.model_dataset(entry.metadata)
        embeddings, labels, sources, rows = cache.gallery_embeddings(entry.name, entry.metadata, gallery_size)
        index = cache.neighbour_index(entry.name, entry.metadata, gallery_size)
    except FashionError as exc:
        st.error(str(exc))
        return
    st.caption(f"Vectors: {description}; gallery of {len(labels):,} images from **{data.name}**.")
    map_col, query_col = st.columns([3, 2], gap="large")
    with query_col:
        query = query_ui(entry, data, rows)
    vector = None if query is None else latent.embed(encoder_model, query["image"][None])
    with map_col:
        map_ui(entry, gallery_size, labels, data.class_names, method, embeddings, vector, query)
    view = {"model": entry.name, "query": query.get("link") if query else None}
    links.mirror("latent", **view)
    links.copy_link_ui({k: v for k, v in view.items() if v is not None})
    if query is not None:
        neighbours_ui(entry, data, query, vector, index, labels, sources, rows, k)


def settings_ui(entries):
    links.initial_choice("latent", "model", "latent_model", [e.name for e in entries])
    default = links.linked("latent_model", default_entry(entries, any_dataset=True).name)
    c1, c2, c3, c4 = st.columns([3, 2, 2, 1])
    with c1:
        entry = widgets.model_selector(entries, "Model", key="latent_model", default=default,
                                       help="The photo model is chosen by default: it understands uploaded and "
                                            "webcam photos best. Autoencoder models use their latent code; the "
                                            "others their last hidden layer.")
    galleries = {**GALLERY_SIZES, **{f"{INDEX_PREFIX}{r['path']}": f"catalogue: {_short(r['source'])} ({r['rows']:,} photos)"
                                     for r in saved_indexes(cache.registry(), model=entry.name)}}
    gallery_size = c2.selectbox("Gallery", list(galleries), format_func=galleries.get, key="latent_gallery",
                                help="Training + test images searched for neighbours (a random sample when smaller). "
                                     "Embeddings are computed once per model and kept. A catalogue this model "
                                     "classified with `python -m fashion_core batch SOURCE --model NAME --out DIR "
                                     "--embed` is listed too: its saved faiss index is searched.")
    method = c3.radio("Map", ["pca", "tsne"], format_func={"pca": "PCA", "tsne": "t-SNE (3,000 points)"}.get,
                      horizontal=True, key="latent_method", disabled=isinstance(gallery_size, str),
                      help="t-SNE separates clusters better but takes longer. (A catalogue index is searched "
                           "without a map.)")
    k = c4.number_input("Neighbours", 1, 50, 8, key="latent_k")
    return entry, gallery_size, method, int(k)


def _short(text, keep=40):
    return text if len(text) <= keep else "…" + text[-(keep - 1):]


def catalogue_ui(entry, path, k):
    """Nearest photos in a catalogue's saved faiss index (``batch --embed``): the query is one
    of its photos or a new photo, embedded by the same model as the catalogue."""
    from fashion_core.batch import read_bytes

    try:
        saved = cache.catalogue_index(path)
        encoder_model, description = cache.encoder(entry.name)
    except FashionError as exc:
        st.error(str(exc))
        return
    st.caption(f"Vectors: {description}. Searching the saved index of **{saved.source}**: {len(saved):,} "
               f"photo{'' if len(saved) == 1 else 's'} embedded by `batch --embed` with {saved.model} "
               f"({saved.index.kind} faiss index, `{saved.path}`).")
    query_col, found_col = st.columns([1, 3], gap="large")
    with query_col:
        source = st.radio("Query", CATALOGUE_QUERIES, horizontal=True, key="latent_catalogue_query")
        row = None
        if source == CATALOGUE_QUERIES[0]:
            row = int(st.number_input("Catalogue photo", 0, len(saved) - 1, 0, key="latent_catalogue_row",
                                      help=f"Row 0 … {len(saved) - 1} of the index"))
            name = saved.paths[row]
            try:
                data = read_bytes(name)
            except FashionError as exc:
                st.error(str(exc))
                return
        else:
            upload = (st.file_uploader("Image", type=["png", "jpg", "jpeg", "webp", "bmp", "gif"], key="latent_catalogue_upload")
                      if source == CATALOGUE_QUERIES[1] else st.camera_input("Take a photo", key="latent_catalogue_camera"))
            if upload is None:
                return
            name, data = upload.name, upload.getvalue()
        classifier = cache.inference_classifier(entry.name)
        try:  # a catalogue photo's class is already in the index: only an upload is classified
            answer = None if row is not None else classifier.classify(data, name=str(name))
            prepared = answer.prepared if answer is not None else classifier.preprocess(data, name=str(name))
        except FashionError as exc:
            st.error(str(exc))
            return
        if answer is None:
            query_class = saved.class_of(row)
            st.image(cache.photo_thumbnail(name, 224), caption=f"Query: {query_class}")
        else:
            query_class = answer.class_name
            st.image(widgets.to_display(prepared.preview, max(1, 224 // prepared.preview.shape[1])),
                     caption=f"Query: {query_class} ({answer.probability:.0%})")
    vector = latent.embed(encoder_model, prepared.model_input[None])
    k = min(k, len(saved) - (1 if row is not None else 0))
    if k < 1:
        st.info("The index holds no other photo.")
        return
    found = saved.search(vector, k=k, exclude=row)
    agree = [found_class == query_class for _row, _path, found_class, _d in found]
    with query_col:
        st.metric(f"Same class in the {k} nearest", f"{sum(agree) / k:.0%}",
                  help="Share of the neighbours whose class (the model's answer when the catalogue was classified) "
                       "equals the query's.")
    with found_col:
        st.subheader(f"The {k} nearest catalogue photos")
        for start in range(0, k, 4):
            for col, (found_row, found_path, found_class, distance), ok in zip(
                    st.columns(4), found[start:start + 4], agree[start:start + 4]):
                thumbnail = cache.photo_thumbnail(found_path)
                with col:
                    caption = f"{'✓' if ok else '✗'} {found_class} · d={distance:.2f} · #{found_row} {_short(found_path, 28)}"
                    if thumbnail is None:
                        st.warning(f"{caption}: the photo cannot be read any more.")
                    else:
                        st.image(thumbnail, caption=caption, width="stretch")


def map_ui(entry, gallery_size, labels, class_names, method, embeddings, vector=None, query=None):
    """The 2-D map; a query image (``vector``) is drawn on it as a star with lines to its
    nearest map points ("you are here")."""
    sample = MAX_TSNE_ROWS if method == "tsne" else min(len(labels), MAP_SAMPLE)
    try:
        coords, points = cache.projection(entry.name, entry.metadata, gallery_size, method, sample)
    except FashionError as exc:
        st.error(str(exc))
        return
    here, nearest, label = None, None, None
    if vector is not None:
        here, nearest = latent.place_on_map(coords, embeddings[points], vector, k=HERE_NEIGHBOURS)
        label = "your photo" if query["label"] is None else "query"  # uploads and webcam photos have no label
    fig = charts.latent_map_figure(coords, labels, points, class_names, here=here, here_neighbours=nearest,
                                   here_label=label or "you are here")
    st.altair_chart(fig, on_select="rerun", selection_mode=charts.MAP_SELECTION, key=MAP_KEY)
    st.caption(f"{'PCA' if method == 'pca' else 't-SNE'} of {len(points):,} gallery images, coloured by class."
               + (f" The star is {query['title']}, placed among its {HERE_NEIGHBOURS} nearest points on the map "
                  "(dotted lines)." if here is not None else ""))


def _clicked_row():
    """The gallery row of the last point clicked on the map, or None."""
    return charts.clicked_map_row(st.session_state.get(MAP_KEY))


def _test_index(text):
    """``test:INDEX`` (the ``query`` link parameter) → INDEX."""
    kind, _, index = text.partition(":")
    if kind != "test":
        raise ValueError(text)
    return int(index)


def query_ui(entry, data, rows):
    """The query: {"image", "label" (or None), "row" (gallery row to exclude or -1), "title"}."""
    clicked = _clicked_row()
    if clicked is not None and st.session_state.get("latent_clicked_applied") != clicked:
        st.session_state["latent_clicked_applied"] = clicked
        st.session_state[SOURCE_KEY] = QUERY_SOURCES[1]
    links.initial_choice("latent", "query", "latent_test_index", range(len(data.y_test)), parse=_test_index,
                         label="query image")
    source = st.radio("Query", QUERY_SOURCES, horizontal=True, key=SOURCE_KEY)
    if source == QUERY_SOURCES[0]:
        i = int(st.number_input("Test-set index", 0, len(data.y_test) - 1, links.linked("latent_test_index", 0),
                                key="latent_test_index", help=f"0 … {len(data.y_test) - 1}"))
        row = latent.sample_position_of_test_image(data, rows, i)
        return {"image": data.x_test[i], "label": int(data.y_test[i]), "row": row, "title": f"test image {i}",
                "link": f"test:{i}"}
    if source == QUERY_SOURCES[1]:
        if clicked is None:
            st.info("Click a point on the map to use it as the query.")
            return None
        original = int(rows[clicked])
        return {"image": latent.gallery_image(data, original), "label": latent.gallery_label(data, original),
                "row": clicked, "title": "the clicked image"}
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


def neighbours_ui(entry, data, query, vector, index, labels, sources, rows, k):
    label = query["label"]
    label_note = "its label"
    if label is None:  # an upload: compare with what the model predicts for it
        from fashion_core.predict import predict_classes

        # the Classify page's classifier (shared, LiteRT for photo models): no second copy of the model
        label = int(predict_classes(cache.inference_classifier(entry.name).forward, query["image"][None])[0])
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
        reconstruction = latent.reconstruct(cache.autoencoder(entry.name), query["image"][None])
        if reconstruction is not None:
            st.image(widgets.to_display(reconstruction[0], scale), caption="Its reconstruction")
        st.metric(f"Precision@{k}", f"{agree.mean():.0%}",
                  help=f"Share of the {k} neighbours whose label equals {label_note}.")
    with c2:
        images = [latent.gallery_image(data, int(rows[r])) for r in found]
        captions = [f"{'✓' if ok else '✗'} {data.class_names[labels[r]]} · d={d:.2f} · {sources[r]}"
                    for r, d, ok in zip(found, distances, agree)]
        widgets.image_gallery(images, captions, columns=min(k, 6), width=104)


main()
