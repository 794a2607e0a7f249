"""``python -m fashion_core classify PATH... [--model NAME] [--top-k K] [--explain] [--json]``.

``--explain`` adds ``"saliency"`` to each result: an H×W list of floats in [0, 1] at the model's
input size, aligned with what the model sees (``Classifier.saliency``).

Prints one result per path (class, probability, top-k, keywords, OOD flag and score). A bad
path gets one line on stderr and an ``error`` entry; the good results are still printed and
the exit code is 2 (0 when every path succeeded).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from .errors import CommandError, ImageError
from .preprocess import check_upload_size


def read_upload(path):
    """The bytes of an image file, refused by size *before* reading it whole."""
    path = Path(path)
    try:
        if not path.is_file():
            raise ImageError(f"{path}: no such file." if not path.exists() else f"{path}: not a file.")
        check_upload_size(path.stat().st_size, str(path))
        return path.read_bytes()
    except OSError as exc:
        raise ImageError(f"{path}: could not be read ({exc.strerror or exc}).") from None


def _human_line(path, result):
    if isinstance(result, dict) and "error" in result:
        return f"{path}: error: {result['error']}"
    others = ", ".join(f"{r['class']} {r['probability']:.0%}" for r in result["top_k"][1:])
    line = f"{path}: {result['class_name']} ({result['probability']:.0%})" + (f"; then {others}" if others else "")
    if result["flagged"]:
        line += f"  [flagged: {'; '.join(result['flag_reasons'])}]"
    return line


def cmd_classify(args):
    from .inference import Classifier

    if args.top_k < 1:
        raise CommandError(f"--top-k must be at least 1; got {args.top_k}.")
    explain = args.explain or args.saliency_method is not None
    classifier = Classifier.from_registry(args.model)
    items, read_errors = [], {}
    for i, path in enumerate(args.paths):
        try:
            items.append((path, read_upload(path)))
        except ImageError as exc:
            read_errors[i] = exc
    results = iter(classifier.classify_many(items, top_k=args.top_k))
    payload, bad = [], 0
    for i, path in enumerate(args.paths):
        result = read_errors[i] if i in read_errors else next(results)
        if isinstance(result, Exception):
            bad += 1
            message = str(result)
            print(f"error: {message}", file=sys.stderr)
            payload.append({"path": path, "error": message})
        else:
            row = {"path": path, **result.to_dict()}
            if explain:
                saliency = classifier.saliency(result.prepared.model_input, result.class_index, method=args.saliency_method)
                row["saliency"] = np.round(saliency.astype(float), 4).tolist()
            payload.append(row)
    return payload, "\n".join(_human_line(row["path"], row) for row in payload), bad > 0


def add_arguments(p):
    p.add_argument("paths", nargs="+", metavar="PATH", help="image files (PNG, JPEG, GIF, WebP, ...)")
    p.add_argument("--model", help="registry model name (default: the best Fashion-MNIST model)")
    p.add_argument("--top-k", type=int, default=3, help="how many classes to list per image")
    p.add_argument("--explain", action="store_true",
                   help='add "saliency": an HxW map in [0, 1] at the model\'s input size of the pixels that drove the answer')
    p.add_argument("--saliency-method", choices=["occlusion", "grad_cam", "auto"], default=None,
                   help="with --explain: occlusion (default, the more faithful), grad_cam (fast) or auto")
