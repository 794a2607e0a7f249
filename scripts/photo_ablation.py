"""The photo model's ablation: what each choice buys on the real photos' val split.

Each variant fine-tunes the shipped ``fashion_net`` with the same recipe as ``train --photos``
(Fashion-MNIST replay + real photos, AdamW warm-up cosine, lr 1e-3) for the same number of
epochs, changing one thing at a time: input size, colour, how often each phone photo is shown,
and whether the photos of other things are taught as "none of these" (outlier exposure). Every variant is then measured like ``bench`` measures the
shipped photo model: the val split through the whole upload path (``photos.photo_report``), with
its "none of these" threshold calibrated on its own held-out train photos.

Usage::

    python -m scripts.photo_ablation --epochs 3 --replay 6000 --out docs/photo_ablation.json [--variants 28g 48g ...]

Results go to a JSON file (one object per variant); docs/PHOTOS.md quotes them.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

VARIANTS = {
    "28g": {"size": 28, "channels": 1, "outliers": True, "phone_repeat": 1},
    "48g": {"size": 48, "channels": 1, "outliers": True, "phone_repeat": 1},
    "48c": {"size": 48, "channels": 3, "outliers": True, "phone_repeat": 1},
    "48c-phone3": {"size": 48, "channels": 3, "outliers": True, "phone_repeat": 3},
    "48c-phone3-no-outliers": {"size": 48, "channels": 3, "outliers": False, "phone_repeat": 3},
}


def run_variant(name, epochs, replay, base="fashion_net"):
    from fashion_core.predict import flip_tta_probabilities
    from fashion_core.inference import Classifier
    from fashion_core.ood import calibrate_confidence
    from fashion_core.photos import calibration_photos, photo_report, photo_training_dataset
    from fashion_core.registry import Registry
    from fashion_core.training import TrainConfig, train

    v = VARIANTS[name]
    shape = (v["size"], v["size"], v["channels"])
    data = photo_training_dataset(shape, replay=replay, outliers=v["outliers"], phone_repeat=v["phone_repeat"])
    config = TrainConfig(arch="fashion_net", epochs=epochs, learning_rate=1e-3, init_from=base)
    result = train(data, config, init_model=Registry().load_classifier(base))
    model = result.model
    fashion = float((flip_tta_probabilities(model, data.x_test).argmax(1) == data.y_test).mean())
    held = calibration_photos(shape, data.additions["photos"])
    ood = calibrate_confidence(flip_tta_probabilities(model, held.images), held.labels)
    classifier = Classifier(model, data.class_names, shape, ood=ood, flip_tta=True, photo_trained=True, name=name)
    report = photo_report(classifier)
    return {"variant": name, **v, "epochs": epochs, "replay": replay, "train_seconds": round(result.train_seconds, 1),
            "fashion_mnist_flip_tta": fashion, "catalogue": report["domains"]["catalogue"]["accuracy"],
            "phone": report["domains"]["phone"]["accuracy"], "other_flagged": report["other_flagged"],
            "correct_flagged": report["correct_flagged"], "min_confidence": ood.get("min_confidence")}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--replay", type=int, default=12000)
    parser.add_argument("--out", default="docs/photo_ablation.json")
    args = parser.parse_args(argv)
    rows = []
    for name in args.variants:
        started = time.perf_counter()
        rows.append(run_variant(name, args.epochs, args.replay))
        print(json.dumps(rows[-1]), f"({time.perf_counter() - started:.0f} s)", file=sys.stderr, flush=True)
        with open(args.out, "w") as handle:  # after each variant: a long run keeps what it measured
            json.dump({"command": "python -m scripts.photo_ablation " + " ".join(argv or sys.argv[1:]),
                       "rows": rows}, handle, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
