"""Real photos through the dashboard (AppTest): the photo model is the default on Classify, a
garment photo gets its class, and photos of none of the ten classes get a plain "none of these".
The models are constant classifiers (tests/helpers.py), so nothing depends on training luck."""

from __future__ import annotations

from tests.helpers import PHOTO_FIXTURES, open_app


def classify_page():
    return open_app("views/classify.py")


def upload(at, *names):
    files = [(name, (PHOTO_FIXTURES / "images" / name).read_bytes(), "image/jpeg") for name in names]
    at.get("file_uploader")[0].set_value(files)
    at.run()
    assert not at.exception, [e.value for e in at.exception]


def test_classify_defaults_to_the_photo_model(photo_models):
    at = classify_page()
    assert at.selectbox(key="classify_model").value == "sure_sneaker"
    upload(at, "phone-09.jpg")
    assert any(e.label.startswith("phone-09.jpg → Sneaker") for e in at.expander)
    assert not at.warning


def test_photos_of_other_things_are_answered_none_of_these(photo_models):
    at = classify_page()
    at.selectbox(key="classify_model").set_value("unsure")
    at.run()
    upload(at, "catalogue-05.jpg", "phone-10.jpg")
    labels = [e.label for e in at.expander]
    assert any(label.startswith("catalogue-05.jpg → none of the 10 classes") for label in labels), labels
    assert any("does not look like any of the 10 classes" in w.value for w in at.warning)
    assert any(m.value == "### None of these" for m in at.markdown)
    table = at.dataframe[0].value
    assert set(table["prediction"]) == {"none of these"} and table["unsure"].all()
    assert at.get("progress")  # the scores are still shown


def test_a_phone_size_photo_is_answered_and_shown_at_screen_size(photo_models):
    """A 12-megapixel phone JPEG: decoded small (preprocess.DECODE_MAX_SIDE) and shown as a
    JPEG no larger than the page needs (widgets.photo_for_display), not re-encoded at full size."""
    import io

    from PIL import Image

    from scripts.screenshots import sample_phone_photo
    from ui.widgets import PHOTO_DISPLAY_SIDE, photo_for_display

    data = sample_phone_photo()
    at = classify_page()
    at.get("file_uploader")[0].set_value([("bed.jpg", data, "image/jpeg")])
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert any(e.label.startswith("bed.jpg → Sneaker") for e in at.expander)
    shown = Image.open(io.BytesIO(photo_for_display(Image.open(io.BytesIO(data)))))
    assert shown.format == "JPEG" and PHOTO_DISPLAY_SIDE // 2 <= max(shown.size) <= PHOTO_DISPLAY_SIDE
    assert abs(shown.size[0] / shown.size[1] - 4032 / 3024) < 0.02
    small = Image.new("RGB", (160, 120), "white")
    assert Image.open(io.BytesIO(photo_for_display(small))).size == (160, 120)  # never enlarged
