"""Choose an ensemble's weights by measurement, never on the val split or the test set.

    python -m scripts.ensemble_weights photo_lite0 photo_net fashion_net [--flip photo_lite0] [--step 0.1] [--json PATH]

Each member answers, as it would inside the ensemble's graph (at its own input size; with
flip-TTA where ``--flip`` says so), two sets that no member learnt from:

- the real photos the photo members' training held out (``photos.calibration_photos``: the same
  senders / products for every member trained with the same holdout recipe), and
- the Fashion-MNIST training images that no member (nor a model it was fine-tuned from) trained
  on or validated with: the validation split of the Fashion-MNIST-only models, minus every photo
  member's replay and validation draws.

Every weighting on a grid of the simplex (``--step``, every member at least one step) is scored
on both; the chosen one has the best mean of the two accuracies (photos and Fashion-MNIST count
the same; no threshold to tune). Prints the best rows and the ``ensemble`` command; ``--json
PATH`` writes the whole table.
"""

from __future__ import annotations

import argparse
import itertools
import json

import numpy as np


def unseen_fashion_rows(entries, n_train, labels):
    """Rows of Fashion-MNIST's training set that no member (or ancestor) trained on or validated with."""
    from fashion_core.data import train_validation_split
    from fashion_core.photos import FASHION_VALIDATION

    held, seen = None, set()
    for entry in entries:
        recipe = (entry.metadata.get("additions") or {}).get("photos")
        hp = entry.metadata.get("hyper_parameters") or {}
        if recipe:
            order = np.random.default_rng(recipe["seed"]).permutation(n_train)
            seen.update(order[: recipe["replay"] + FASHION_VALIDATION].tolist())
        else:
            train_idx, val_idx = train_validation_split(n_train, hp.get("validation_fraction", 0.1), hp.get("seed", 0), labels)
            seen.update(np.asarray(train_idx).tolist())
            held = set(np.asarray(val_idx).tolist()) if held is None else held & set(np.asarray(val_idx).tolist())
    if held is None:
        raise SystemExit("no member trained on Fashion-MNIST alone: no split that none of them saw")
    return np.array(sorted(held - seen), np.int64)


def member_probabilities(registry, names, images, flips):
    """{name: (N, K) probabilities}, each member as it answers inside the ensemble (its input
    adaptation, and flip-TTA where ``flips`` says so)."""
    from fashion_core import ensemble
    from fashion_core.predict import predict_probabilities

    members = [registry.load_served(n) for n in names]
    shape = tuple(int(d) for d in members[0].input_shape[1:])
    return {name: predict_probabilities(ensemble.member_view(member, shape, f"member{i}", flip=flip), images)
            for i, (name, member, flip) in enumerate(zip(names, members, flips))}


def grid(n, step):
    ticks = int(round(1 / step))
    for parts in itertools.product(range(1, ticks + 1), repeat=n):
        if sum(parts) == ticks:
            yield [p / ticks for p in parts]


def main():
    from fashion_core.data import load_fashion_mnist
    from fashion_core.photos import calibration_photos
    from fashion_core.registry import Registry

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("members", nargs="+")
    parser.add_argument("--step", type=float, default=0.1)
    parser.add_argument("--flip", nargs="*", metavar="MODEL",
                        help="the members answering with flip-TTA, as `ensemble --flip` (default: as each is served)")
    parser.add_argument("--json", metavar="PATH")
    args = parser.parse_args()
    registry = Registry()
    entries = [registry.get(n) for n in args.members]
    flips = [e.uses_flip_tta for e in entries] if args.flip is None else [n in args.flip for n in args.members]
    for entry in list(entries):
        entries += [registry.get(p) for p in entry.lineage if p in registry.names()]
    lead = entries[0]
    shape = tuple(lead.metadata["image_shape"])
    recipe = next(e.metadata["additions"]["photos"] for e in entries if e.is_photo_model)
    photos = calibration_photos(shape, recipe)
    photos = photos.select(photos.in_class)
    fashion = load_fashion_mnist(image_size=shape[0] if shape[0] != 28 else None, color=shape[2] == 3)
    rows = unseen_fashion_rows(entries, len(fashion.y_train), fashion.y_train)
    print(f"{len(photos.labels)} held-out in-class photos, {len(rows)} unseen Fashion-MNIST training images", flush=True)
    on_photos = member_probabilities(registry, args.members, photos.images, flips)
    on_fashion = member_probabilities(registry, args.members, fashion.x_train[rows], flips)
    table = []
    for weights in grid(len(args.members), args.step):
        p = sum(w * on_photos[n] for w, n in zip(weights, args.members))
        f = sum(w * on_fashion[n] for w, n in zip(weights, args.members))
        table.append({"weights": weights, "heldout_photos": float((p.argmax(1) == photos.labels).mean()),
                      "unseen_fashion_mnist": float((f.argmax(1) == fashion.y_train[rows]).mean())})
    for r in table:
        r["mean"] = (r["heldout_photos"] + r["unseen_fashion_mnist"]) / 2
    chosen = max(table, key=lambda r: r["mean"])
    for r in sorted(table, key=lambda r: -r["mean"])[:15]:
        mark = " <- chosen" if r is chosen else ""
        print(f"{' '.join(f'{w:.1f}' for w in r['weights'])}  photos {r['heldout_photos']:.2%}  "
              f"Fashion-MNIST {r['unseen_fashion_mnist']:.2%}  mean {r['mean']:.2%}{mark}")
    flip = "" if args.flip is None else " --flip " + " ".join(args.flip)
    command = (f"python -m fashion_core ensemble {' '.join(args.members)} --weights "
               f"{' '.join(f'{w:g}' for w in chosen['weights'])}{flip} --name NAME")
    print(command)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"members": args.members, "flip": flips, "step": args.step, "rule": "best mean of the two accuracies",
                       "heldout_photos": int(len(photos.labels)), "unseen_fashion_mnist": int(len(rows)),
                       "table": table, "chosen": chosen, "command": command}, handle, indent=1)


if __name__ == "__main__":
    main()
