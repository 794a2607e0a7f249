"""What the measuring scripts share: saving a result as JSON and replacing a generated block of
README.md (between ``<!-- NAME:start -->`` and ``<!-- NAME:end -->``)."""

from __future__ import annotations

import json
import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


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
