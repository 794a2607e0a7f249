"""Teach by correcting in the dashboard (AppTest): "Wrong? It is …" under an answer stores the photo
with its right class, the review lists it (relabel, delete), the Data-source sidebar offers "My
corrections" once it is a catalogue, and "Improve <model> with my corrections" saves a new model.
The models are constant classifiers (tests/helpers.py)."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from fashion_core.corrections import CorrectionsStore
from tests.helpers import PHOTO_FIXTURES, TIMEOUT, assert_clean, open_app, wait_for_jobs


def photo(name):
    return (PHOTO_FIXTURES / "images" / name).read_bytes()


def classify(*names):
    """The Classify page with ``names`` (fixture photos) uploaded."""
    at = open_app("views/classify.py")
    at.get("file_uploader")[0].set_value([(name, photo(name), "image/jpeg") for name in names])
    at.run()
    return at


def save_correction(at, i, label):
    """"Wrong? It is …" under answer ``i``: choose ``label``, then save."""
    at.selectbox(key=f"correct_label_{i}").set_value(label)
    at.run()
    at.button(key=f"correct_save_{i}").click()
    at.run()


def test_wrong_it_is_stores_a_correction_and_the_review_lists_it(photo_models):
    at = classify("phone-06.jpg")
    assert_clean(at)
    store = CorrectionsStore(registry=photo_models)
    assert store.list() == []  # rendering the answer writes nothing
    assert at.button(key="correct_save_0").disabled  # no class chosen yet
    save_correction(at, 0, "Shirt")
    assert_clean(at)
    assert any("Saved phone-06.jpg as **Shirt**" in s.value for s in at.success)
    [correction] = store.list()
    assert (correction.label, correction.model, correction.name) == ("Shirt", "sure_sneaker", "phone-06.jpg")
    assert store.image_bytes(correction.id) == photo("phone-06.jpg")

    # The review lists it; relabel, then delete.
    assert any(h.value.startswith("Your corrections (1 photo)") for h in at.subheader)
    assert any("**Shirt** · phone-06.jpg" in c.value for c in at.caption)
    at.selectbox(key=f"review_label_{correction.id}").set_value("Coat")
    at.run()
    at.button(key=f"review_relabel_{correction.id}").click()
    at.run()
    assert_clean(at)
    assert [c.label for c in store.list()] == ["Coat"]
    at.button(key=f"review_delete_{correction.id}").click()
    at.run()
    assert_clean(at)
    assert store.list() == [] and not any(h.value.startswith("Your corrections") for h in at.subheader)


def sidebar_app():
    import streamlit as st

    from ui.data_source import current_dataset, data_source_ui

    data_source_ui()
    dataset = current_dataset()
    if dataset is not None:
        st.write("classes: " + ",".join(dataset.class_names))


def test_sidebar_offers_my_corrections_once_it_is_a_catalogue(registry):
    store = CorrectionsStore(registry=registry)
    store.add(photo("phone-06.jpg"), "Shirt", class_names=["Shirt", "Bag"])
    at = AppTest.from_function(sidebar_app, default_timeout=TIMEOUT)
    at.run()
    assert "corrections" not in at.sidebar.radio(key="data_source_kind").options  # one photo: not a catalogue yet
    for name, label in (("catalogue-00.jpg", "Shirt"), ("catalogue-02.jpg", "Bag"), ("phone-09.jpg", "Bag")):
        store.add(photo(name), label, class_names=["Shirt", "Bag"])
    at.run()
    radio = at.sidebar.radio(key="data_source_kind")
    assert "My corrections (4 photos)" in radio.options
    radio.set_value("corrections")
    at.run()
    assert_clean(at)
    assert at.session_state["data_spec"]["path"] == str(store.csv_path)
    assert any(m.value == "classes: Bag,Shirt" for m in at.markdown)
    assert any("My corrections" in c.value for c in at.sidebar.caption)
    # A correction added later is seen at once (the CSV's modification time is part of the cache key).
    store.add(photo("phone-07.jpg"), "Trouser", class_names=["Shirt", "Bag", "Trouser"])
    store.add(photo("phone-15.jpg"), "Trouser", class_names=["Shirt", "Bag", "Trouser"])
    at.run()
    assert any(m.value == "classes: Bag,Shirt,Trouser" for m in at.markdown)


@pytest.mark.slow  # a real (tiny) fine-tune with the Fashion-MNIST test set
@pytest.mark.filterwarnings("ignore:invalid value encountered in divide:RuntimeWarning")  # a constant model's map
def test_improve_with_my_corrections_saves_a_new_model(photo_models, fashion_mnist):
    store = CorrectionsStore(registry=photo_models)
    for name, label in (("phone-06.jpg", "Shirt"), ("phone-07.jpg", "Trouser"), ("phone-08.jpg", "Pullover"),
                        ("catalogue-01.jpg", "Sneaker"), ("catalogue-02.jpg", "Bag")):
        store.add(photo(name), label, model="sure_sneaker")
    at = open_app("views/classify.py")
    assert at.text_input(key="improve_name").value == "sure_sneaker-corrected"
    at.button(key="improve_button").click()
    at.run()
    assert_clean(at)
    assert any("It runs in the background" in i.value for i in at.info)  # a job: the page is free
    wait_for_jobs()
    at.run()
    assert_clean(at)
    assert any("Saved **sure_sneaker-corrected**" in s.value for s in at.success)
    assert {m.label for m in at.metric} >= {"sure_sneaker's test set"}
    meta = photo_models.get("sure_sneaker-corrected").metadata
    assert meta["parent"] == "sure_sneaker" and meta["finetune"]["corrections"] + meta["finetune"]["heldout"] == 5


def test_the_saved_message_shows_under_the_answer_it_belongs_to(photo_models):
    """Saving reruns the whole page (the review and the sidebar see the new photo); the message
    then appears under the second answer, not taken by the first."""
    at = classify("phone-06.jpg", "phone-09.jpg")
    save_correction(at, 1, "Bag")
    assert_clean(at)
    assert any("Saved phone-09.jpg as **Bag**" in s.value for s in at.success)
    assert any(h.value.startswith("Your corrections (1 photo)") for h in at.subheader)
