"""Shareable views: ``?model=…`` (and the confusion cell, the query image) are read when a page
opens and mirrored as the view changes; bad or stale parameters are ignored with a notice."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from tests.helpers import APP, TIMEOUT, assert_clean
from ui import links


def open_with(page, **params):
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.run()
    at.switch_page(page)
    for key, value in params.items():
        at.query_params[key] = value
    at.run()
    return at


def _param(at, key):
    value = at.query_params[key]
    return value[-1] if isinstance(value, list) else value


def _notices(at):
    return [c.value for c in at.caption if "link_off" in c.value]


@pytest.mark.parametrize("page,key", [("views/classify.py", "classify_model"), ("views/latent.py", "latent_model")])
def test_model_parameter_selects_the_model_and_round_trips(models_env, page, key):
    at = open_with(page, model="tiny_ae")
    assert_clean(at)
    assert at.selectbox(key=key).value == "tiny_ae"
    assert _param(at, "model") == "tiny_ae"
    at.selectbox(key=key).set_value("tiny_cnn").run()
    assert _param(at, "model") == "tiny_cnn"  # the URL follows the screen
    assert not at.code  # the copy-link block is built only when opened
    at.session_state[links.COPY_LINK_KEY] = True
    at.run()
    assert any("model=tiny_cnn" in c.value for c in at.code)  # the copy-link block


def test_evaluate_opens_the_linked_confusion_cell(models_env):
    at = open_with("views/evaluate.py", model="tiny_cnn", true="Shirt", pred="T-shirt/top")
    assert_clean(at)
    assert at.multiselect(key="evaluate_models").value == ["tiny_cnn"]
    names = models_env.evaluation("tiny_cnn")["class_names"]
    assert names[at.selectbox(key="cm_true_tiny_cnn").value] == "Shirt"
    assert names[at.selectbox(key="cm_pred_tiny_cnn").value] == "T-shirt/top"
    assert _param(at, "true") == "Shirt" and _param(at, "pred") == "T-shirt/top"
    assert not _notices(at)


def test_latent_opens_the_linked_test_image(models_env):
    at = open_with("views/latent.py", model="tiny_cnn", query="test:5")
    assert_clean(at)
    assert at.number_input(key="latent_test_index").value == 5
    assert _param(at, "query") == "test:5"
    assert any("test image 5" in s.value for s in at.subheader)


@pytest.mark.parametrize("page,params", [
    ("views/classify.py", {"model": "no_such_model"}),
    ("views/latent.py", {"model": "tiny_cnn", "query": "test:999999"}),
    ("views/latent.py", {"query": "train:abc"}),
    ("views/evaluate.py", {"model": "tiny_cnn", "true": "Spaceship", "pred": "42"}),
    ("views/evaluate.py", {"model": "tiny_cnn,gone"}),
])
def test_bad_or_stale_parameters_are_ignored_with_a_notice(models_env, page, params):
    at = open_with(page, **params)
    assert_clean(at)
    assert _notices(at), [c.value for c in at.caption]
