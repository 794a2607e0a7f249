"""The HTTP API (``api.create_app``) and its Ray Serve deployment (``serving``, ``serve``).

The contract is tested in FastAPI's test client (fast, no Ray). Ray Serve answering real HTTP
requests is tested with the other Ray tests in ``test_scale.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

fastapi = pytest.importorskip("fastapi", reason="the scale extras are not installed (requirements-scale.txt)")
pytest.importorskip("httpx", reason="FastAPI's test client needs httpx (requirements-dev.txt)")

from fastapi.testclient import TestClient  # noqa: E402

from fashion_core import cli  # noqa: E402
from fashion_core.api import create_app  # noqa: E402
from fashion_core.dashboard import free_port  # noqa: E402
from fashion_core.errors import ModelNotFoundError  # noqa: E402
from fashion_core.preprocess import MAX_UPLOAD_BYTES  # noqa: E402

PHOTOS = Path(__file__).parent / "fixtures" / "photos" / "images"


def _cli_json(capsys, *args):
    capsys.readouterr()
    code = cli.main(["classify", *args, "--json"])
    return code, json.loads(capsys.readouterr().out)


@pytest.fixture()
def client(photo_models):
    return TestClient(create_app("sure_sneaker", photo_models.root))


def test_classify_answers_what_the_cli_answers(photo_models, client, capsys):
    photo = PHOTOS / "catalogue-01.jpg"
    response = client.post("/classify", files={"file": (photo.name, photo.read_bytes(), "image/jpeg")})
    assert response.status_code == 200
    code, expected = _cli_json(capsys, str(photo), "--model", "sure_sneaker")
    assert code == 0
    assert response.json() == {**expected[0], "path": photo.name}
    assert response.json()["class_name"] == "Sneaker" and len(response.json()["top_k"]) == 3
    assert len(client.post("/classify?top_k=5", files={"file": (photo.name, photo.read_bytes())}).json()["top_k"]) == 5


def test_health_models_and_the_openapi_page(photo_models, client):
    assert client.get("/healthz").json() == {"status": "ok", "model": "sure_sneaker"}
    listed = client.get("/models").json()
    assert listed["serving"] == "sure_sneaker" and {m["name"] for m in listed["models"]} == {"sure_sneaker", "unsure"}
    schema = client.get("/openapi.json").json()
    assert {"/classify", "/models", "/healthz"} <= set(schema["paths"])
    assert client.get("/docs").status_code == 200


def test_bad_uploads_get_the_clis_message_and_a_4xx(photo_models, client, capsys, tmp_path):
    text = tmp_path / "notes.png"
    text.write_text("not a picture at all")
    response = client.post("/classify", files={"file": (text.name, text.read_bytes(), "image/png")})
    assert response.status_code == 400
    code, expected = _cli_json(capsys, str(text), "--model", "sure_sneaker")
    assert code == 2 and response.json()["detail"] == expected[0]["error"].replace(str(text), text.name)

    too_big = client.post("/classify", files={"file": ("huge.jpg", b"\xff" * (MAX_UPLOAD_BYTES + 1), "image/jpeg")})
    assert too_big.status_code == 413 and "upload limit" in too_big.json()["detail"]
    missing = client.post("/classify", data={"other": "x"})
    assert missing.status_code == 422 and "'file'" in missing.json()["detail"]
    assert client.post("/classify?top_k=0", files={"file": ("a.jpg", b"x")}).status_code == 422
    assert client.get("/healthz").status_code == 200  # nothing broke


def test_an_unknown_model_fails_before_serving(photo_models):
    with pytest.raises(ModelNotFoundError):
        create_app("no_such_model", photo_models.root)


def test_serve_refuses_bad_arguments_in_one_line(photo_models, capsys):
    pytest.importorskip("ray", reason="the scale extras are not installed (requirements-scale.txt)")
    port = free_port()  # nothing listens there
    for args, message in ((["--address", f"127.0.0.1:{port}"], "could not connect to the Ray cluster"),
                          (["--address", "nonsense"], "HOST:PORT"),
                          (["--replicas", "0"], "--replicas"),
                          (["--model", "no_such_model"], "no_such_model")):
        assert cli.main(["serve", *args]) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1


