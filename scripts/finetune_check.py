"""Does teaching by correcting work? Fine-tune ``fashion_net`` on 80% of the real phone photos of
the val split and measure the other 20% and the official test set, before and after.

The in-class phone photos of ``../shared/data/real-photos`` (``$FASHION_PHOTOS_DIR``) val split
become a ``path,label,group`` CSV (labels as Fashion-MNIST class names, group = the sender), exactly
what a person's corrections catalogue is, and go through ``finetune.finetune_and_save`` — the code
behind ``python -m fashion_core finetune`` and "Improve <model> with my corrections". The held-out
20% is whole senders when that still holds out at least 15% of the photos, else a random stratified
split. The model is trained into a temporary copy of the registry (never into ``models/``).

Usage::

    python -m scripts.finetune_check [--epochs N --lr LR --replay N --share S] [--out docs/finetune_check.json]

Each run is appended to the JSON's ``runs``; the README paragraph between the ``finetune-check``
markers is regenerated from the run with the default recipe (``--readme`` with another run).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BASE = "fashion_net"
MIN_GROUP_HELDOUT = 0.15
README_START, README_END = "<!-- finetune-check:start -->", "<!-- finetune-check:end -->"


def write_phone_csv(path, folder=None):
    """The in-class phone photos of the val split as ``path,label,group`` rows; their count."""
    from fashion_core.classes import FASHION_MNIST_CLASSES
    from fashion_core.photos import find_photos_dir, read_labels

    root = find_photos_dir(folder)
    rows = [r for r in read_labels(root) if r["split"] == "val" and r["domain"] == "phone" and r["label"] >= 0]
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "label", "group"])
        for row in rows:
            writer.writerow([str(root / row["file"]), FASHION_MNIST_CLASSES[row["label"]], row["group"]])
    return len(rows)


def run(args):
    from fashion_core.finetune import DEFAULTS, finetune_and_save
    from fashion_core.registry import Registry

    with tempfile.TemporaryDirectory(prefix="finetune-check-") as tmp:
        tmp = Path(tmp)
        csv_path = tmp / "phone_val.csv"
        n = write_phone_csv(csv_path)
        registry = Registry(tmp / "models")
        registry.root.mkdir()
        shutil.copytree(Registry().get(BASE).path, registry.root / BASE)
        started = time.perf_counter()
        result = finetune_and_save(BASE, csv_path, "fashion_net_corrected", registry=registry, epochs=args.epochs,
                                   learning_rate=args.lr, replay=args.replay, correction_share=args.share,
                                   heldout_fraction=0.2, seed=args.seed, precompute=False, verbose=0,
                                   say=lambda line: print(line, file=sys.stderr, flush=True))
        if result["split"] == "group" and result["heldout"] < MIN_GROUP_HELDOUT * n:
            raise SystemExit(f"the group split held out only {result['heldout']} of {n} photos")
        result["total_seconds"] = round(time.perf_counter() - started, 1)
    result["photos"] = n
    result["default_recipe"] = all(result["recipe"][k] == getattr(DEFAULTS, k)
                                   for k in ("epochs", "learning_rate", "replay", "correction_share", "batch_size",
                                             "seed"))
    for key in ("before", "after"):
        result[key] = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in result[key].items()}
    result["heldout_gain_points"] = round(100 * (result["after"]["heldout_accuracy"] - result["before"]["heldout_accuracy"]), 1)
    result["test_drop_points"] = round(100 * (result["before"]["test_accuracy"] - result["after"]["test_accuracy"]), 2)
    result["goal_met"] = result["heldout_gain_points"] >= 15 and result["test_drop_points"] <= 1
    for key in ("path", "skipped", "name"):
        result.pop(key, None)
    return result


def _recipe_text(row):
    r = row["recipe"]
    seed = f", seed {r['seed']} (another split)" if r["seed"] else ""
    return (f"{r['epochs']} epochs, lr {r['learning_rate']:g}, replay {r['replay']:,}, "
            f"correction share {r['correction_share']:g}{seed}")


def readme_paragraph(row, out, runs=()):
    b, a = row["before"], row["after"]
    recipe = row["recipe"]
    others = [r for r in runs if not r.get("default_recipe")]
    compared = ("\n\nOther schedules, same script (same split unless noted; times on a shared machine vary with its load): " + "; ".join(
        f"{_recipe_text(r)}: held-out {r['heldout_gain_points']:+.1f} points, test {-r['test_drop_points']:+.2f} points "
        f"({r['train_seconds']:.0f} s)" for r in others) + ".") if others else ""
    return (
        f"Measured by `python -m scripts.finetune_check` ({out}, {row['date']}, 2 CPUs): `fashion_net` fine-tuned "
        f"on {row['corrections']} of the {row['photos']} in-class phone photos of the real photos' val split "
        f"(held out: {row['heldout']} photos, split by {'sender' if row['split'] == 'group' else row['split']}), "
        f"{recipe['epochs']} epochs at learning rate {recipe['learning_rate']:g}, each photo repeated {row['repeat']}× "
        f"among {row['replay']:,} replayed Fashion-MNIST training images:\n\n"
        "| | before | after | change |\n|---|---|---|---|\n"
        f"| held-out phone photos (n={row['heldout']}) | {b['heldout_accuracy']:.1%} | {a['heldout_accuracy']:.1%} | "
        f"{row['heldout_gain_points']:+.1f} points (goal ≥ +15) |\n"
        f"| Fashion-MNIST official test (flip-TTA) | {b['test_accuracy']:.2%} | {a['test_accuracy']:.2%} | "
        f"{-row['test_drop_points']:+.2f} points (goal ≥ −1) |\n\n"
        f"Fine-tuning took {row['train_seconds']:.0f} s ({row['total_seconds']:.0f} s with the measurements)."
        + compared
    )


def update_readme(paragraph, readme=ROOT / "README.md"):
    text = readme.read_text()
    block = f"{README_START}\n{paragraph}\n{README_END}"
    if README_START in text:
        text = re.sub(re.escape(README_START) + ".*?" + re.escape(README_END), lambda _: block, text, flags=re.S)
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    readme.write_text(text)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--lr", type=float)
    parser.add_argument("--replay", type=int)
    parser.add_argument("--share", type=float, help="share of each epoch that is corrections")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="docs/finetune_check.json")
    parser.add_argument("--readme", action="store_true", help="regenerate the README paragraph from this run")
    parser.add_argument("--readme-only", action="store_true",
                        help="train nothing: regenerate the README paragraph from the JSON's last default-recipe run")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    out = ROOT / args.out
    data = json.loads(out.read_text()) if out.is_file() else {"runs": []}
    if args.readme_only:
        row = next((r for r in reversed(data["runs"]) if r.get("default_recipe")), None)
        if row is None:
            raise SystemExit(f"{args.out} has no run with the default recipe")
    else:
        row = run(args)
        row["date"] = time.strftime("%Y-%m-%d")
        row["command"] = "python -m scripts.finetune_check " + " ".join(argv if argv is not None else sys.argv[1:])
        data["runs"].append(row)
        out.write_text(json.dumps(data, indent=1) + "\n")
        print(json.dumps(row), flush=True)
    if args.readme or args.readme_only or row["default_recipe"]:
        update_readme(readme_paragraph(row, args.out, data["runs"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
