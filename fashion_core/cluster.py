"""Ray, for every command that works past one process (``batch``, ``serve``, ``cv`` / ``sweep
--ray``): connecting to a cluster or starting Ray on this machine, and each task's CPU share.

Ray is one of the scale extras (``requirements-scale.txt``); without it these commands say so
in one line. On this machine the workers get this checkout on ``PYTHONPATH``; on a cluster the
nodes need the package installed (docs/SCALE.md).
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

from .errors import FashionError, InvalidParameterError

PACKAGE_ROOT = Path(__file__).resolve().parent.parent
FORWARDED_ENV = ("FASHION_MNIST_DIR", "FASHION_PHOTOS_DIR", "FASHION_CACHE_DIR", "TF_CPP_MIN_LOG_LEVEL")


def ray_module():
    """The ``ray`` package, or one clear error without the scale extras."""
    try:
        import ray
    except ImportError:
        raise FashionError("this needs the scale extras: pip install -r requirements-scale.txt") from None
    return ray


def check_reachable(address, timeout=5.0):
    """Refuse, in one line and within ``timeout`` seconds, a cluster address (``HOST:PORT`` or
    ``ray://HOST:PORT``) nothing listens on: Ray itself would retry for minutes."""
    if not address or address == "auto":
        return
    host, _, port = address.split("://", 1)[-1].rpartition(":")
    if not host or not port.isdigit():
        raise InvalidParameterError(f"--address must look like HOST:PORT or ray://HOST:PORT; got {address!r}.")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as exc:
        raise FashionError(f"could not connect to the Ray cluster at {address}: {exc.strerror or exc}") from None


def init_ray(address=None):
    """Connect to the Ray cluster at ``address``, or start Ray on this machine (its cores);
    nothing happens when this process is already connected. Returns True when it connected now."""
    ray = ray_module()
    check_reachable(address)  # first: an unreachable address is refused even when Ray is already up
    if ray.is_initialized():
        return False
    env = {key: os.environ[key] for key in FORWARDED_ENV if key in os.environ}
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


def cpu_share(count, fraction=1.0):
    """CPUs each of ``count`` actors or tasks asks for: ``fraction`` of the cluster's CPUs split
    evenly, at most one, at least 0.1. Fractions keep a small machine from deadlocking: actors
    asking for whole CPUs on 2 cores starve Ray Data's own tasks (issue 16's note)."""
    cpus = float(ray_module().cluster_resources().get("CPU", 1.0))
    return max(0.1, min(1.0, fraction * cpus / max(1, count)))
