"""Your own catalogue: loading folders and CSVs, splits, specs, zip uploads, and training /
evaluating on a generated three-class catalogue through the CLI."""

import io
import json
import shutil
import stat
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from fashion_core.catalogue import catalogue_summary, load_catalogue, stratified_split
from fashion_core.cli import main
from fashion_core.democatalogue import DEMO_CLASSES, make_demo_catalogue
from fashion_core.errors import DataError, InvalidParameterError
from fashion_core.loaders import load_dataset
from fashion_core.safezip import extract_catalogue_zip

N_PER_CLASS = 20
BAD_FILES = {"shirt/corrupt.png", "bag/empty.jpg"}


def _add_bad_files(folder):
    (folder / "shirt" / "corrupt.png").write_bytes(b"this is not a png at all")
    (folder / "bag" / "empty.jpg").write_bytes(b"")
    (folder / ".DS_Store").write_bytes(b"\0\0")  # hidden: ignored, not a class


@pytest.fixture(scope="module")
def catalogue_dir(tmp_path_factory):
    """Three classes (bag, shirt, trousers) of 20 colour images on white, one corrupt and one
    empty file."""
    folder = make_demo_catalogue(tmp_path_factory.mktemp("cat") / "shop", n_per_class=N_PER_CLASS, size=48)
    _add_bad_files(folder)
    return folder


@pytest.fixture()
def own_catalogue(tmp_path):
    """A catalogue a test may modify."""
    folder = make_demo_catalogue(tmp_path / "mine", n_per_class=12, size=40, seed=1)
    _add_bad_files(folder)
    return folder


def run_cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "fashion_core", *args], capture_output=True, text=True,
                          timeout=600, env=env)


# --- loading ---------------------------------------------------------------------------------------


def test_grayscale_load_shapes_classes_and_skipped(catalogue_dir):
    data = load_catalogue(catalogue_dir, image_size=28)
    assert data.name == "shop" and data.class_names == DEMO_CLASSES
    assert data.x_train.shape[1:] == (28, 28, 1) and data.x_train.dtype == np.uint8
    assert data.y_train.dtype == np.int64
    assert len(data.y_train) + len(data.y_test) == 3 * N_PER_CLASS
    assert {path for path, _ in data.skipped} == BAD_FILES
    assert all(reason for _, reason in data.skipped)
    # Product shots sit on white: after the upload preprocessing the background is dark.
    corners = np.concatenate([data.x_train[:, :2, :2].ravel(), data.x_train[:, -2:, -2:].ravel()])
    assert corners.mean() < 40
    assert data.x_train.max() > 100


def test_training_images_use_the_upload_preprocessing(catalogue_dir):
    from fashion_core.preprocess import prepare_image

    data = load_catalogue(catalogue_dir, image_size=28)
    prepared = prepare_image((catalogue_dir / "bag" / "bag_003.jpg").read_bytes(), (28, 28, 1))
    preview = np.asarray(prepared.preview)
    bag = DEMO_CLASSES.index("bag")
    images = np.concatenate([data.x_train[data.y_train == bag], data.x_test[data.y_test == bag]])
    assert any(np.array_equal(preview, image) for image in images)


def test_colour_load_keeps_three_channels(catalogue_dir):
    data = load_catalogue(catalogue_dir, image_size=32, color=True)
    assert data.image_shape == (32, 32, 3) and data.is_color
    channels = data.x_train.astype(int)
    assert np.abs(channels[..., 0] - channels[..., 1]).mean() > 1  # real colour, not gray copies


def test_split_is_stratified_seeded_and_spec_round_trips(catalogue_dir):
    data = load_catalogue(catalogue_dir, image_size=28, test_fraction=0.25, seed=3)
    assert data.class_counts("test").tolist() == [5, 5, 5]
    assert data.class_counts("train").tolist() == [15, 15, 15]  # the two bad files are extra, skipped
    spec = json.loads(json.dumps(data.spec))
    assert spec == {"kind": "folder", "path": str(catalogue_dir.resolve()), "image_size": 28, "color": False,
                    "test_fraction": 0.25, "seed": 3}
    again = load_dataset(spec)
    for field in ("x_train", "y_train", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(again, field), getattr(data, field))
    assert again.class_names == data.class_names
    other_seed = load_catalogue(catalogue_dir, image_size=28, test_fraction=0.25, seed=4)
    assert not np.array_equal(other_seed.y_test, data.y_test) or not np.array_equal(other_seed.x_test, data.x_test)


def test_stratified_split_keeps_every_class_in_both_parts():
    labels = np.array([0] * 2 + [1] * 3 + [2] * 50)
    train_idx, test_idx = stratified_split(labels, 0.2, seed=0)
    assert sorted(np.concatenate([train_idx, test_idx]).tolist()) == list(range(len(labels)))
    assert np.bincount(labels[test_idx]).tolist() == [1, 1, 10]
    assert np.bincount(labels[train_idx]).tolist() == [1, 2, 40]


def test_max_images_takes_a_stratified_sample(catalogue_dir):
    data = load_catalogue(catalogue_dir, image_size=16, max_images=30)
    assert len(data.y_train) + len(data.y_test) <= 30
    assert (data.class_counts("train") > 0).all() and (data.class_counts("test") > 0).all()
    assert data.spec["max_images"] == 30
    np.testing.assert_array_equal(load_dataset(data.spec).x_test, data.x_test)


def test_progress_is_reported(catalogue_dir):
    calls = []
    load_catalogue(catalogue_dir, image_size=16, progress=lambda done, total: calls.append((done, total)))
    total = 3 * N_PER_CLASS + 2
    assert calls[0] == (0, total) and calls[-1] == (total, total)
    assert [done for done, _ in calls] == sorted(done for done, _ in calls)


def test_csv_source(catalogue_dir, tmp_path):
    rows = ["path,label"]
    for class_name in DEMO_CLASSES:
        for file in sorted((catalogue_dir / class_name).glob("*_00*")):
            rows.append(f"{file.relative_to(catalogue_dir.parent)},{class_name.upper()}")
    rows += ["shop/missing.png,BAG", ",SHIRT"]
    csv_path = catalogue_dir.parent / "labels.csv"
    csv_path.write_text("\n".join(rows) + "\n")
    data = load_catalogue(csv_path, image_size=24)
    assert data.name == "labels" and data.class_names == ("BAG", "SHIRT", "TROUSERS")
    assert len(data.y_train) + len(data.y_test) == 30
    reasons = dict(data.skipped)
    assert reasons["shop/missing.png"] == "file not found"
    assert any(path.startswith("labels.csv:") for path in reasons)
    assert load_dataset(data.spec).class_names == data.class_names

    bad_header = tmp_path / "bad.csv"
    bad_header.write_text("file,class\na.png,x\n")
    with pytest.raises(DataError, match="'path' and 'label'"):
        load_catalogue(bad_header)


def test_bad_catalogues_are_clear_errors(tmp_path, own_catalogue):
    with pytest.raises(DataError, match="not found"):
        load_catalogue(tmp_path / "nowhere")
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(DataError, match="expected a folder"):
        load_catalogue(tmp_path / "notes.txt")
    with pytest.raises(DataError, match="no class subfolders"):
        (tmp_path / "flat").mkdir()
        load_catalogue(tmp_path / "flat")
    with pytest.raises(InvalidParameterError, match="image size"):
        load_catalogue(own_catalogue, image_size=4)
    with pytest.raises(InvalidParameterError, match="test fraction"):
        load_catalogue(own_catalogue, test_fraction=1.0)

    one_class = tmp_path / "one"
    shutil.copytree(own_catalogue / "bag", one_class / "bag")
    with pytest.raises(DataError, match="at least 2"):
        load_catalogue(one_class)

    (own_catalogue / "socks").mkdir()
    shutil.copy(own_catalogue / "bag" / "bag_000.png", own_catalogue / "socks" / "only.png")
    with pytest.raises(DataError, match=r"socks \(1\)"):
        load_catalogue(own_catalogue)


def test_summary_counts_and_imbalance(own_catalogue):
    for file in sorted((own_catalogue / "trousers").iterdir())[:8]:
        file.unlink()
    data = load_catalogue(own_catalogue, image_size=16)
    summary = catalogue_summary(data)
    assert list(summary.columns) == ["class", "train", "test", "total", "share"]
    assert summary["class"].tolist() == list(DEMO_CLASSES)
    assert summary["total"].tolist() == [12, 12, 4]
    assert (summary["train"] + summary["test"] == summary["total"]).all()
    assert summary["share"].sum() == pytest.approx(1.0)
    assert summary.attrs["imbalance_ratio"] == pytest.approx(3.0)
    assert summary.attrs["skipped"] == 2


# --- zip uploads ---------------------------------------------------------------------------------


def _zip_folder(folder, prefix):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for file in sorted(folder.rglob("*")):
            archive.write(file, f"{prefix}{file.relative_to(folder)}")
        archive.writestr("__MACOSX/shop/._bag_000.png", b"apple double")
    return buffer.getvalue()


def _zip_with(name, payload=b"x", symlink=False, compress=zipfile.ZIP_STORED):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compress) as archive:
        archive.writestr("shop/bag/a.png", b"fine")
        info = zipfile.ZipInfo(name)
        info.compress_type = compress
        if symlink:
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(info, payload)
    return buffer.getvalue()


def test_zip_with_a_top_level_folder_extracts_to_the_class_folders(own_catalogue, tmp_path):
    root = extract_catalogue_zip(_zip_folder(own_catalogue, "shop/"), tmp_path / "upload")
    assert root == tmp_path / "upload" / "shop"
    assert not (tmp_path / "upload" / "__MACOSX").exists()
    data = load_catalogue(root, image_size=16)
    assert data.class_names == DEMO_CLASSES and len(data.skipped) == 2

    flat = extract_catalogue_zip(_zip_folder(own_catalogue, ""), tmp_path / "flat")
    assert flat == tmp_path / "flat" and (flat / "bag").is_dir()


@pytest.mark.parametrize("member, kwargs, message", [
    ("../evil.txt", {}, r"outside the archive"),
    ("shop/../../evil.txt", {}, r"outside the archive"),
    ("/etc/evil.txt", {}, r"absolute path"),
    ("C:/evil.txt", {}, r"absolute path"),
    ("shop/bag/link.png", {"symlink": True, "payload": b"/etc/passwd"}, r"symbolic link"),
    ("shop/bag/bomb.png", {"payload": b"\0" * (8 * 1024**2), "compress": zipfile.ZIP_DEFLATED}, r"too large or too compressed"),
])
def test_malicious_zips_are_refused(tmp_path, member, kwargs, message):
    destination = tmp_path / "upload"
    with pytest.raises(DataError, match=message):
        extract_catalogue_zip(_zip_with(member, **kwargs), destination)
    assert not (tmp_path / "evil.txt").exists()
    # Nothing half-extracted stays behind, so the same folder can take a corrected upload.
    assert not destination.exists() or not any(destination.iterdir())


def test_zip_bad_input(tmp_path):
    with pytest.raises(DataError, match="not a readable zip"):
        extract_catalogue_zip(b"PK-not-really", tmp_path / "a")
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "file").write_text("x")
    with pytest.raises(DataError, match="must be empty"):
        extract_catalogue_zip(_zip_with("shop/shirt/b.png"), tmp_path / "busy")


def test_demo_catalogue_layout(tmp_path):
    folder = make_demo_catalogue(tmp_path / "demo", n_per_class=4, size=32)
    assert sorted(p.name for p in folder.iterdir()) == list(DEMO_CLASSES)
    assert all(len(list((folder / c).iterdir())) == 4 for c in DEMO_CLASSES)
    with pytest.raises(InvalidParameterError):
        make_demo_catalogue(tmp_path / "tiny", n_per_class=1)


# --- training and evaluating through the CLI ---------------------------------------------------------


def test_cli_train_and_evaluate_on_a_catalogue(registry, own_catalogue, capsys):
    code = main(["train", "--arch", "seed004_cnn", "--data-dir", str(own_catalogue), "--image-size", "28",
                 "--epochs", "1", "--name", "cat_model", "--class-weights", "--json", "--quiet"])
    assert code == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["name"] == "cat_model" and 0.0 <= payload["test_accuracy"] <= 1.0
    meta = registry.get("cat_model").metadata
    assert meta["class_names"] == list(DEMO_CLASSES) and meta["image_shape"] == [28, 28, 1]
    assert meta["dataset"]["kind"] == "folder" and meta["dataset"]["path"] == str(own_catalogue.resolve())
    assert f"--data-dir {own_catalogue.resolve()}" in meta["command"]

    assert main(["evaluate", "cat_model", "--json"]) == 0  # no data flags: the model remembers its dataset
    evaluation = json.loads(capsys.readouterr().out)
    assert np.array(evaluation["confusion_matrix"]).shape == (3, 3)
    assert [row["class"] for row in evaluation["per_class"]] == list(DEMO_CLASSES)
    assert evaluation["n_samples"] == 6  # round(0.2 * 12) = 2 test images per class

    # classify: the model answers with the catalogue's class names, from its metadata.
    photo = own_catalogue / "trousers" / "trousers_002.png"
    assert main(["classify", str(photo), "--model", "cat_model", "--json"]) == 0
    [result] = json.loads(capsys.readouterr().out)
    assert result["class_name"] in DEMO_CLASSES
    assert {row["class"] for row in result["top_k"]} <= set(DEMO_CLASSES)

    # Neighbours in the model's embedding space, over the catalogue's own gallery.
    from fashion_core.latent import embed, encoder_for, gallery
    from fashion_core.neighbours import NeighbourIndex

    data = load_dataset(meta["dataset"])
    images, labels, _ = gallery(data)
    encoder, _ = encoder_for("cat_model", registry)
    index = NeighbourIndex(embed(encoder, images), labels)
    distances, indices = index.query(embed(encoder, images[:2]), k=3, exact=True)
    assert indices.shape == (2, 3) and indices[:, 0].tolist() == [0, 1]  # each image finds itself first
    assert np.allclose(distances[:, 0], 0.0, atol=1e-3)
    assert set(index.labels[indices].ravel()) <= {0, 1, 2}

    # A new class appears in the folder: the model is not evaluated against a different dataset.
    shutil.copytree(own_catalogue / "bag", own_catalogue / "hats")
    assert main(["evaluate", "cat_model"]) == 2
    assert "different classes" in capsys.readouterr().err
    shutil.rmtree(own_catalogue)
    assert main(["evaluate", "cat_model"]) == 2
    assert "not found" in capsys.readouterr().err


def test_cli_trains_fashion_net_on_colour_images(registry, own_catalogue, capsys):
    code = main(["train", "--arch", "fashion_net", "--data-dir", str(own_catalogue), "--image-size", "32",
                 "--color", "--epochs", "1", "--batch-size", "16", "--name", "colour_model", "--json", "--quiet"])
    assert code == 0 and json.loads(capsys.readouterr().out)["name"] == "colour_model"
    meta = registry.get("colour_model").metadata
    assert meta["image_shape"] == [32, 32, 3] and meta["dataset"]["color"] is True
    assert "--color" in meta["command"]
    assert main(["classify", str(own_catalogue / "shirt" / "shirt_001.jpg"), "--model", "colour_model", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["class_name"] in DEMO_CLASSES


def test_cli_bad_catalogue_is_one_line_exit_2(registry, tmp_path):
    result = run_cli("train", "--arch", "seed004_cnn", "--data-dir", str(tmp_path / "nowhere"), "--epochs", "1")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0 and "not found" in result.stderr
