"""The HTTP API (``api.py``) served by Ray Serve: ``replicas`` copies of the model behind Ray's
HTTP proxy, on this machine or on an existing Ray cluster (``address``).

``start`` returns once the replicas answer; ``stop`` tears the application down (and the local
Ray it started). ``python -m fashion_core serve`` is ``start`` and then waiting for Ctrl-C.
Each replica builds the app itself (``serve.ingress`` with a builder), so the model is loaded
once per replica process, never pickled. On a cluster the nodes need this package installed
(docs/SCALE.md); on this machine the workers get the checkout on ``PYTHONPATH``.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import FashionError, InvalidParameterError

APP_NAME = "fashion_studio"
DEPLOYMENT = "api"
PACKAGE_ROOT = Path(__file__).resolve().parent.parent


def _ray():
    try:
        import ray
        from ray import serve
    except ImportError:
        raise FashionError("serving needs the scale extras: pip install -r requirements-scale.txt") from None
    return ray, serve


def check_reachable(address, timeout=5.0):
    """Refuse, in one line and within ``timeout`` seconds, a cluster address (``HOST:PORT`` or
    ``ray://HOST:PORT``) nothing listens on: Ray itself would retry for minutes."""
    import socket

    if not address or address == "auto":
        return
    target = address.split("://", 1)[-1]
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        raise InvalidParameterError(f"--address must look like HOST:PORT or ray://HOST:PORT; got {address!r}.")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as exc:
        raise FashionError(f"could not connect to the Ray cluster at {address}: {exc.strerror or exc}") from None


def init_ray(address=None):
    """Connect to the Ray cluster at ``address``, or start Ray on this machine (its cores);
    nothing happens when this process is already connected. Returns True when it connected now."""
    ray, _serve = _ray()
    check_reachable(address)  # first: an unreachable address is refused even when Ray is already up
    if ray.is_initialized():
        return False
    env = {key: os.environ[key] for key in ("FASHION_MNIST_DIR", "FASHION_PHOTOS_DIR", "FASHION_CACHE_DIR",
                                            "TF_CPP_MIN_LOG_LEVEL") if key in os.environ}
    if not address:  # local workers import this checkout
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PACKAGE_ROOT), os.environ.get("PYTHONPATH")) if p)
    try:
        ray.init(address=address or None, runtime_env={"env_vars": env}, include_dashboard=False,
                 logging_level="ERROR", log_to_driver=False)
    except (ConnectionError, ValueError, RuntimeError, TimeoutError) as exc:
        where = f"the Ray cluster at {address}" if address else "a local Ray"
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise FashionError(f"could not connect to {where}: {reason}") from None
    return True


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
    ray, serve = _ray()
    init_ray(address)
    from .api import create_app

    cpus = float(ray.cluster_resources().get("CPU", 1.0))
    serve.start(http_options={"host": host, "port": port})
    root = str(registry.root)

    def builder():  # evaluated on each replica (Ray Serve calls a no-argument builder)
        return create_app(name, root)

    deployment = serve.deployment(serve.ingress(builder)(), name=DEPLOYMENT, num_replicas=replicas,
                                  ray_actor_options={"num_cpus": min(1.0, cpus / replicas)})
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
    ray, serve = _ray()
    if not ray.is_initialized():
        return
    serve.shutdown()
    if shutdown_ray:
        ray.shutdown()
