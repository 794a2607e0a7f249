"""What the measuring scripts share: a peak-memory sampler, saving a result as JSON and replacing a
generated block of README.md (between ``<!-- NAME:start -->`` and ``<!-- NAME:end -->``)."""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


class PeakMemory:
    """In a ``with`` block, calls ``read_mb()`` every ``interval`` seconds in a thread and keeps
    the largest value in ``peak_mb`` (NaN readings, e.g. a process not up yet, are skipped)."""

    def __init__(self, read_mb, interval=0.2):
        self.read_mb, self.interval, self.peak_mb = read_mb, interval, 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            value = self.read_mb()
            if value == value:  # not NaN
                self.peak_mb = max(self.peak_mb, value)
            self._stop.wait(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def markers(name):
    """The start and end comments of README block ``name``."""
    return f"<!-- {name}:start -->", f"<!-- {name}:end -->"


def write_block(name, block, path=REPO / "README.md"):
    """Put ``block`` (which includes its markers) in place of README block ``name``; appended at the
    end when the README has none yet."""
    start, end = markers(name)
    text = path.read_text()
    if start in text:
        text = re.sub(re.escape(start) + ".*?" + re.escape(end), lambda _m: block, text, flags=re.S)
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.write_text(text)


def save(result, json_path, name, block, readme=False):
    """Write ``result`` to ``json_path``, with ``readme`` also README block ``name``; print the block."""
    out = Path(json_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    if readme:
        write_block(name, block)
    print(block)
