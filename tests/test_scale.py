"""The scale extras against a real local Ray: ``batch`` (Ray Data into Parquet, resumable), ``serve``
(Ray Serve over HTTP) and ``cv`` / ``sweep --ray`` (Ray tasks).

Ray starts once for this module and stops when its last test ends (``ray_local``): its
background processes would otherwise slow every other test of the session. The tests carry
``xdist_group("ray")`` so one pytest worker runs them all, one after the other."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

pytest.importorskip("pyarrow", reason="the scale extras are not installed (requirements-scale.txt)")
import pyarrow.parquet as pq  # noqa: E402

from fashion_core import batch, cli  # noqa: E402
from fashion_core.dashboard import free_port  # noqa: E402
from fashion_core.errors import FashionError  # noqa: E402

PHOTOS = Path(__file__).parent / "fixtures" / "photos" / "images"


@pytest.fixture(scope="module")
def ray_local():
    """One local Ray for this module's tests."""
    ray = pytest.importorskip("ray", reason="the scale extras are not installed (requirements-scale.txt)")
    from fashion_core.cluster import init_ray

    init_ray()
    yield ray
    ray.shutdown()


@pytest.fixture()
def catalogue(tmp_path):
    """The fixture photos in a folder tree, plus a text file named .jpg and a truncated JPEG."""
    root = tmp_path / "shop"
    (root / "shoes").mkdir(parents=True)
    photos = sorted(PHOTOS.glob("*.jpg"))
    for i, photo in enumerate(photos):
        shutil.copy(photo, root / ("shoes" if i % 2 else "") / photo.name)
    (root / "broken.jpg").write_text("not a picture")
    (root / "shoes" / "cut.jpg").write_bytes(photos[0].read_bytes()[:2500])
    (root / "notes.txt").write_text("not an image file name: ignored")
    return root, len(photos)


def _predictions(out):
    return pq.read_table(out / "predictions").to_pandas()


def _run(capsys, *args):
    capsys.readouterr()
    code = cli.main(["batch", *args, "--json"])
    captured = capsys.readouterr()
    return code, (json.loads(captured.out) if captured.out.strip() else None), captured.err


@pytest.mark.slow
@pytest.mark.xdist_group("ray")
def test_batch_answers_like_classify_keeps_errors_and_resumes(photo_models, ray_local, catalogue, tmp_path, capsys,
                                                              monkeypatch):
    root, n_photos = catalogue
    out = tmp_path / "out"
    monkeypatch.setattr(batch, "PART_ROWS", 4)  # several part files, so a lost one can be simulated
    code, summary, err = _run(capsys, str(root), "--model", "sure_sneaker", "--out", str(out), "--workers", "1",
                              "--batch-size", "5")
    assert code == 0 and summary["rows"] == n_photos and summary["errors"] == 2 and summary["skipped"] == 0
    assert summary["images_per_second"] > 0 and "batch: " in err  # progress on stderr
    rows = _predictions(out)
    assert sorted(rows["path"]) == sorted(str(p) for p in root.rglob("*.jpg") if p.name not in ("broken.jpg", "cut.jpg"))
    errors = pq.read_table(out / "errors.parquet").to_pandas()
    assert sorted(Path(p).name for p in errors["path"]) == ["broken.jpg", "cut.jpg"]
    assert all("not an image" in r or "damaged" in r for r in errors["reason"])

    some = sorted(rows["path"])[:3]
    capsys.readouterr()
    cli.main(["classify", *some, "--model", "sure_sneaker", "--json"])
    expected = {r["path"]: r for r in json.loads(capsys.readouterr().out)}
    for _, row in rows[rows["path"].isin(some)].iterrows():
        assert row["class_name"] == expected[row["path"]]["class_name"]
        assert row["probability"] == pytest.approx(expected[row["path"]]["probability"], abs=1e-6)
        assert bool(row["flagged"]) == expected[row["path"]]["flagged"]

    # A job killed before its last part file and its errors were written: the rerun does only those.
    parts = sorted((out / "predictions").glob("part-*.parquet"))
    assert len(parts) >= 2
    lost = len(pq.read_table(parts[-1]))
    parts[-1].unlink()
    (out / "errors.parquet").unlink()
    code, summary, _err = _run(capsys, str(root), "--model", "sure_sneaker", "--out", str(out), "--workers", "1")
    assert code == 0 and summary["rows"] == lost and summary["errors"] == 2 and summary["skipped"] == n_photos - lost
    rows = _predictions(out)
    assert len(rows) == n_photos and rows["path"].is_unique  # no duplicates
    code, summary, _err = _run(capsys, str(root), "--model", "sure_sneaker", "--out", str(out))
    assert code == 0 and summary == {**summary, "rows": 0, "errors": 0, "skipped": n_photos + 2}


@pytest.mark.slow
@pytest.mark.xdist_group("ray")
def test_batch_embed_saves_a_neighbour_index_of_the_catalogue(ray_local, models_env, catalogue, tmp_path, capsys):
    import numpy as np

    from fashion_core.neighbours import NeighbourIndex

    root, n_photos = catalogue
    out = tmp_path / "out"
    code, summary, _err = _run(capsys, str(root), "--model", "tiny_cnn", "--out", str(out), "--embed", "--workers", "1")
    assert code == 0 and summary["rows"] == n_photos
    rows = _predictions(out)
    vectors = np.stack(rows["embedding"].to_numpy())
    assert vectors.shape[0] == n_photos and vectors.shape[1] > 1
    index, extra = NeighbourIndex.load(out / batch.INDEX)
    assert len(index) == n_photos and sorted(extra["paths"]) == sorted(rows["path"])
    first = list(extra["paths"]).index(rows["path"][0])
    _d, found = index.query(vectors[0], k=1)
    assert found[0][0] == first  # a photo's own embedding finds itself
    # Recorded in the registry for the dashboard, with the model that made it; a photo embedded as
    # the Latent space page embeds an upload finds itself in the saved catalogue index.
    from fashion_core import latent
    from fashion_core.inference import Classifier
    from fashion_core.registry import Registry

    registry = Registry()
    [record] = [r for r in batch.saved_indexes(registry, model="tiny_cnn") if r["path"] == str((out / batch.INDEX).resolve())]
    assert record["rows"] == n_photos and record["source"] == str(root)
    assert batch.saved_indexes(registry, model="sure_sneaker") == []
    saved = batch.CatalogueIndex(record["path"])
    assert saved.model == "tiny_cnn" and len(saved) == n_photos and saved.source == str(root)
    prepared = Classifier.from_registry("tiny_cnn", registry=registry).preprocess(batch.read_bytes(rows["path"][0]))
    query = latent.embed(latent.encoder_for("tiny_cnn", registry)[0], prepared.model_input[None])
    [(row, path, class_name, distance)] = saved.search(query, k=1)
    assert (row, path, class_name) == (first, rows["path"][0], rows["class_name"][0]) and distance < 1e-3
    assert saved.search(query, k=1, exclude=first)[0][0] != first


def test_batch_lists_folders_csvs_and_globs(catalogue, tmp_path):
    root, n_photos = catalogue
    assert len(batch.list_source(root)) == n_photos + 2  # images by name; notes.txt is not one
    assert len(batch.list_source(f"{root}/shoes/*.jpg")) == len(list((root / "shoes").glob("*.jpg")))
    csv = tmp_path / "list.csv"
    csv.write_text("path,label\nshop/broken.jpg,x\n" + "".join(f"shop/{p.name},y\n" for p in root.glob("*.jpg")
                                                                   if p.name != "broken.jpg"))
    assert set(batch.list_source(csv)) == {str(p) for p in root.glob("*.jpg")}


def test_batch_bad_input_is_one_line_exit_2(photo_models, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    for args, message in (([str(empty), "--model", "sure_sneaker"], "no image files"),
                          ([str(tmp_path / "missing"), "--model", "sure_sneaker"], "no such file"),
                          ([str(PHOTOS), "--model", "no_such_model"], "no_such_model"),
                          ([str(PHOTOS), "--model", "sure_sneaker", "--batch-size", "0"], "--batch-size")):
        code, _summary, err = _run(capsys, *args, "--out", str(tmp_path / "out"))
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1


@pytest.mark.slow
@pytest.mark.xdist_group("ray")
def test_cv_and_sweep_run_their_folds_and_runs_as_ray_tasks(ray_local, registry, capsys):
    code = cli.main(["cv", "--arch", "seed003_cnn", "--folds", "2", "--epochs", "1", "--limit", "300", "--ray", "--json"])
    captured = capsys.readouterr()
    assert code == 0
    result = json.loads(captured.out)
    assert result["ray"] == "local" and [f["fold"] for f in result["folds"]] == [1, 2]  # in fold order
    assert all(0 <= f["test_accuracy"] <= 1 and f["epochs_run"] == 1 for f in result["folds"])
    assert sorted(line for line in captured.err.splitlines() if "finished" in line) == \
        ["fold 1 of 2 finished", "fold 2 of 2 finished"]  # reported as each Ray task ended

    code = cli.main(["sweep", "--arch", "seed003_cnn", "--optimizers", "adam", "sgd", "--lrs", "1e-3",
                     "--epochs", "1", "--limit", "300", "--ray", "--json", "--quiet"])
    result = json.loads(capsys.readouterr().out)
    assert code == 0 and result["ray"] == "local"
    assert [(r["optimizer"], r["learning_rate"]) for r in result["runs"]] == [("adam", 1e-3), ("sgd", 1e-3)]
    assert result["best"] in result["runs"]


@pytest.mark.slow
@pytest.mark.xdist_group("ray")
def test_ray_serve_answers_real_http_requests(photo_models, ray_local, capsys):
    import requests

    from fashion_core import serving

    with pytest.raises(FashionError, match="no_such_model|not found|unknown"):
        serving.start("no_such_model", registry_root=photo_models.root)
    port = free_port()
    url = serving.start("sure_sneaker", port=port, replicas=1, registry_root=photo_models.root)
    try:
        assert url == f"http://127.0.0.1:{port}"
        assert requests.get(f"{url}/healthz", timeout=30).json()["model"] == "sure_sneaker"
        photo = PHOTOS / "phone-06.jpg"
        answer = requests.post(f"{url}/classify", files={"file": (photo.name, photo.read_bytes())}, timeout=60)
        assert answer.status_code == 200
        capsys.readouterr()
        assert cli.main(["classify", str(photo), "--model", "sure_sneaker", "--json"]) == 0
        expected = json.loads(capsys.readouterr().out)
        assert answer.json() == {**expected[0], "path": photo.name}
        bad = requests.post(f"{url}/classify", files={"file": ("x.txt", b"hello")}, timeout=60)
        assert bad.status_code == 400 and "not an image" in bad.json()["detail"]
    finally:
        serving.stop(shutdown_ray=False)  # the module's Ray stays for the other Ray tests
