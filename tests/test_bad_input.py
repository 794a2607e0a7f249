"""Bad input gives one clear message and breaks nothing else, through the dashboard's code path
(preprocess + Classifier.classify_many) and the CLI (exit 2, one stderr line per bad path, good
results still printed). Model-file, name and training-parameter checks at CLI level too."""

import io
import json
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest
from PIL import Image

from fashion_core.cli import main
from fashion_core.errors import ImageError
from fashion_core.inference import Classifier
from fashion_core.preprocess import MAX_PIXELS, MAX_UPLOAD_BYTES, decode_image, prepare_image

SHAPE = (28, 28, 1)


def encode(image, fmt="PNG", **kwargs):
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def garment(mode="L", size=(60, 80), background=255, ink=30):
    image = Image.new(mode, size, background)
    image.paste(ink, (15, 10, 45, 70))
    return image


def png_with_size(width, height):
    """A tiny valid PNG whose header announces width x height (a decompression bomb's header)."""
    data = bytearray(encode(Image.new("L", (1, 1))))
    ihdr = 8 + 8  # signature, then length + "IHDR"
    data[ihdr: ihdr + 8] = struct.pack(">II", width, height)
    data[ihdr + 13: ihdr + 17] = struct.pack(">I", zlib.crc32(bytes(data[ihdr - 4: ihdr + 13])))
    return bytes(data)


def bad_images():
    """name → bytes that must be refused with an ImageError."""
    jpeg = encode(Image.fromarray(np.random.default_rng(0).integers(0, 256, (200, 200, 3), dtype=np.uint8)), "JPEG")
    return {
        "text.jpg": b"this is not an image, just text with an image extension\n",
        "empty.png": b"",
        "truncated.jpg": jpeg[: len(jpeg) // 2],
        "bomb.png": png_with_size(30000, 30000),
        "big_header.png": png_with_size(8000, 6000),  # 48 MP: over our limit, under Pillow's
        "drawing.png": b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="10" height="10">'
                       b'<rect width="5" height="5"/></svg>',
        "document.png": b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << >>\n%%EOF\n",
        "random.png": np.random.default_rng(1).integers(0, 256, 5000, dtype=np.uint8).tobytes(),
    }


def odd_but_valid_images():
    """name → bytes of unusual images that must be classified (with notes where relevant)."""
    sixteen = Image.fromarray((np.asarray(garment(), np.uint16) * 257).astype(np.uint16))
    palette = Image.new("P", (60, 80), 0)
    palette.putpalette([0, 0, 0, 30, 30, 30] + [255] * 762)
    palette.paste(1, (15, 10, 45, 70))
    frames = [garment().convert("RGB"), Image.new("RGB", (60, 80), "red")]
    return {
        "sixteen_bit.png": encode(sixteen),
        "cmyk.jpg": encode(garment("CMYK", background=(0, 0, 0, 0), ink=(0, 0, 0, 220)), "JPEG"),
        "palette_transparent.png": encode(palette, transparency=0),
        "animated.gif": encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0),
        "one_pixel.png": encode(Image.new("RGB", (1, 1), (120, 50, 50))),
        "all_white.png": encode(Image.new("RGB", (100, 100), "white")),
        "all_black.png": encode(Image.new("L", (100, 100), 0)),
    }


# --- the dashboard's path -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(bad_images()))
def test_bad_image_is_one_clear_image_error(name):
    data = bad_images()[name]
    with pytest.raises(ImageError) as info:
        prepare_image(data, SHAPE, name=name)
    message = str(info.value)
    assert message.startswith(name) and "\n" not in message and len(message) < 300
    expected = {"text.jpg": "not an image Pillow can read", "empty.png": "not an image Pillow can read",
                "truncated.jpg": "truncated", "bomb.png": "refused", "big_header.png": "million pixels",
                "drawing.png": "SVG", "document.png": "PDF", "random.png": "not an image"}[name]
    assert expected in message


def test_bomb_is_refused_before_decoding(monkeypatch):
    def never(*args, **kwargs):
        raise AssertionError("pixels were decoded")

    bombs = [png_with_size(w, h) for w, h in ((30000, 30000), (MAX_PIXELS // 1000 + 1, 1000))]
    monkeypatch.setattr(Image.Image, "load", never)
    monkeypatch.setattr("PIL.ImageFile.ImageFile.load", never)
    for data in bombs:
        with pytest.raises(ImageError, match="refused"):
            decode_image(data, "bomb.png")


def test_upload_over_the_limit_is_refused_by_size():
    with pytest.raises(ImageError, match="upload limit"):
        decode_image(b"\x89PNG" + bytes(MAX_UPLOAD_BYTES), "huge.png")


@pytest.mark.parametrize("name", list(odd_but_valid_images()))
def test_odd_images_are_classified(name):
    prepared = prepare_image(odd_but_valid_images()[name], SHAPE, name=name)
    assert prepared.model_input.shape == SHAPE and prepared.original.mode == "RGB"
    assert np.all(np.isfinite(prepared.model_input))
    if name in ("one_pixel.png", "all_white.png", "all_black.png"):
        assert prepared.blank
    else:
        assert not prepared.blank and prepared.model_input.max() > 0.5, prepared.notes
    note = {"sixteen_bit.png": "16-bit", "cmyk.jpg": "CMYK", "palette_transparent.png": "transparent",
            "animated.gif": "first frame"}.get(name)
    if note:
        assert any(note in n for n in prepared.notes), prepared.notes


def test_dashboard_batch_mixes_errors_and_predictions(trained_registry):
    classifier = Classifier.from_registry("tiny_cnn", trained_registry)
    items = list(bad_images().items()) + list(odd_but_valid_images().items())
    results = classifier.classify_many(items)
    for (name, _), result in zip(items, results):
        if name in bad_images():
            assert isinstance(result, ImageError) and name in str(result)
        else:
            assert result.class_name in classifier.class_names
            if name in ("all_white.png", "all_black.png", "one_pixel.png"):
                assert result.flagged and "blank" in result.flag_reasons[0]


# --- the CLI ---------------------------------------------------------------------------------------


def write_files(folder, files):
    paths = []
    for name, data in files.items():
        path = folder / name
        path.write_bytes(data)
        paths.append(str(path))
    return paths


def test_cli_classify_reports_each_bad_path_and_prints_the_good(models_env, tmp_path, capsys):
    before = {e.name: e.metadata for e in models_env.list()}
    huge = tmp_path / "huge.png"
    with open(huge, "wb") as handle:  # sparse: over the limit without using the disk
        handle.truncate(MAX_UPLOAD_BYTES + 1)
    bad = write_files(tmp_path, bad_images()) + [str(huge), str(tmp_path / "missing.png"), str(tmp_path)]
    good = write_files(tmp_path, odd_but_valid_images())
    code = main(["classify", *good[:3], *bad, *good[3:], "--model", "tiny_cnn", "--json"])
    captured = capsys.readouterr()
    assert code == 2
    rows = json.loads(captured.out)
    assert [r["path"] for r in rows] == good[:3] + bad + good[3:]
    by_path = {r["path"]: r for r in rows}
    for path in bad:
        assert set(by_path[path]) == {"path", "error"}
    for path in good:
        assert {"class_index", "class_name", "probability", "top_k", "flagged", "ood_score", "keywords",
                "flag_reasons"} <= set(by_path[path])
    assert "upload limit" in by_path[str(huge)]["error"]
    stderr_lines = captured.err.strip().splitlines()
    assert len(stderr_lines) == len(bad) and all(line.startswith("error: ") for line in stderr_lines)
    assert "Traceback" not in captured.err
    assert {e.name: e.metadata for e in models_env.list()} == before  # registry untouched


def test_cli_classify_good_only_exit_0_and_human_output(models_env, tmp_path, capsys):
    paths = write_files(tmp_path, {k: v for k, v in odd_but_valid_images().items() if k in ("cmyk.jpg", "all_white.png")})
    assert main(["classify", *paths, "--top-k", "2"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 2 and "flagged: no garment found" in out[1]


def test_cli_classify_in_a_real_process(models_env, tmp_path):
    paths = write_files(tmp_path, {"ok.png": odd_but_valid_images()["cmyk.jpg"], "bad.png": b"%PDF-1.7 nothing"})
    result = subprocess.run([sys.executable, "-m", "fashion_core", "classify", *paths, "--json"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    # TensorFlow's own C++ start-up log lines may precede ours; ours is exactly one line
    ours = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(ours) == 1 and "bad.png" in ours[0]
    rows = json.loads(result.stdout)
    assert "class_name" in rows[0] and "error" in rows[1]


@pytest.mark.parametrize("args", [["--model", "missing_model"], ["--model", "../escape"], ["--model", ""],
                                  ["--top-k", "0"]])
def test_cli_classify_bad_model_or_option_exit_2(models_env, tmp_path, capsys, args):
    path = write_files(tmp_path, {"a.png": odd_but_valid_images()["cmyk.jpg"]})
    assert main(["classify", *path, *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.strip().count("\n") == 0


def test_cli_classify_without_models_exit_2(registry, tmp_path, capsys):
    path = write_files(tmp_path, {"a.png": odd_but_valid_images()["cmyk.jpg"]})
    assert main(["classify", *path]) == 2
    assert "no models" in capsys.readouterr().err


def _save_model(path, input_shape=(28, 28, 1), classes=10, marker=None):
    import keras

    inputs = keras.Input(shape=input_shape)
    x = keras.layers.Flatten()(inputs)
    if marker:  # code that would leave a file behind if it ever ran
        x = keras.layers.Lambda(eval(f"lambda t: (__import__('pathlib').Path({str(marker)!r}).touch(), t)[1]"))(x)
    keras.Model(inputs, keras.layers.Dense(classes, activation="softmax")(x)).save(path)


def test_cli_import_refuses_bad_model_files(registry, tmp_path, capsys):
    marker = tmp_path / "lambda_ran"
    _save_model(tmp_path / "lambda.keras", marker=marker)
    marker.unlink()  # building the model ran it once; loading must not
    (tmp_path / "text.keras").write_text("not a zip")
    _save_model(tmp_path / "shape.keras", input_shape=(32, 32, 1))
    _save_model(tmp_path / "classes.keras", classes=5)
    expected = {"lambda.keras": "refused", "text.keras": "not a Keras model file",
                "shape.keras": "shape", "classes.keras": "classes"}
    for filename, phrase in expected.items():
        assert main(["import", str(tmp_path / filename), "--name", "imported"]) == 2, filename
        err = capsys.readouterr().err
        assert phrase in err and err.strip().count("\n") == 0 and "Traceback" not in err, err
    assert not marker.exists()
    assert registry.list() == [] and not (registry.root / "imported").exists()


@pytest.mark.parametrize("name", ["../escape", "", "a/b", ".hidden"])
def test_cli_import_refuses_bad_names(registry, tmp_path, capsys, name):
    _save_model(tmp_path / "ok.keras")
    assert main(["import", str(tmp_path / "ok.keras"), "--name", name]) == 2
    assert capsys.readouterr().err.startswith("error: ")
    assert registry.list() == []


@pytest.mark.parametrize("args", [["--epochs", "0"], ["--epochs", "-3"], ["--epochs", "1000000"],
                                  ["--batch-size", "0"], ["--batch-size", "-1"], ["--batch-size", "100000000"],
                                  ["--lr", "0"], ["--lr", "-0.1"], ["--lr", "1e6"], ["--lr", "nan"]])
def test_cli_train_refuses_bad_parameters_before_starting(registry, capsys, args):
    assert main(["train", "--arch", "seed004_cnn", *args, "--name", "never"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.strip().count("\n") == 0
    assert not registry.root.exists() or registry.list() == []
