"""What the server alone spends, without a browser: per-page first runs and simultaneous uploads.

    python -m scripts.server_timing [--models-dir models] [--repeats 3] [--sessions 8] [--json out.json]

Runs the app in-process with Streamlit's ``AppTest`` (each ``AppTest`` is a new session, its
script runs in its own thread as on the server), warms it by opening every page once, then:

- per page: seconds and CPU seconds of the first run of the page in a new session (median of
  ``--repeats``), the bytes of what it sends (element protos; images are sent as separate files),
  and how many charts of each library it draws (a Plotly chart makes the browser load 4.7 MB of
  JavaScript, a Vega-Lite one 0.8 MB);
- uploads: seconds of the Classify rerun that answers one uploaded photo, alone (median of
  ``--repeats``) and for ``--sessions`` sessions at the same moment (the slowest), and their ratio.

Complements ``scripts.studio_timing`` (real browser, end to end): the server's share is
meaningful even on a busy machine, where the browser's numbers are not (docs/PERFORMANCE.md).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import threading
import time
from pathlib import Path

from scripts import screenshots

REPO = screenshots.REPO
APP = str(REPO / "app.py")
PAGES = ["home", "evaluate", "latent", "classify", "models", "train"]
CHARTS = {"plotly_chart": "plotly", "vega_lite_chart": "vega_lite"}


def _open(page):
    """A new session on ``page`` whose first run of that page is still to come (``.run()``)."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(APP, default_timeout=600)
    if page != "home":
        at.run()  # app.py's default page first, as a browser opening the app
        at.switch_page(f"views/{page}.py")
    return at


def _nodes(node):
    yield node
    for child in getattr(node, "children", {}).values():
        yield from _nodes(child)


def _first_run(page):
    at = _open(page)
    start, cpu = time.perf_counter(), time.process_time()
    at.run()
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu
    if at.exception:
        raise RuntimeError(f"{page}: {at.exception[0].value}")
    nodes = list(_nodes(at._tree))
    charts = {name: sum(getattr(n, "type", None) == kind for n in nodes) for kind, name in CHARTS.items()}
    sent = sum(n.proto.ByteSize() for n in nodes if getattr(n, "proto", None) is not None and hasattr(n.proto, "ByteSize"))
    return seconds, cpu_seconds, sent, charts


def _upload(at, png):
    at.get("file_uploader")[0].set_value([("shirt.png", png, "image/png")])
    start = time.perf_counter()
    at.run()
    if at.exception:
        raise RuntimeError(at.exception[0].value)
    return time.perf_counter() - start


def measure(repeats=3, sessions=8):
    png = screenshots.sample_png()
    for page in PAGES:  # warm: models, datasets and artefacts loaded once
        _first_run(page)
    pages = {}
    for page in PAGES:
        runs = [_first_run(page) for _ in range(repeats)]
        pages[page] = {"median_s": statistics.median(r[0] for r in runs),
                       "median_cpu_s": statistics.median(r[1] for r in runs),
                       "sent_bytes": runs[-1][2], "charts": runs[-1][3]}
    _upload(_open("classify").run(), png)
    alone = []
    for _ in range(repeats):
        alone.append(_upload(_open("classify").run(), png))
    opened = [_open("classify").run() for _ in range(sessions)]
    together = [0.0] * sessions

    def one(i):
        together[i] = _upload(opened[i], png)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(sessions)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    one_alone = statistics.median(alone)
    return {"date": time.strftime("%Y-%m-%d %H:%M"), "cpu_count": os.cpu_count(), "load_average": os.getloadavg(),
            "repeats": repeats, "pages": pages,
            "uploads": {"sessions": sessions, "alone_median_s": one_alone, "alone_runs_s": alone,
                        "together_s": sorted(together), "slowest_s": max(together),
                        "ratio": max(together) / one_alone}}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models-dir", default=str(REPO / "models"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sessions", type=int, default=8)
    parser.add_argument("--json", default=str(REPO / "artifacts" / "server_timing.json"))
    args = parser.parse_args()
    os.environ["FASHION_MODELS_DIR"] = str(Path(args.models_dir).resolve())
    result = measure(args.repeats, args.sessions)
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    for page, v in result["pages"].items():
        print(f"{page:9s} {v['median_s']:.2f} s ({v['median_cpu_s']:.2f} s CPU), {v['sent_bytes'] / 1024:.0f} KB sent, "
              f"charts {v['charts']}")
    u = result["uploads"]
    print(f"upload alone {u['alone_median_s']:.2f} s; {u['sessions']} at once: slowest {u['slowest_s']:.2f} s "
          f"= {u['ratio']:.1f}x (load average {result['load_average'][0]:.1f})")


if __name__ == "__main__":
    main()
