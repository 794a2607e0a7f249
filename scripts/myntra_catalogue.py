"""Write issue 17's 20-class product catalogue as a CSV (never copies an image).

The rows come from ``fashion_core.photos.product_catalogue_rows``: the real photos' Myntra product
shots of 20 article types, at most 300 a type, test = the real photos' val split (never seen by
``photo_net``), train = their train split, with a ``split`` and a ``keywords`` column.

Usage::

    python -m scripts.myntra_catalogue ../shared/data/catalogues   # → ../shared/data/catalogues/myntra20.csv
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
from pathlib import Path

COLUMNS = ("path", "label", "split", "keywords")


def write_catalogue(out_dir, name="myntra20", per_class=None, seed=0):
    from fashion_core.photos import PRODUCT_PER_CLASS, product_catalogue_rows

    rows = product_catalogue_rows(per_class=per_class or PRODUCT_PER_CLASS, seed=seed)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.csv"
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)
    return path, rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", help="folder for the CSV (outside the repository, e.g. ../shared/data/catalogues)")
    parser.add_argument("--name", default="myntra20")
    parser.add_argument("--per-class", type=int)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    from fashion_core.errors import FashionError

    try:
        path, rows = write_catalogue(args.out_dir, args.name, args.per_class, args.seed)
    except FashionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    n_test = sum(r["split"] == "test" for r in rows)
    print(f"{path}: {len(rows)} photos ({len(rows) - n_test} train, {n_test} test), "
          f"{len({r['label'] for r in rows})} classes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
