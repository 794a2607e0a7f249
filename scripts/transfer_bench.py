"""Measure ``train --data-dir CAT --from MODEL`` on issue 17's 20-class product catalogue, with the
from-scratch baseline in the same run, and write ``docs/transfer.json`` (README's transfer table is
generated from it by ``python -m scripts.seed_table``).

Each run is the real command in a fresh process (``python -m fashion_core train ... --json``), so its
``wall_seconds`` counts everything the user waits for: TensorFlow's import aside, reading and
preprocessing the photos, both training stages, evaluation, calibration, saving and precomputing.
The backbones are copied into a temporary registry, so the shipped ``models/`` folder is untouched.

Usage::

    python -m scripts.transfer_bench --out docs/transfer.json [--runs photo_net fashion_net scratch] [--epochs N]
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CATALOGUE_DIR = REPO.parent / "shared" / "data" / "catalogues"
GOAL = {"top1": 0.88, "wall_seconds": 300}
# label → (extra train arguments, backbones the temporary registry needs)
RUNS = {
    "photo_lite0": (["--from", "photo_lite0"], ["photo_lite0"]),
    "photo_net": (["--from", "photo_net"], ["photo_net", "fashion_net"]),
    "fashion_net": (["--from", "fashion_net"], ["fashion_net"]),
    # Same architecture, input and epochs as the photo_net run (so about the same wall time), from
    # random weights, with the README's class weights: the baseline the transfer has to beat.
    "scratch": (["--arch", "fashion_net", "--image-size", "48", "--color", "--class-weights"], []),
}


def shown_command(csv, args, name):
    """The command as a person types it from the repository (relative catalogue path)."""
    return " ".join(["python -m fashion_core train --data-dir", os.path.relpath(csv, REPO), *args, "--name", name, "--json"])


def run_one(label, csv, registry_dir, epochs=None):
    from fashion_core.registry import Registry

    args, _ = RUNS[label]
    name = f"myntra20-{label}"
    if epochs or label == "scratch":
        from fashion_core.transfer import SCHEDULE

        args = [*args, "--epochs", str(epochs or SCHEDULE.epochs)]
    argv = [sys.executable, "-m", "fashion_core", "train", "--data-dir", str(csv), *args, "--name", name,
            "--overwrite", "--json", "--quiet"]
    env = {**os.environ, "FASHION_MODELS_DIR": str(registry_dir), "TF_CPP_MIN_LOG_LEVEL": "3"}
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=REPO)
    process_seconds = time.perf_counter() - started
    if done.returncode != 0:
        return {"label": label, "failed": done.stderr.strip().splitlines()[-1:] or ["?"]}
    payload = json.loads(done.stdout)
    registry = Registry(registry_dir)
    entry = registry.get(name)
    evaluation = registry.evaluation(name) or {}
    from fashion_core.bench import catalogue_precision

    search = catalogue_precision(name, registry)
    return {
        "label": label, "name": name, "command": shown_command(csv, args, name),
        "parent": entry.metadata.get("parent"), "lineage": entry.lineage,
        "image_shape": entry.metadata.get("image_shape"), "schedule": entry.metadata.get("schedule"),
        "epochs_run": entry.metadata.get("epochs_run"),
        "test_accuracy": payload["test_accuracy"], "flip_tta_accuracy": payload.get("flip_tta_accuracy"),
        "served_accuracy": evaluation.get("flip_tta_accuracy") or evaluation.get("accuracy"),
        "train_seconds": payload["train_seconds"], "wall_seconds": payload["wall_seconds"],
        "process_seconds": round(process_seconds, 1),
        "precision_at_5": search["precision_at_k"],
        "per_class_f1": {row["class"]: row["f1"] for row in evaluation.get("per_class", [])},
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(REPO / "docs" / "transfer.json"))
    parser.add_argument("--runs", nargs="+", default=list(RUNS), choices=list(RUNS))
    parser.add_argument("--epochs", type=int, help="fine-tuning epochs (default: the transfer schedule's)")
    args = parser.parse_args(argv)
    from fashion_core import photos
    from fashion_core.bench import machine_info
    from fashion_core.registry import Registry, default_models_dir, write_json_atomic
    from scripts.myntra_catalogue import write_catalogue

    csv, rows = write_catalogue(CATALOGUE_DIR)
    shipped = Registry(default_models_dir())
    runs = []
    with tempfile.TemporaryDirectory(prefix="transfer-bench-") as folder:
        registry_dir = Path(folder) / "models"
        registry_dir.mkdir()
        for label in args.runs:
            for backbone in RUNS[label][1]:
                if not (registry_dir / backbone).exists():
                    shutil.copytree(shipped.get(backbone).path, registry_dir / backbone)
            print(f"transfer bench: {label} ...", file=sys.stderr, flush=True)
            runs.append(run_one(label, csv, registry_dir, args.epochs))
            print(f"transfer bench: {json.dumps(runs[-1])[:400]}", file=sys.stderr, flush=True)
    n_test = sum(r["split"] == "test" for r in rows)
    result = {
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": {**machine_info(), "load_average_at_start": os.getloadavg()[0]},
        "catalogue": {"csv": os.path.relpath(csv, REPO), "classes": len(photos.PRODUCT_ARTICLE_TYPES),
                      "train": len(rows) - n_test, "test": n_test, "per_class": photos.PRODUCT_PER_CLASS,
                      "script": "python -m scripts.myntra_catalogue ../shared/data/catalogues"},
        "goal": GOAL,
        "runs": runs,
    }
    write_json_atomic(args.out, result)
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
