"""Classify: upload photos (or take one with the webcam) and see what a model makes of them."""

import base64
import contextlib
import io

import pandas as pd
import streamlit as st

from fashion_core.errors import FashionError, ImageError
from fashion_core.finetune import DEFAULTS, MIN_CORRECTIONS
from fashion_core.jobs import DONE, ENDED
from fashion_core.preprocess import MAX_UPLOAD_BYTES
from fashion_core.registry import default_entry
from fashion_core.inference import compare_models
from fashion_core.saliency import overlay
from ui import cache, jobs, links, widgets

IMAGE_TYPES = ["png", "jpg", "jpeg", "webp", "bmp", "gif"]
REVIEW_LIMIT, REVIEW_COLUMNS = 24, 6
SAVED_KEY = "classify_saved_correction"  # (answer index, message) shown once after saving


def main():
    st.title(":material/photo_camera: Classify")
    st.caption("Upload photos (PNG, JPEG, WebP, BMP or GIF — the first frame) or take one with your "
               f"webcam, up to {MAX_UPLOAD_BYTES // 2**20} MB each: one garment per photo, a product "
               "shot or the garment laid on a bed or the floor. The image is cropped and converted the "
               "way the model expects; things that are none of its classes are answered \"none of these\".")
    entries = widgets.registry_entries_ui()
    if not entries:
        return
    entry, top_k = settings_ui(entries)
    links.mirror("classify", model=entry.name)
    links.copy_link_ui({"model": entry.name})
    photos_ui(entry, entries, top_k, *options_ui())
    corrections_ui(entry)


@st.fragment
def photos_ui(entry, entries, top_k, webcam, explain, compare):
    """The uploads, the webcam photo and their answers: a fragment, so an upload reruns only this
    part (not the sidebar, the model choice, the toggles above it or the corrections below): on a
    server shared by many sessions each answer costs less Python and fewer messages, and answers
    queue less (docs/PERFORMANCE.md)."""
    items = inputs_ui(webcam)
    if items:
        answers_ui(entry, items, top_k, explain)
        if compare:
            compare_all_ui(entries, items)
    else:
        st.info("Add one or more images above to classify them.")


def answers_ui(entry, items, top_k, explain):
    """The answers for every image (a table first when there are several), each with
    "Wrong? It is …"."""
    classifier = widgets.loaded_or_error(cache.inference_classifier, entry.name)
    if classifier is None:
        return
    # A spinner only for a batch: one photo is answered in milliseconds, and a spinner costs a
    # timer thread and a message per answer on a server every session shares
    with st.spinner(f"Classifying {len(items)} images…") if len(items) > 1 else contextlib.nullcontext():
        results = classifier.classify_many(items, top_k=top_k)
    if len(results) > 1:
        results_table_ui(items, results)
    for i, ((name, data), result) in enumerate(zip(items, results)):
        result_ui(i, name, result, expanded=len(results) == 1, classifier=classifier if explain else None)
        if not isinstance(result, ImageError):
            correction_ui(i, name, data, entry)


def settings_ui(entries):
    c1, c2 = st.columns([3, 1])
    with c1:
        links.initial_choice("classify", "model", "classify_model", [e.name for e in entries])
        default = links.linked("classify_model", default_entry(entries, any_dataset=True).name)
        entry = widgets.model_selector(entries, "Model", key="classify_model", default=default,
                                       help="The photo model (trained on Fashion-MNIST and real product and "
                                            "phone photos) is chosen by default. Each model uses its own classes.")
    top_k = c2.slider("Show the top", 1, min(10, len(entry.metadata.get("class_names") or [0] * 10)), 3,
                      key="classify_top_k", help="How many of the most likely classes to show.")
    classes = entry.metadata.get("class_names")
    if classes:
        st.caption(f"This model knows {len(classes)} classes: {', '.join(classes)}.")
    return entry, top_k


def inputs_ui(webcam):
    """[(name, bytes)] of the uploaded files and the webcam photo (with ``webcam``)."""
    uploads = st.file_uploader("Images", type=IMAGE_TYPES, accept_multiple_files=True, key="classify_uploads")
    items = [(f.name, f.getvalue()) for f in uploads or []]
    if webcam:
        photo = st.camera_input("Take a photo of a garment on a plain background", key="classify_camera")
        if photo is not None:
            items.append(("webcam photo", photo.getvalue()))
    return items


def options_ui():
    """(use the webcam, show saliency, compare all models) toggles, outside the photos' fragment:
    switching one reruns the page, an upload does not redraw them."""
    c0, c1, c2 = st.columns(3)
    webcam = c0.toggle("Use the webcam", key="classify_use_camera")
    explain = c1.toggle("Show what drove the answer", key="classify_explain",
                        help="A heat map over what the model sees: bright pixels changed the answer most when hidden "
                             "(occlusion saliency, checked in `bench`).")
    compare = c2.toggle("Compare all models", key="classify_compare_all",
                        help="Every model's answer for the first image, and whether they agree.")
    return webcam, explain, compare


def result_ui(i, name, result, expanded=True, classifier=None):
    if isinstance(result, ImageError):
        st.error(f"{name}: {result}")
        return
    with st.expander(f"{name} → {headline(result)}", expanded=expanded):
        c1, c2, c3 = st.columns([2, 1, 3], gap="medium")
        c1.image(widgets.photo_for_display(result.prepared.original), caption="Your image", width="stretch")
        scale = max(1, 112 // result.prepared.preview.shape[1])
        c2.image(widgets.to_display(result.prepared.preview, scale=scale), caption="What the model sees", width="stretch")
        if classifier is not None:
            saliency = classifier.saliency(result.prepared.model_input, result.class_index)
            c2.image(overlay(result.prepared.preview, saliency, scale=scale),
                     caption=f"What drove “{result.class_name}” (bright: mattered most)", width="stretch")
        with c3:
            if result.none_of_these:
                st.markdown("### None of these")
                st.warning(f"This does not look like any of the {result.class_count} classes this model knows. "
                           f"The closest is {result.class_name} at {result.probability:.0%}; the scores are below.")
                if result.other_reasons:
                    st.caption("Also: " + "; ".join(result.other_reasons))
            else:
                st.markdown(f"### {result.class_name}\n**{result.probability:.1%}** sure. Search for: "
                            + " · ".join(f"`{k}`" for k in result.keywords))
                if result.flagged:
                    st.warning("Not sure about this one: " + "; ".join(result.flag_reasons))
            widgets.probability_bars(result.top_k)
            st.caption("  \n".join(["Calibrated probabilities: a 90% answer is right about 90% of the time "
                                    "(calibration fitted on held-out validation images).", *result.prepared.notes]))


def correction_ui(i, name, data, entry):
    """"Wrong? It is …": store the photo with its right class in the corrections catalogue."""
    classes = list(entry.metadata.get("class_names") or [])
    if not classes:
        return
    with st.popover("Wrong? It is …", icon=":material/edit:"):
        label = st.selectbox(f"What {name} really shows", classes, index=None, key=f"correct_label_{i}",
                             placeholder="Choose the right class")
        st.caption("The photo and this label are kept in your corrections (beside the models): review them below, "
                   "improve the model with them, or train on them (\"My corrections\" in the sidebar, once two "
                   "classes have two photos each).")
        saved = st.session_state.get(SAVED_KEY)
        if saved and saved[0] == i:
            st.success(st.session_state.pop(SAVED_KEY)[1])
        if st.button("Save to my corrections", key=f"correct_save_{i}", type="primary", disabled=label is None,
                     icon=":material/save:"):
            try:
                cache.corrections().add(data, label, model=entry, name=name)
            except FashionError as exc:
                st.error(str(exc))
                return
            # The review below and the sidebar's catalogue count are outside this fragment: rerun all.
            st.session_state[SAVED_KEY] = (i, f"Saved {name} as **{label}** in your corrections.")
            st.rerun(scope="app")


def corrections_ui(entry):
    """The corrections catalogue: review (relabel, delete) and "Improve <model> with my corrections"."""
    store = cache.corrections()
    try:
        corrections = store.list()
    except FashionError as exc:
        st.error(str(exc))
        return
    if not corrections:
        return
    st.divider()
    st.subheader(f"Your corrections ({len(corrections)} photo{'' if len(corrections) == 1 else 's'})")
    review_ui(store, corrections, entry)
    improve_ui(store, entry)


def review_ui(store, corrections, entry):
    """The newest corrections as thumbnails, each with its label, relabel and delete."""
    shown = corrections[::-1][:REVIEW_LIMIT]
    with st.expander(f"Review them ({'the ' + str(len(shown)) + ' newest' if len(shown) < len(corrections) else 'all'})",
                     expanded=False):
        for start in range(0, len(shown), REVIEW_COLUMNS):
            for col, correction in zip(st.columns(REVIEW_COLUMNS), shown[start:start + REVIEW_COLUMNS]):
                with col:
                    review_item_ui(store, correction, entry)


def review_item_ui(store, correction, entry):
    thumbnail = cache.correction_thumbnail(store, correction)
    if thumbnail is not None:
        st.image(thumbnail, width="stretch")
    st.caption(f"**{correction.label}** · {correction.name}" + (f" · corrects {correction.model}" if correction.model else ""))
    classes = _classes_of(correction.model) or list(entry.metadata.get("class_names") or [])
    options = classes if correction.label in classes else [correction.label, *classes]
    with st.popover("Edit", icon=":material/edit:"):
        label = st.selectbox("Label", options, index=options.index(correction.label), key=f"review_label_{correction.id}")
        c1, c2 = st.columns(2)
        if c1.button("Relabel", key=f"review_relabel_{correction.id}", disabled=label == correction.label):
            _change(lambda: store.relabel(correction.id, label, class_names=classes or None), f"Relabelled as {label}.")
        if c2.button("Delete", key=f"review_delete_{correction.id}", icon=":material/delete:"):
            _change(lambda: store.delete(correction.id), f"Deleted {correction.name} from your corrections.")


def _classes_of(model):
    """The class names of registry model ``model``, or None when it is gone."""
    if not model:
        return None
    try:
        return list(cache.registry().get(model).metadata.get("class_names") or []) or None
    except FashionError:
        return None


def _change(action, message):
    try:
        action()
    except FashionError as exc:
        st.error(str(exc))
        return
    st.toast(message)
    st.rerun()


def improve_ui(store, entry):
    """"Improve <model> with my corrections": a new model fine-tuned on the corrections that fit it."""
    classes = list(entry.metadata.get("class_names") or [])
    fitting = sum(store.counts(classes).values())
    st.markdown(f"#### Improve {entry.name} with my corrections")
    if fitting < MIN_CORRECTIONS:
        st.caption(f"Correct at least {MIN_CORRECTIONS} photos with {entry.name}'s classes first ({fitting} so far).")
        return
    st.caption(f"{fitting} of your photos carry {entry.name}'s classes. A **new** model starts from {entry.name}'s "
               f"weights and learns them ({DEFAULTS.epochs} epochs, mixed with {DEFAULTS.replay:,} images of "
               f"{entry.name}'s own training data so it does not forget); a fifth of your photos is held out "
               f"to measure it, before and after, with {entry.name}'s test set. {entry.name} is not changed. "
               "Takes minutes.")
    name = st.text_input("Name of the new model", value=jobs.free_model_name(f"{entry.name}-corrected"), key="improve_name")
    if st.button(f"Improve {entry.name} with my corrections", key="improve_button", type="primary",
                 icon=":material/auto_fix_high:"):
        try:
            csv_path = store.csv_for(classes)
        except FashionError as exc:
            st.error(str(exc))
            return
        job = jobs.submit("finetune", {"base": entry.name, "data_csv": str(csv_path), "name": name})
        if job is not None:
            st.session_state["improve_job"] = job.id
    improve_job_ui()


def improve_job_ui():
    """The person's last "Improve" job: queued / running (see the sidebar), or its before/after."""
    job_id = st.session_state.get("improve_job")
    job = jobs.store().get(job_id) if job_id else None
    if job is None:
        return
    if job.state == DONE:
        improve_result_ui(job.result)
    elif job.state in ENDED:
        st.warning(f"Fine-tuning {job.title} {job.state}: {job.error or 'nothing was saved'}.")
    else:
        st.info(f"**{job.title}**: {jobs.status_line(job)}. It runs in the background: use the studio "
                "meanwhile; the sidebar shows its progress and the new model appears when it is done.",
                icon=":material/schedule:")


def improve_result_ui(result):
    before, after = result["before"], result["after"]
    st.success(f"Saved **{result['name']}**, fine-tuned from {result['base']} on {result['corrections']} of your photos "
               f"in {result['train_seconds']:.0f} s. Choose it above to use it.")
    c1, c2 = st.columns(2)
    if after["heldout_accuracy"] is not None:
        c1.metric(f"Your held-out photos ({result['heldout']})", f"{after['heldout_accuracy']:.1%}",
                  delta=f"{100 * (after['heldout_accuracy'] - before['heldout_accuracy']):+.1f} points",
                  help=f"{result['base']}: {before['heldout_accuracy']:.1%}")
    c2.metric(f"{result['base']}'s test set", f"{after['test_accuracy']:.2%}",
              delta=f"{100 * (after['test_accuracy'] - before['test_accuracy']):+.2f} points",
              help=f"{result['base']}: {before['test_accuracy']:.2%}")
    if result["skipped"]:
        st.caption(f"{len(result['skipped'])} photo(s) could not be read and were left out.")


def compare_all_ui(entries, items):
    """One row per registry model for the first image, and a line saying whether they agree."""
    name, data = items[0]
    classifiers = [c for c in (widgets.loaded_or_error(cache.inference_classifier, e.name) for e in entries) if c is not None]
    with st.spinner(f"Asking {len(classifiers)} models…"):
        rows, agreement = compare_models(classifiers, data, name=name)
    st.subheader(f"All models on {name}")
    answers = agreement["answers"]
    if not answers:
        st.error("No model could read this image.")
        return
    if agreement["agree"]:
        st.success(f"All {sum(len(v) for v in answers.values())} models agree: **{next(iter(answers))}**.")
    else:
        st.warning("The models disagree: " + "; ".join(f"**{answer}** ({', '.join(models)})"
                                                        for answer, models in answers.items()) + ".")
    st.dataframe(pd.DataFrame(rows), hide_index=True, key="classify_compare_table", column_config={
        "probability": st.column_config.ProgressColumn("Confidence", format="percent", min_value=0.0, max_value=1.0),
        "flagged": st.column_config.CheckboxColumn("Unsure"),
    })


def headline(result):
    """The one-line answer: the class and its probability, or "none of these"."""
    if result.none_of_these:
        return f"none of the {result.class_count} classes (closest: {result.class_name}, {result.probability:.0%})"
    return f"{result.class_name} ({result.probability:.0%})"


def _thumbnail_uri(preview):
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(widgets.to_display(preview)).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def results_table_ui(items, results):
    rows = []
    for (name, _), result in zip(items, results):
        if isinstance(result, ImageError):
            rows.append({"image": None, "file": name, "prediction": "", "probability": None,
                         "unsure": True, "note": str(result)})
        else:
            rows.append({"image": _thumbnail_uri(result.prepared.preview), "file": name,
                         "prediction": "none of these" if result.none_of_these else result.class_name,
                         "probability": result.probability,
                         "unsure": result.flagged, "note": "; ".join(result.flag_reasons)})
    table = pd.DataFrame(rows)
    st.subheader(f"{len(rows)} images")
    st.dataframe(table, hide_index=True, column_config={
        "image": st.column_config.ImageColumn("What the model sees", width="small"),
        "probability": st.column_config.ProgressColumn("Probability", format="percent", min_value=0.0, max_value=1.0),
    }, key="classify_table")
    st.download_button("Download the results (CSV)", table.drop(columns=["image"]).to_csv(index=False),
                       file_name="classification_results.csv", mime="text/csv", icon=":material/download:")


main()
