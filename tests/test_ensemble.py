"""Ensembles (fashion_core/ensemble.py): one Keras classifier from several registry models, each
member seeing its own input shape; registered without weights of their own."""

import json

import numpy as np
import pytest
from PIL import Image

from fashion_core import ensemble, zoo
from fashion_core.errors import FashionError, ModelFileError
from fashion_core.preprocess import luminance
from tests.helpers import PHOTO_FIXTURES, constant_classifier, save_photo_model


def _pil_resize(plane, width, height):
    return np.asarray(Image.fromarray(plane.astype(np.float32), mode="F").resize((width, height), Image.LANCZOS))


def test_resample_matrices_are_pillows_lanczos():
    image = np.random.default_rng(0).random((30, 20), dtype=np.float32)
    ours = ensemble.resample_matrix(30, 12).T @ image @ ensemble.resample_matrix(20, 9)
    np.testing.assert_allclose(ours, _pil_resize(image, 9, 12), atol=1e-5)


def test_adapt_input_resizes_and_turns_grey_like_the_upload_path():
    import keras

    x = np.random.default_rng(1).random((2, 32, 32, 3), dtype=np.float32)
    inputs = keras.Input((32, 32, 3))
    model = keras.Model(inputs, ensemble.adapt_input(inputs, (32, 32, 3), (12, 12, 1), "t"))
    got = np.asarray(model(x))
    assert got.shape == (2, 12, 12, 1)
    resized = np.stack([np.stack([_pil_resize(img[..., c], 12, 12) for c in range(3)], -1) for img in x])
    np.testing.assert_allclose(got[..., 0], np.clip(luminance(np.clip(resized, 0, 1)), 0, 1), atol=2e-3)
    assert not model.trainable_weights  # fixed filters


def test_ensemble_is_the_weighted_mean_of_its_members():
    import keras

    lead = constant_classifier(np.linspace(0, 3, 10), image_shape=(32, 32, 3))
    small = zoo.build("seed004_cnn", (28, 28, 1), 10).classifier
    model = ensemble.build([lead, small], [0.75, 0.25])
    x = np.random.default_rng(2).random((3, 32, 32, 3), dtype=np.float32)
    inputs = keras.Input((32, 32, 3))
    adapt = keras.Model(inputs, ensemble.adapt_input(inputs, (32, 32, 3), (28, 28, 1), "a"))
    expected = 0.75 * np.asarray(lead(x)) + 0.25 * np.asarray(small(np.asarray(adapt(x)), training=False))
    np.testing.assert_allclose(np.asarray(model(x, training=False)), expected, atol=1e-6)
    assert model.input_shape[1:] == (32, 32, 3) and model.output_shape[-1] == 10


def test_members_must_agree_on_classes():
    with pytest.raises(ModelFileError, match="classes"):
        ensemble.build([constant_classifier(np.zeros(10)), constant_classifier(np.zeros(3))], [0.5, 0.5])


def _two_photo_models(registry):
    sneaker = np.zeros(10)
    sneaker[7] = 6.0
    save_photo_model(registry, "sure_sneaker", sneaker, test_accuracy=0.9)
    bag = np.zeros(10)
    bag[8] = 6.0
    save_photo_model(registry, "sure_bag", bag, test_accuracy=0.8)


def test_cli_builds_registers_and_serves_an_ensemble(registry, capsys):
    from fashion_core.cli import main
    from fashion_core.inference import Classifier

    _two_photo_models(registry)
    assert main(["ensemble", "sure_sneaker", "sure_bag", "--weights", "3", "1", "--name", "both", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["name"] == "both" and payload["members"] == ["sure_sneaker", "sure_bag"]
    entry = registry.get("both")
    assert not entry.model_file.exists()  # the weights live in the members' files only
    assert entry.is_photo_model and entry.members == ["sure_sneaker", "sure_bag"]
    meta = entry.metadata
    assert meta["ensemble"]["weights"] == [0.75, 0.25]
    assert meta["ensemble"]["flip"] == [False, False]  # as each member is served on its own
    assert not entry.uses_flip_tta
    assert meta["command"] == "python -m fashion_core ensemble sure_sneaker sure_bag --weights 0.75 0.25 --name both"
    assert set(meta["member_commands"]) == {"sure_sneaker", "sure_bag"}
    assert "ood" in meta and 0 <= meta["test_accuracy"] <= 1  # calibrated on the fixtures held out
    assert (entry.path / "evaluation.json").is_file() and (entry.path / "precomputed.npz").is_file()

    photo = next((PHOTO_FIXTURES / "images").rglob("*.jpg")).read_bytes()
    prediction = Classifier.from_registry("both", registry=registry).classify(photo)
    expected = 0.75 * np.exp(6) / (np.exp(6) + 9) + 0.25 / (np.exp(6) + 9)
    raw = Classifier.from_registry("both", registry=registry, calibration=None).forward(
        prediction.prepared.model_input[None])[0]
    assert prediction.class_name == "Sneaker" and raw[7] == pytest.approx(expected, abs=1e-5)


def test_an_ensemble_keeps_its_members_safe(registry, capsys):
    from fashion_core import precompute
    from fashion_core.cli import main

    _two_photo_models(registry)
    assert main(["ensemble", "sure_sneaker", "sure_bag", "--name", "both"]) == 0
    capsys.readouterr()
    before = precompute.stamp(registry.get("both"))
    with pytest.raises(FashionError, match="both"):
        registry.delete("sure_bag")  # the ensemble is built from it
    assert main(["delete", "sure_bag"]) == 2 and "both" in capsys.readouterr().err
    # a member retrained under the same name: the ensemble's stored artefacts are stale
    registry.save("sure_bag", constant_classifier(np.zeros(10)), registry.get("sure_bag").metadata, overwrite=True)
    assert precompute.stamp(registry.get("both")) != before
    # a member gone behind the registry's back: the ensemble is listed as a problem, not a crash
    import shutil

    shutil.rmtree(registry.root / "sure_bag")
    entries, problems = registry.scan()
    assert "both" not in [e.name for e in entries]
    assert any(name == "both" and "sure_bag" in reason for name, reason in problems)


def test_bad_ensembles_are_refused_in_one_line(registry, capsys):
    from fashion_core.cli import main

    _two_photo_models(registry)
    for args in (["ensemble", "sure_sneaker", "--name", "solo"],  # one member is not an ensemble
                 ["ensemble", "sure_sneaker", "nobody", "--name", "x"],
                 ["ensemble", "sure_sneaker", "sure_bag", "--weights", "1", "--name", "x"],
                 ["ensemble", "sure_sneaker", "sure_bag", "--weights", "1", "-1", "--name", "x"],
                 ["ensemble", "sure_sneaker", "sure_bag", "--flip", "nobody", "--name", "x"]):
        assert main(args) == 2, args
        err = capsys.readouterr().err.strip()
        assert err and "Traceback" not in err and len(err.splitlines()) == 1, err
    assert sorted(registry.names()) == ["sure_bag", "sure_sneaker"]


def test_flip_tta_inside_the_graph_per_member():
    lead = zoo.build("seed004_cnn", (28, 28, 1), 10).classifier
    other = zoo.build("seed004_cnn", (28, 28, 1), 10).classifier
    x = np.random.default_rng(3).random((2, 28, 28, 1), dtype=np.float32)
    model = ensemble.build([lead, other], [0.5, 0.5], flips=[True, False])
    mirrored = x[:, :, ::-1, :]
    expected = (0.5 * (np.asarray(lead(x, training=False)) + np.asarray(lead(mirrored, training=False))) / 2
                + 0.5 * np.asarray(other(x, training=False)))
    np.testing.assert_allclose(np.asarray(model(x, training=False)), expected, atol=1e-6)


def test_dashboard_shows_and_serves_an_ensemble(registry):
    from fashion_core.runs import ensemble_and_save
    from tests.helpers import open_app

    _two_photo_models(registry)
    ensemble_and_save(["sure_sneaker", "sure_bag"], "both", weights=[3, 1], registry=registry)
    at = open_app("views/models.py")
    assert not at.exception, [e.value for e in at.exception]
    assert any("**both**: an ensemble averaging sure_sneaker (75%) + sure_bag (25%)" in c.value for c in at.caption)
    at.selectbox(key="download_model").set_value("both")
    at.run()
    assert at.button(key="download_prepare")  # an ensemble's .keras is assembled on request
    at.button(key="download_prepare").click()
    at.run()
    assert not at.exception and not at.error
    assert at.get("download_button")  # the assembled file, ready

    at = open_app("views/classify.py")
    at.selectbox(key="classify_model").set_value("both")
    at.run()
    photo = (PHOTO_FIXTURES / "images" / "phone-09.jpg").read_bytes()
    at.get("file_uploader")[0].set_value([("phone-09.jpg", photo, "image/jpeg")])
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert any(e.label.startswith("phone-09.jpg → Sneaker") for e in at.expander)
