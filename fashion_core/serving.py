"""The HTTP API (``api.py``) served by Ray Serve: ``replicas`` copies of the model behind Ray's
HTTP proxy, on this machine or on an existing Ray cluster (``address``).

``start`` returns once the replicas answer; ``stop`` tears the application down (and the local
Ray it started). ``python -m fashion_core serve`` is ``start`` and then waiting for Ctrl-C.
Each replica builds the app itself (``serve.ingress`` with a builder), so the model is loaded
once per replica process, never pickled. Connecting to Ray is ``cluster.init_ray``'s.
"""

from __future__ import annotations

from .cluster import cpu_share, init_ray, ray_module
from .errors import FashionError, InvalidParameterError

APP_NAME = "fashion_studio"
DEPLOYMENT = "api"


def _serve():
    try:
        from ray import serve
    except ImportError:
        raise FashionError("serving needs the scale extras: pip install -r requirements-scale.txt") from None
    return serve


def start(model=None, port=8000, replicas=1, address=None, host="127.0.0.1", registry_root=None):
    """Serve registry model ``model`` (default: the default photo model) over HTTP with
    ``replicas`` Ray Serve replicas; returns the base URL once they are ready."""
    from .registry import Registry, default_photo_model_name

    if isinstance(replicas, bool) or not isinstance(replicas, int) or not 1 <= replicas <= 64:
        raise InvalidParameterError(f"--replicas must be a whole number from 1 to 64; got {replicas!r}.")
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise InvalidParameterError(f"--port must be between 1 and 65535; got {port!r}.")
    registry = Registry(registry_root)
    name = model or default_photo_model_name(registry)
    if name is None:
        raise FashionError(f"no models in {registry.root}: train or import one first.")
    registry.get(name)  # an unknown model fails here, before anything starts
    serve = _serve()
    init_ray(address)
    from .api import create_app

    serve.start(http_options={"host": host, "port": port})
    root = str(registry.root)

    def builder():  # evaluated on each replica (Ray Serve calls a no-argument builder)
        return create_app(name, root)

    deployment = serve.deployment(serve.ingress(builder)(), name=DEPLOYMENT, num_replicas=replicas,
                                  ray_actor_options={"num_cpus": cpu_share(replicas)})
    serve.run(deployment.bind(), name=APP_NAME, route_prefix="/", blocking=False)
    _wait_until_running(serve)
    return f"http://{host}:{port}"


def _wait_until_running(serve, timeout=300):
    import time

    deadline = time.time() + timeout
    while time.time() < deadline:
        status = serve.status().applications.get(APP_NAME)
        state = str(getattr(status, "status", ""))
        if state.endswith("RUNNING"):
            return
        if state.endswith("DEPLOY_FAILED") or state.endswith("UNHEALTHY"):
            raise FashionError(f"the API could not start: {getattr(status, 'message', '') or state}")
        time.sleep(0.5)
    raise FashionError(f"the API was not ready after {timeout} s")


def stop(shutdown_ray=True):
    """Delete the application and Ray Serve; with ``shutdown_ray`` also disconnect from Ray (a
    local Ray this process started stops)."""
    ray, serve = ray_module(), _serve()
    if not ray.is_initialized():
        return
    serve.shutdown()
    if shutdown_ray:
        ray.shutdown()
