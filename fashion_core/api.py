"""The studio's HTTP API: ``create_app`` builds a FastAPI application around one registry model.

    POST /classify   multipart field ``file`` → one element of ``classify --json``
    GET  /models     the registry's models (``ModelEntry.summary``) and the one being served
    GET  /healthz    200 once the model is loaded
    GET  /docs       the OpenAPI page (FastAPI's)

FastAPI is one of the scale extras (``requirements-scale.txt``): import this module only to serve.
The same application runs in a test client, under uvicorn, or replicated by Ray Serve
(``python -m fashion_core serve``, ``serving.py``). It reads the registry and never writes it.

A bad upload (not an image, damaged, a decompression bomb) gets 400 with ``{"detail": message}``:
the message ``classify`` prints for the same file. An upload over ``preprocess.MAX_UPLOAD_BYTES``
gets 413 and is not read past the limit. A request without the ``file`` field gets 422.
"""

from fastapi import FastAPI, File, HTTPException, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from .errors import ImageError
from .preprocess import MAX_UPLOAD_BYTES, check_upload_size

MAX_TOP_K = 10
CHUNK_BYTES = 1 << 20


def _read_limited(stream, name):
    """The bytes of an upload, refused with ``ImageError`` as soon as it passes the size limit."""
    chunks, size = [], 0
    while True:
        chunk = stream.read(CHUNK_BYTES)
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        check_upload_size(size, name)
        chunks.append(chunk)


def create_app(model=None, registry_root=None, classifier=None):
    """A FastAPI app serving registry model ``model`` (default: the default photo model).

    ``classifier`` (an ``inference.Classifier``) is used as it is when given; otherwise the model
    is loaded here, once, so that a Ray Serve replica is ready when its constructor returns.
    Raises ``FashionError`` (e.g. an unknown model) before any request is served.
    """
    from .inference import Classifier
    from .registry import Registry

    registry = Registry(registry_root)
    if classifier is None:
        classifier = Classifier.from_registry(model, registry=registry)
    served = classifier.name or model

    app = FastAPI(
        title="Fashion Studio API",
        description="Classify a photo of a garment with a model of the studio's registry: the same answer as "
                    "`python -m fashion_core classify --json`, including the 'none of these' flag.",
        version="1",
    )

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError):
        fields = sorted({str(e.get("loc", ["", "?"])[-1]) for e in exc.errors()})
        return JSONResponse(status_code=422, content={
            "detail": f"send the image as the multipart form field 'file' (problem with: {', '.join(fields)})."})

    @app.get("/healthz", summary="Ready to answer")
    def healthz():
        return {"status": "ok", "model": served}

    @app.get("/models", summary="The registry's models")
    def models():
        entries, _problems = registry.scan()
        return {"serving": served, "models": [entry.summary() for entry in entries]}

    @app.post("/classify", summary="Classify one image", responses={
        400: {"description": "Not an image, damaged, or refused (the message says which)"},
        413: {"description": f"Over the upload limit of {MAX_UPLOAD_BYTES // (1024 * 1024)} MB"},
        422: {"description": "No multipart field 'file'"}})
    def classify(file: UploadFile = File(..., description="the image (PNG, JPEG, WebP, GIF, BMP, ...)"),
                 top_k: int = Query(3, ge=1, le=MAX_TOP_K, description="how many classes to list")):
        name = file.filename or "upload"
        try:
            data = _read_limited(file.file, name)
        except ImageError as exc:
            raise HTTPException(status_code=413, detail=str(exc)) from None
        try:
            result = classifier.classify(data, top_k=top_k, name=name)
        except ImageError as exc:
            raise HTTPException(status_code=400, detail=str(exc)) from None
        return {"path": name, **result.to_dict()}

    return app
