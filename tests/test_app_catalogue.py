"""A user's own catalogue through the dashboard: pick the demo catalogue in the sidebar, train
on it, then Evaluate and Classify use its own class names (AppTest).

AppTest re-runs only the current page's script after the first run of ``app.py``, so the
sidebar selector is tested on its own and the pages receive its choice through session state,
exactly as in the app.
"""

from __future__ import annotations

import pytest

from pathlib import Path

from streamlit.testing.v1 import AppTest

from tests.helpers import APP, TIMEOUT, assert_clean, start_training

pytestmark = pytest.mark.slow  # trains models: `-m "not slow"` skips it

DEMO_CLASSES = {"bag", "shirt", "trousers"}


def sidebar_app():
    import streamlit as st

    from ui.data_source import current_dataset, data_source_ui

    data_source_ui()
    dataset = current_dataset()
    if dataset is not None:
        st.write("classes: " + ",".join(dataset.class_names))


def page(name, spec):
    """The app opened on ``views/<name>`` with ``spec`` chosen as the data source."""
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.run()
    # The sidebar (app.py) runs on every page: choose the demo catalogue there, as a person would.
    at.session_state["data_source_kind"] = "demo"
    at.session_state["catalogue_image_size"] = spec["image_size"]
    at.session_state["catalogue_color"] = spec["color"]
    at.session_state["data_spec"] = spec
    at.switch_page(f"views/{name}")
    at.run()
    return at


def test_demo_catalogue_train_evaluate_classify(registry, tmp_path, monkeypatch):
    import ui.data_source as data_source

    monkeypatch.setattr(data_source, "WORK_DIR", tmp_path / "studio")  # a fresh demo folder
    at = AppTest.from_function(sidebar_app, default_timeout=TIMEOUT)
    at.run()
    at.sidebar.radio(key="data_source_kind").set_value("demo")
    at.run()
    assert not (tmp_path / "studio").exists()  # nothing is written by merely rendering
    at.sidebar.button(key="make_demo_catalogue").click()
    at.run()
    assert_clean(at)
    assert any("classes: bag,shirt,trousers" in m.value for m in at.markdown)
    spec = at.session_state["data_spec"]
    assert spec["kind"] == "folder" and Path(spec["path"]).name == "demo_catalogue"

    home = page("home.py", spec)
    assert_clean(home)
    captions = [c for image in home.image for c in image.captions]
    assert sum("images" in c for c in captions) == len(DEMO_CLASSES)  # per-class sample grid with counts

    train = page("train.py", spec)
    assert_clean(train)
    start_training(train, "demo_model")
    meta = registry.get("demo_model").metadata
    assert set(meta["class_names"]) == DEMO_CLASSES and meta["dataset"]["kind"] == "folder"

    evaluate = page("evaluate.py", spec)
    evaluate.multiselect(key="evaluate_models").set_value(["demo_model"])
    evaluate.run()
    assert_clean(evaluate)
    assert any(m.label == "Accuracy" for m in evaluate.metric)

    classify = page("classify.py", spec)
    classify.selectbox(key="classify_model").set_value("demo_model")
    classify.run()
    photo = sorted(Path(spec["path"], "bag").iterdir())[0]
    classify.get("file_uploader")[0].set_value([(photo.name, photo.read_bytes(), "image/png")])
    classify.run()
    assert not classify.exception, [e.value for e in classify.exception]
    labels = [e.label for e in classify.expander if "→" in e.label]
    assert labels and all(any(c in label.split("→")[1] for c in DEMO_CLASSES) for label in labels), labels
