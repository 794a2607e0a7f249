"""The label audit checked on labels flipped on purpose: flip 1,000 of 20,000 Fashion-MNIST
training labels, audit them out-of-fold and report the share of the flipped ones among the
1,000 most suspicious (``python -m scripts.label_flip_check [--json] [--save FILE]``).

The result feeds README's "Suspicious training labels" section (``docs/label_flip_check.json``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

from fashion_core.audit import DEFAULT_ARCH, DEFAULT_EPOCHS, DEFAULT_FOLDS, flip_labels, out_of_fold_probabilities, rank_label_issues
from fashion_core.data import load_fashion_mnist, sample_indices
from fashion_core.registry import write_json_atomic
from fashion_core.training import TrainConfig


def flip_check(images=20000, flipped=1000, arch=DEFAULT_ARCH, folds=DEFAULT_FOLDS, epochs=DEFAULT_EPOCHS, seed=0, say=None):
    """Recall of the flipped labels among the ``flipped`` most suspicious; JSON-able dict."""
    started = time.perf_counter()
    data = load_fashion_mnist()
    rows = sample_indices(len(data.y_train), images, seed)
    noisy, flipped_idx = flip_labels(data.y_train[rows], flipped, data.num_classes, seed)
    config = TrainConfig(arch=arch, epochs=epochs, seed=seed, validation_fraction=0.0)
    probabilities = out_of_fold_probabilities(data.x_train[rows], noisy, config, folds, data.class_names, say=say)
    ranking = rank_label_issues(probabilities, noisy)
    top = ranking["order"][:flipped]
    found = np.isin(top, flipped_idx)
    return {"images": int(images), "flipped": int(flipped), "arch": arch, "folds": int(folds), "epochs": int(epochs),
            "seed": int(seed), "flipped_among_top": int(found.sum()), "recall_at_flipped": float(found.mean()),
            "flagged": int(ranking["flagged"].sum()),
            "flipped_flagged": int(ranking["flagged"][flipped_idx].sum()),
            "seconds": round(time.perf_counter() - started, 1)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=20000)
    parser.add_argument("--flipped", type=int, default=1000)
    parser.add_argument("--arch", default=DEFAULT_ARCH)
    parser.add_argument("--folds", type=int, default=DEFAULT_FOLDS)
    parser.add_argument("--epochs", type=int, default=DEFAULT_EPOCHS)
    parser.add_argument("--save", metavar="FILE")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    result = flip_check(args.images, args.flipped, args.arch, args.folds, args.epochs,
                        say=lambda line: print(line, file=sys.stderr))
    if args.save:
        write_json_atomic(args.save, result)
    print(json.dumps(result) if args.json else
          f"{result['flipped_among_top']} of the {result['flipped']} flipped labels are among the {result['flipped']} most "
          f"suspicious ({result['recall_at_flipped']:.1%}); {result['flagged']} flagged in all, {result['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
