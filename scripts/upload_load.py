"""Is the dashboard's server fair under load? N sessions upload a photo on Classify at the same
moment, driven at the protocol level (no browser), against one session alone.

    python -m scripts.upload_load [--photo small|phone|PATH] [--processes 1] [--sessions 8] [--rounds 10] [--repeats 15] [--json out.json]

Why not browsers: eight headless chromium pages on the server's own 2 cores need ~0.2 CPU-seconds
each just to upload a file and apply a rerun's messages, ~0.35 s with the answer drawn, so with
them the measurement sets its own floor (6.5x one alone even when the answer is a single line of
text; docs/PERFORMANCE.md). A real visitor's browser runs on their own machine; what the studio
controls is the server. So each session here is what a browser does on the wire, and nothing
more: a websocket to ``/_stcore/stream``, the page's first run, an upload (``file_urls_request``,
then an HTTP PUT of the file), the rerun with the uploader's new state, and the time until the
answer's message ("What the model sees") arrives and the run finishes. ``scripts.studio_timing``
still measures the same thing end to end in real browsers.

The photo: ``small`` (default; a 160-pixel PNG product shot, ``screenshots.sample_png``), ``phone``
(a 12-megapixel JPEG as a phone camera writes it, ~1.7 MB: ``screenshots.sample_phone_photo``) or
a file. Each round opens ``--sessions`` fresh sessions on Classify, then starts every upload at once;
the round's figure is its slowest answer. The uploads alone are made between the rounds. Reported:
one session alone (median of ``--repeats``), the median over ``--rounds`` of the slowest of N,
their ratio (target <= 4x), and the server's CPU seconds per answer. Run it on a quiet machine:
the server (``streamlit run app.py`` with the shipped config) is started on a free port and
stopped at the end. ``--processes N`` measures
the dashboard as ``python -m fashion_core dashboard --processes N`` runs it: N processes behind
HAProxy (each session keeps its own cookies, as a browser does, so it stays on one process), the
CPU figure summing them all and HAProxy.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import time
from pathlib import Path

import aiohttp

from fashion_core import dashboard
from scripts import screenshots

ANSWER = b"What the model sees"
ROUNDS, REPEATS = 10, 15  # one upload alone varies by ~20% between runs: a median of 15 settles it
XSRF_COOKIE = "_streamlit_xsrf"
PAGE = "classify"


def _forward(data):
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

    msg = ForwardMsg()
    msg.ParseFromString(data)
    return msg


def _back(**fields):
    from streamlit.proto.BackMsg_pb2 import BackMsg

    return BackMsg(**fields).SerializeToString()


def _rerun(widget_states=None, fragment_id=""):
    from streamlit.proto.BackMsg_pb2 import BackMsg
    from streamlit.proto.ClientState_pb2 import ClientState

    state = ClientState(query_string="", page_name=PAGE, fragment_id=fragment_id)
    if widget_states is not None:
        state.widget_states.CopyFrom(widget_states)
    return BackMsg(rerun_script=state).SerializeToString()


class Session:
    """One visitor's websocket session on Classify."""

    def __init__(self, url, cookies=None):
        self.url = url
        # this visitor's own cookies, as a browser keeps them: the XSRF token, and a load
        # balancer's sticky-session cookie when there is one (given, or set by the first request)
        self.cookies = dict(cookies or {})
        self.xsrf = None
        self.id = None
        self.uploader = None
        self.fragment = ""  # the uploader's fragment, if any: a browser then reruns only that

    def _headers(self):
        return {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())} if self.cookies else {}

    async def open(self, client):
        import websockets

        if not self.cookies:
            async with client.get(self.url + "/_stcore/health") as response:  # as the page's first request
                await response.read()
                self.cookies = {key: morsel.value for key, morsel in response.cookies.items()}
        self.xsrf = self.cookies.get(XSRF_COOKIE)
        # As the browser does: the XSRF cookie's value is also the websocket's second subprotocol
        # entry and the upload's X-Xsrftoken header.
        self.ws = await websockets.connect(self.url.replace("http", "ws") + "/_stcore/stream",
                                           subprotocols=["streamlit", *([self.xsrf] if self.xsrf else [])],
                                           additional_headers=self._headers(), max_size=None)
        await self.ws.send(_rerun())
        await self._until_finished()
        if self.uploader is None:
            raise RuntimeError("the Classify page sent no file uploader")
        return self

    async def _until_finished(self, answer=None):
        """Read messages until the script run finishes; returns when ``answer`` first arrived."""
        seen = None
        while True:
            data = await self.ws.recv()
            msg = _forward(data)
            kind = msg.WhichOneof("type")
            if kind == "new_session":
                self.id = msg.new_session.initialize.session_id or self.id
            elif kind == "delta" and msg.delta.WhichOneof("type") == "new_element":
                element = msg.delta.new_element
                if element.WhichOneof("type") == "file_uploader":
                    self.uploader, self.fragment = element.file_uploader.id, msg.delta.fragment_id
            if answer is not None and seen is None and answer in data:
                seen = time.perf_counter()
            if kind == "script_finished":
                return seen

    async def upload(self, client, name, png, mime="image/png"):
        """Upload the image file ``png`` and wait for the answer: ``(seconds until the answer
        arrived, seconds until the run finished)``."""
        from streamlit.proto.BackMsg_pb2 import BackMsg
        from streamlit.proto.Common_pb2 import FileURLsRequest, UploadedFileInfo
        from streamlit.proto.WidgetStates_pb2 import WidgetStates

        start = time.perf_counter()
        await self.ws.send(BackMsg(file_urls_request=FileURLsRequest(
            request_id="load", file_names=[name], session_id=self.id)).SerializeToString())
        while True:
            msg = _forward(await self.ws.recv())
            if msg.WhichOneof("type") == "file_urls_response":
                urls = msg.file_urls_response.file_urls[0]
                break
        form = aiohttp.FormData()
        form.add_field("file", png, filename=name, content_type=mime)
        async with client.put(self.url + urls.upload_url, data=form,
                              headers={**self._headers(), **({"X-Xsrftoken": self.xsrf} if self.xsrf else {})}) as response:
            response.raise_for_status()
            await response.read()
        states = WidgetStates()
        widget = states.widgets.add()
        widget.id = self.uploader
        widget.file_uploader_state_value.uploaded_file_info.append(
            UploadedFileInfo(name=name, size=len(png), file_id=urls.file_id, file_urls=urls))
        await self.ws.send(_rerun(states, self.fragment))
        seen = await self._until_finished(ANSWER)
        if seen is None:
            raise RuntimeError("the run finished without an answer")
        return seen - start, time.perf_counter() - start

    async def close(self):
        await self.ws.close()


def photo_file(photo="small"):
    """``(file name, bytes, MIME type)`` of the photo the sessions upload (see the module doc)."""
    if photo == "small":
        return "shirt.png", screenshots.sample_png(), "image/png"
    if photo == "phone":
        return "shirt.jpg", screenshots.sample_phone_photo(), "image/jpeg"
    path = Path(photo)
    return path.name, path.read_bytes(), {".png": "image/png", ".webp": "image/webp"}.get(path.suffix.lower(), "image/jpeg")


async def _measure(url, sessions, rounds, repeats, cpu_seconds, photo="small", warmups=1):
    name, png, mime = photo_file(photo)
    stem, _, suffix = name.rpartition(".")

    async def upload(session, client, label):
        return await session.upload(client, f"{stem}-{label}.{suffix}", png, mime)

    # aiohttp: its HTTP is C code, as a browser's is native; the client shares the server's cores
    # here, so the lighter the better (with httpx: ~6.5 CPU-ms per upload, ~4.5 with aiohttp; §1d)
    # each session keeps its own cookies (Session.cookies), so the shared client keeps none
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar(),
                                     timeout=aiohttp.ClientTimeout(total=300)) as client:
        # models and artefacts loaded once in every server process: sessions held open at once
        # are spread over the processes (HAProxy sends a new visitor to the least busy one)
        warm = [await Session(url).open(client) for _ in range(warmups)]
        for i, session in enumerate(warm):
            await upload(session, client, f"warm{i}")
        for session in warm:
            await session.close()
        # the uploads alone are spread between the rounds, so both figures of the ratio see the
        # machine in the same state (a shared 2-core machine drifts by ~20% over minutes)
        alone = []
        slowest, runs, cpu, client_cpu = [], [], [], []
        for r in range(rounds):
            for _ in range(repeats // rounds + (1 if r < repeats % rounds else 0)):
                session = await Session(url).open(client)
                alone.append((await upload(session, client, "alone"))[0])
                await session.close()
            opened = [await Session(url).open(client) for _ in range(sessions)]
            before, client_before = cpu_seconds(), time.process_time()
            answers = await asyncio.gather(*(upload(s, client, i) for i, s in enumerate(opened)))
            cpu.append((cpu_seconds() - before) / sessions)
            client_cpu.append((time.process_time() - client_before) / sessions)
            times = sorted(a for a, _ in answers)
            runs.append(times)
            slowest.append(times[-1])
            for s in opened:
                await s.close()
    one, worst = statistics.median(alone), statistics.median(slowest)
    return {"photo": photo, "photo_bytes": len(png), "sessions": sessions, "rounds": rounds,
            "alone_median_s": one, "alone_runs_s": alone,
            "slowest_median_s": worst, "slowest_runs_s": slowest, "rounds_s": runs,
            "server_cpu_s_per_answer": statistics.median(cpu),
            # this measuring client runs on the server's cores too (a browser would not)
            "client_cpu_s_per_answer": statistics.median(client_cpu), "ratio": worst / one}


def _server_cpu(pids):
    """A function returning the CPU seconds (user + system) the server processes ``pids`` used so far."""
    import psutil

    processes = [psutil.Process(pid) for pid in pids]
    return lambda: sum(sum(process.cpu_times()[:2]) for process in processes)


def measure_url(url, pids, sessions=8, rounds=ROUNDS, repeats=REPEATS, photo="small"):
    """The load measurement against a running dashboard at ``url`` whose server processes are
    ``pids`` (``Dashboard.pids``: the CPU figure sums them)."""
    return asyncio.run(_measure(url, sessions, rounds, repeats, _server_cpu(pids), photo, warmups=2 * len(pids)))


def measure(models_dir, sessions=8, rounds=ROUNDS, repeats=REPEATS, photo="small", processes=1):
    env = {"FASHION_MODELS_DIR": str(models_dir)}
    with dashboard.running(processes, env=env) as running:
        uploads = measure_url(running.url, running.pids, sessions, rounds, repeats, photo)
    return {"date": time.strftime("%Y-%m-%d"), "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform()},
            "models_dir": str(models_dir), "processes": processes, **uploads, "target_ratio": 4.0}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models-dir", default=str(screenshots.REPO / "models"))
    parser.add_argument("--photo", default="small", help="small (160-px PNG), phone (12-megapixel JPEG) or a file")
    parser.add_argument("--sessions", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--repeats", type=int, default=REPEATS)
    parser.add_argument("--processes", type=int, default=1,
                        help="dashboard processes behind HAProxy, as `python -m fashion_core dashboard --processes N`")
    parser.add_argument("--json", default=str(screenshots.REPO / "artifacts" / "upload_load.json"))
    args = parser.parse_args()
    result = measure(args.models_dir, args.sessions, args.rounds, args.repeats, args.photo, args.processes)
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"{args.photo} photo ({result['photo_bytes'] / 1e6:.2f} MB), {args.processes} server process(es): one session alone: {result['alone_median_s']:.3f} s (median of {args.repeats}); slowest of "
          f"{args.sessions} at once: {result['slowest_median_s']:.3f} s (median of {args.rounds} rounds); ratio "
          f"{result['ratio']:.1f}x (target <= 4x); server CPU per answer {result['server_cpu_s_per_answer']:.3f} s, this client's {result['client_cpu_s_per_answer']:.3f} s")


if __name__ == "__main__":
    main()
