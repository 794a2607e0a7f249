"""Re-score shipped models from their ``.keras`` file alone and compare with their metadata.

    python -m scripts.rescore [NAME ...] [--models models/] [--all]

For each registry model with its own ``model.keras`` (ensembles have none), the file is loaded in
safe mode (``registry.load_keras_file``: no code runs), the official test set of the model's own
dataset is predicted (with the horizontal-flip average where the model is served so), and the
top-1 accuracy is compared with ``test_accuracy`` / ``flip_tta_accuracy`` in its metadata.
By default only models on native 28x28 Fashion-MNIST are scored (the others need their test
set preprocessed at their own size: ``--all``). Exit status 1 when any figure is off by more
than one test image.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from fashion_core.data import to_model_input
from fashion_core.registry import MODEL_FILE, Registry, load_keras_file
from fashion_core.runs import dataset_for_model


def rescore(entry):
    """``{"name", "test_accuracy", "metadata_test_accuracy", "flip_tta_accuracy",
    "metadata_flip_tta_accuracy", "off_by_images"}`` for one registry entry."""
    model = load_keras_file(entry.path / MODEL_FILE)
    dataset = dataset_for_model(entry)
    x = to_model_input(dataset.x_test)
    plain = np.asarray(model.predict(x, batch_size=500, verbose=0))
    row = {"name": entry.name, "test_accuracy": float(np.mean(plain.argmax(1) == dataset.y_test)),
           "metadata_test_accuracy": entry.metadata.get("test_accuracy"), "flip_tta_accuracy": None,
           "metadata_flip_tta_accuracy": entry.metadata.get("flip_tta_accuracy")}
    if entry.uses_flip_tta:
        mirrored = np.asarray(model.predict(x[:, :, ::-1], batch_size=500, verbose=0))
        row["flip_tta_accuracy"] = float(np.mean((plain + mirrored).argmax(1) == dataset.y_test))
    n = len(dataset.y_test)
    pairs = [("test_accuracy", "metadata_test_accuracy"), ("flip_tta_accuracy", "metadata_flip_tta_accuracy")]
    row["off_by_images"] = max([round(abs(row[a] - row[b]) * n) for a, b in pairs
                                if row[a] is not None and row[b] is not None] or [0])
    return row


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="models to score (default: every model with its own file)")
    parser.add_argument("--models", default=None, help="registry folder (default: FASHION_MODELS_DIR or models/)")
    parser.add_argument("--all", action="store_true", help="also models at other input sizes (slow: preprocessing)")
    args = parser.parse_args(argv)
    registry = Registry(args.models)
    entries = [registry.get(name) for name in args.names] if args.names else [
        e for e in registry.list() if not e.is_ensemble and (args.all or (
            e.dataset_spec.get("kind") == "fashion-mnist" and not e.dataset_spec.get("image_size")
            and not e.dataset_spec.get("color")))]
    worst = 0
    for entry in entries:
        row = rescore(entry)
        worst = max(worst, row["off_by_images"])
        tta = "" if row["flip_tta_accuracy"] is None else (
            f", flip-TTA {row['flip_tta_accuracy']:.4f} (metadata {row['metadata_flip_tta_accuracy']:.4f})")
        print(f"{row['name']:<24} {row['test_accuracy']:.4f} (metadata {row['metadata_test_accuracy']:.4f}){tta}; "
              f"off by {row['off_by_images']} image(s)", flush=True)
    return 1 if worst > 1 else 0


if __name__ == "__main__":
    sys.exit(main())
