"""Benchmark of the shipped models, measured on the machine it runs on (``python -m fashion_core bench``).

"Shipped models" are the registry's models trained on Fashion-MNIST. Timings are medians over
repeats (latencies: percentiles over many calls). Speed targets are reported next to the
numbers, never asserted: they depend on the machine.

JSON keys (``bench --json``, one object; stable names):

- ``date`` (UTC ISO 8601), ``quick`` (bool), ``seconds`` (wall time of the whole benchmark)
- ``machine``: ``cpu_count``, ``platform``, ``processor``, ``python``, ``tensorflow``, ``keras``
- ``settings``: ``test_images``, ``repeats``, ``latency_calls``, ``gallery_images``, ``saliency_images``,
  ``training_images``, ``photo_images``
- ``models``: list, one per shipped model: ``name``, ``arch``, ``params``, ``test_accuracy``,
  ``flip_tta_accuracy`` (null where the model does not use flip-TTA), ``images_per_second``
  (batch inference over the test images), ``speed_vs_seed003`` (images_per_second ratio)
- ``seed003``: ``source`` (which model was timed; an untrained build when the registry has no
  seed003_cnn: throughput does not depend on the weights), ``images_per_second``
- ``single_image``: full classify path of the default model for uploads (decode file bytes →
  preprocess → model → probabilities and flags): ``model``, ``inputs`` (real photos when the
  real-photos folder is there), ``calls``, ``p50_ms``, ``p95_ms``, ``target_p50_ms``
- ``real_photos``: ``folder``, ``targets`` (``catalogue``, ``phone``, ``other_flagged``,
  ``correct_flagged``), ``models``: the default photo model and the best Fashion-MNIST model, each
  ``name``, ``photo_model``, ``fashion_mnist_test_accuracy`` and ``photos.photo_report``'s fields
  on the val split (``domains``, ``per_class``, ``other_flagged``, ``correct_flagged``, ...);
  or ``{"skipped": reason}`` without the folder
- ``neighbours``: ``encoder`` (best by precision), ``encoder_description``, ``k``,
  ``precision_at_k`` (test images as queries against the training gallery),
  ``target_precision``, ``gallery_images`` (train + test), ``query_p50_ms``, ``query_p95_ms``,
  ``target_p50_ms``, ``queries``, ``recall_vs_brute_force`` (fast path vs exact search),
  ``per_encoder`` (list of ``name``, ``description``, ``precision_at_k``)
- ``catalogue_retrieval``: list, one per registry model trained on a catalogue
  (``catalogue_precision``): ``name``, ``dataset_name``, ``k`` (5), ``precision_at_k`` (test
  products as queries against the training products, same class), ``queries``, ``gallery_images``,
  ``encoder_description``; empty without catalogue models
- ``training``: ``arch`` ("fashion_net"), ``images``, ``batch_size``, ``images_per_second``
  (one epoch, the first batch — graph tracing — excluded)
- ``photo_proxy``: ``model``, ``n``, ``clean_accuracy``, ``photo_accuracy``, ``ratio``,
  ``target_ratio`` (synthetic catalogue photos vs clean test images)
- ``calibration``: ``target_ece``, ``n_bins``, ``models``: one per shipped model: ``name``,
  ``temperature`` and ``method`` (``calibration.Calibration.method``; both null when never
  calibrated: ``python -m fashion_core calibrate NAME``), ``ece_before``, ``ece`` (after the
  stored calibration), on the test images as served (flip-TTA where used)
- ``ann`` (suite ``ann``): approximate nearest-neighbour search at catalogue scale on synthetic
  clustered vectors, with the index the studio uses for big galleries (``neighbours``):
  ``date``, ``n``, ``dims``, ``k``, ``index``, ``build_seconds``, ``memory_mb`` (resident memory
  the index added), ``query_ms_p50`` and ``exact_query_ms_p50`` (single top-``k`` queries, HNSW vs
  exhaustive), ``recall_at_10`` (against the exhaustive answers), ``queries``, ``targets``
- ``suites``: the suites this result holds (``--suite NAME`` runs some of them; ``--save`` then
  updates only their keys in an existing file)
- ``saliency``: ``model`` (the best Fashion-MNIST model), ``n`` (test images), ``hide_fraction``,
  ``default_method``, ``share_salient_lowers_more`` (of the default method: share of images where
  hiding the most salient pixels lowers the predicted class's probability more than hiding a
  random ``hide_fraction``), ``target_share``, ``methods``: list of ``saliency.faithfulness``
  results (``method``, ``share_salient_lowers_more``, ``mean_drop_salient``, ``mean_drop_random``,
  ``seconds``)
"""

from __future__ import annotations

import datetime as _dt
import io
import json
import os
import platform
import time

import numpy as np

from . import zoo
from .data import FASHION_MNIST_SPEC, load_fashion_mnist, sample_indices, to_model_input
from .errors import DataError, FashionError, InvalidParameterError, ModelNotFoundError

TARGET_SINGLE_P50_MS = 15.0
TARGET_QUERY_P50_MS = 2.0
TARGET_PRECISION = 0.92
TARGET_PHOTO_RATIO = 0.95
NEIGHBOURS_K = 10
SEED003 = "seed003_cnn"

TARGET_ECE = 0.015
TARGET_SALIENCY_SHARE = 0.80
PHOTO_TARGETS = {"catalogue": 0.92, "phone": 0.75, "other_flagged": 0.80, "correct_flagged": 0.10}

FULL = {"test_images": None, "repeats": 3, "latency_calls": 300, "gallery_images": None,
        "training_images": 6000, "photo_images": 2000, "real_photos": None, "saliency_images": 500,
        "ann_vectors": 1_000_000}
QUICK = {"test_images": 1000, "repeats": 2, "latency_calls": 50, "gallery_images": 6000,
         "training_images": 512, "photo_images": 200, "real_photos": 300, "saliency_images": 40,
         "ann_vectors": 5_000}
# The parts of the benchmark, in the order they run (``bench --suite NAME`` runs some of them).
SUITES = ("models", "single_image", "photo_proxy", "calibration", "saliency", "neighbours", "real_photos",
          "catalogue_retrieval", "training", "ann")
ANN_DIMS = 64
ANN_TARGETS = {"recall_at_10": 0.95, "query_ms_p50": 5.0}


def machine_info():
    import keras
    import tensorflow as tf

    return {
        "cpu_count": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
    }


def _test_set_spec(entry):
    """The recipe of the dataset whose (whole, official) test set ``entry`` is measured on: its
    own, without a training ``subset``."""
    return {k: v for k, v in entry.dataset_spec.items() if k != "subset"}


def shipped_models(registry):
    """Registry entries trained on Fashion-MNIST at its native 28x28 grey, by name."""
    return [e for e in registry.list() if _test_set_spec(e) == FASHION_MNIST_SPEC]


def bench_photos(registry, limit):
    """The default photo model and the best Fashion-MNIST model on the real photos' val split."""
    from .inference import Classifier
    from .photos import find_photos_dir, photo_report
    from .registry import best_model_name, default_photo_model_name

    try:
        folder = find_photos_dir()
    except DataError as exc:
        return {"skipped": str(exc)}
    names = [n for n in dict.fromkeys([default_photo_model_name(registry), best_model_name(registry, photo_models=False)]) if n]
    rows = []
    for name in names:
        classifier = Classifier.from_registry(name, registry=registry)
        meta = registry.get(name).metadata
        rows.append({"name": name, "photo_model": classifier.photo_trained,
                     "fashion_mnist_test_accuracy": meta.get("flip_tta_accuracy") or meta.get("test_accuracy"),
                     **photo_report(classifier, folder, limit=limit)})
    return {"folder": str(folder), "models": rows, "targets": dict(PHOTO_TARGETS)}


def _percentiles_ms(seconds):
    values = 1000.0 * np.asarray(seconds)
    return float(np.percentile(values, 50)), float(np.percentile(values, 95))


def batch_throughput(model, images, repeats, batch_size=500):
    """Median images/second of compiled direct calls over ``images`` (float32 N, H, W, C)."""
    from .predict import compiled_call

    call = compiled_call(model, images.shape[1:])
    call(images[:batch_size])  # trace once, outside the timing
    rates = []
    for _ in range(repeats):
        started = time.perf_counter()
        for i in range(0, len(images), batch_size):
            np.asarray(call(images[i : i + batch_size]))
        rates.append(len(images) / (time.perf_counter() - started))
    return float(np.median(rates))


def bench_models(registry, entries, dataset, test_idx, repeats):
    """Accuracy and throughput of every shipped model, and of the seed 003 architecture."""
    from .predict import accuracy as accuracy_of

    x_uint8, y = dataset.x_test[test_idx], dataset.y_test[test_idx]
    x = to_model_input(x_uint8)
    rows = []
    seed003_rate, seed003_source = None, None
    for entry in entries:
        model = registry.load_served(entry.name)
        accuracy = accuracy_of(model, x, y)
        tta = accuracy_of(model, x_uint8, y, flip_tta=True) if entry.uses_flip_tta else None
        rate = batch_throughput(model, x, repeats)
        rows.append({"name": entry.name, "arch": entry.metadata.get("arch", "imported"),
                     "params": int(model.count_params()), "test_accuracy": accuracy,
                     "flip_tta_accuracy": tta, "images_per_second": rate})
        if seed003_rate is None and entry.metadata.get("arch") == SEED003:
            seed003_rate, seed003_source = rate, f"registry model {entry.name!r}"
    if seed003_rate is None:
        model = zoo.build(SEED003, dataset.image_shape, dataset.num_classes).classifier
        seed003_rate = batch_throughput(model, x, repeats)
        seed003_source = "untrained zoo.build('seed003_cnn') (no seed003_cnn in the registry; throughput does not depend on weights)"
    for row in rows:
        row["speed_vs_seed003"] = row["images_per_second"] / seed003_rate
    return rows, {"source": seed003_source, "images_per_second": seed003_rate}


def calibration_models(registry, entries):
    """The models whose calibration bench measures: ``entries`` (the 28x28 Fashion-MNIST ones)
    and the photo models, which answer the same ten classes on the same official test images
    (rendered at their own input size)."""
    names = {e.name for e in entries}
    classes = [list(e.metadata.get("class_names") or []) for e in entries[:1]]
    return list(entries) + [e for e in registry.list() if e.is_photo_model and e.name not in names
                            and [list(e.metadata.get("class_names") or [])] == classes]


def bench_calibration(registry, entries, dataset, test_idx):
    """Test-set ECE of every shipped model before and after its stored calibration (a model
    trained at another input size reads the same test images at its own, ``load_dataset``)."""
    from .calibration import N_BINS, calibration_report
    from .loaders import load_dataset
    from .predict import served_probabilities

    rows, test_images = [], {}  # one load (and render) per input size, however many models read it
    for entry in entries:
        model = registry.load_served(entry.name)
        spec = _test_set_spec(entry)
        key = json.dumps(spec, sort_keys=True)
        if key not in test_images:
            test_images[key] = (dataset if spec == FASHION_MNIST_SPEC else load_dataset(spec)).x_test[test_idx]
        probabilities = served_probabilities(model, test_images[key], entry.uses_flip_tta)
        stored = entry.calibration is not None
        report = calibration_report(probabilities, dataset.y_test[test_idx], entry.calibrator)
        rows.append({"name": entry.name, "temperature": entry.temperature if stored else None,
                     "method": report["method"] if stored else None,
                     "ece_before": report["ece_before"], "ece": report["ece"]})
    return {"target_ece": TARGET_ECE, "n_bins": N_BINS, "models": rows}


def bench_saliency(registry, model_name, dataset, images):
    """Faithfulness of each saliency method on ``images`` seeded test images of ``model_name``."""
    from .saliency import DEFAULT_METHOD, HIDE_FRACTION, faithfulness

    entry = registry.get(model_name)
    model = registry.load_classifier(model_name)
    idx = sample_indices(len(dataset.y_test), images, seed=1)
    methods = []
    for method in ("occlusion", "grad_cam"):
        started = time.perf_counter()
        try:
            row = faithfulness(model, dataset.x_test[idx], method=method, flip_tta=entry.uses_flip_tta)
        except FashionError as exc:  # Grad-CAM on a model without convolutions
            row = {"method": method, "skipped": str(exc)}
        methods.append({**row, "seconds": time.perf_counter() - started})
    default = next(m for m in methods if m["method"] == DEFAULT_METHOD)
    return {"model": model_name, "n": int(len(idx)), "hide_fraction": HIDE_FRACTION, "default_method": DEFAULT_METHOD,
            "share_salient_lowers_more": default["share_salient_lowers_more"], "target_share": TARGET_SALIENCY_SHARE,
            "methods": methods}


def _encoded_test_images(dataset, count=20):
    """PNG and JPEG bytes of test images, alternating, as an upload would arrive."""
    from PIL import Image

    blobs = []
    for i in range(count):
        image = dataset.x_test[i]
        pil = Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)
        buffer = io.BytesIO()
        pil.save(buffer, format="PNG" if i % 2 == 0 else "JPEG", quality=90)
        blobs.append(buffer.getvalue())
    return blobs


def real_photo_files(count=20):
    """Bytes of real val photos (both domains, alternating), or None without the photos folder."""
    from .photos import find_photos_dir, read_labels

    try:
        root = find_photos_dir()
    except DataError:
        return None
    rows = [r for r in read_labels(root) if r["split"] == "val"]
    by_domain = [[r for r in rows if r["domain"] == d][: count // 2] for d in ("catalogue", "phone")]
    return [(root / r["file"]).read_bytes() for pair in zip(*by_domain) for r in pair]


def _classify_timings(classifier, blobs, calls):
    for blob in blobs[:3]:
        classifier.classify(blob, top_k=3)  # warm-up: tracing, first allocations
    timings = []
    for i in range(calls):
        started = time.perf_counter()
        classifier.classify(blobs[i % len(blobs)], top_k=3)
        timings.append(time.perf_counter() - started)
    return _percentiles_ms(timings)


def bench_single_image(registry, model_name, dataset, calls):
    """p50/p95 latency of ``Classifier.classify`` on file bytes: real photos when the real-photos
    folder is there (what people upload), else PNG/JPEG-encoded test images. A model served
    through LiteRT (``litert.py``) is also timed through TensorFlow in the same run
    (``tensorflow_p50_ms``, ``litert_speedup``)."""
    from .inference import Classifier

    classifier = Classifier.from_registry(model_name, registry=registry)
    blobs = real_photo_files()
    inputs = "real photos (val split, JPEG, 224-320 px)" if blobs else "Fashion-MNIST test images as PNG/JPEG"
    blobs = blobs or _encoded_test_images(dataset)
    p50, p95 = _classify_timings(classifier, blobs, calls)
    result = {"model": model_name, "inputs": inputs, "calls": calls, "p50_ms": p50, "p95_ms": p95,
              "runtime": classifier.runtime, "target_p50_ms": TARGET_SINGLE_P50_MS}
    if classifier.runtime == "litert":
        tf_p50, _ = _classify_timings(Classifier.from_registry(model_name, registry=registry, use_litert=False),
                                      blobs, calls)
        result.update(tensorflow_p50_ms=tf_p50, litert_speedup=round(tf_p50 / p50, 2) if p50 else None)
    return result


def bench_neighbours(registry, dataset, gallery_limit, calls):
    """Precision@10 of every encoder (test queries vs the training gallery) and query latency
    over the train + test gallery with the best encoder."""
    from .latent import embed, encoder_for, encoder_options
    from .neighbours import NeighbourIndex, precision_at_k

    n_train, n_test = len(dataset.y_train), len(dataset.y_test)
    if gallery_limit:  # keep the 6:1 train/test proportion of Fashion-MNIST
        train_idx = sample_indices(n_train, gallery_limit * n_train // (n_train + n_test))
        test_idx = sample_indices(n_test, max(1, gallery_limit * n_test // (n_train + n_test)))
    else:
        train_idx, test_idx = np.arange(n_train), np.arange(n_test)
    x_train, y_train = dataset.x_train[train_idx], dataset.y_train[train_idx]
    x_test, y_test = dataset.x_test[test_idx], dataset.y_test[test_idx]

    per_encoder, best = [], None
    same_input = {e.name for e in shipped_models(registry)}  # models that read this dataset's images
    for name, description in encoder_options(registry):
        if name not in same_input:
            continue
        encoder, _ = encoder_for(name, registry)
        train_vectors, test_vectors = embed(encoder, x_train), embed(encoder, x_test)
        precision = precision_at_k(NeighbourIndex(train_vectors, y_train), test_vectors, y_test, k=NEIGHBOURS_K)
        per_encoder.append({"name": name, "description": description, "precision_at_k": precision})
        if best is None or precision > best[0]:
            best = (precision, name, description, train_vectors, test_vectors)
    if best is None:
        raise ModelNotFoundError("no registry model has an encoder to benchmark neighbour search with.")
    precision, name, description, train_vectors, test_vectors = best

    index = NeighbourIndex(np.concatenate([train_vectors, test_vectors]), np.concatenate([y_train, y_test]))
    queries = sample_indices(len(test_vectors), min(calls, len(test_vectors)), seed=0)
    gallery_rows = len(train_vectors) + queries  # each query is in the gallery: skip itself
    index.query(test_vectors[queries[0]], k=NEIGHBOURS_K, exclude=[gallery_rows[0]])  # warm-up
    timings, found = [], []
    for q, row in zip(queries, gallery_rows):
        started = time.perf_counter()
        _, neighbours = index.query(test_vectors[q], k=NEIGHBOURS_K, exclude=[row])
        timings.append(time.perf_counter() - started)
        found.append(neighbours[0])
    _, exact = index.query(test_vectors[queries], k=NEIGHBOURS_K, exclude=gallery_rows, exact=True)
    recall = float(np.mean([len(set(a) & set(b)) / NEIGHBOURS_K for a, b in zip(found, exact)]))
    p50, p95 = _percentiles_ms(timings)
    return {"encoder": name, "encoder_description": description, "k": NEIGHBOURS_K,
            "precision_at_k": precision, "target_precision": TARGET_PRECISION,
            "gallery_images": len(index), "query_p50_ms": p50, "query_p95_ms": p95,
            "target_p50_ms": TARGET_QUERY_P50_MS, "queries": len(queries),
            "recall_vs_brute_force": recall, "per_encoder": per_encoder}


CATALOGUE_K = 5


def catalogue_precision(name, registry=None, dataset=None, k=CATALOGUE_K):
    """Visual search inside a catalogue: precision@k (same class) of registry model ``name``'s
    embedding, its catalogue's test products as queries against its training products."""
    from .latent import embed, encoder_for
    from .loaders import load_dataset
    from .neighbours import NeighbourIndex, precision_at_k
    from .registry import Registry

    registry = registry or Registry()
    entry = registry.get(name)
    dataset = dataset if dataset is not None else load_dataset(entry.dataset_spec)
    encoder, description = encoder_for(name, registry)
    index = NeighbourIndex(embed(encoder, dataset.x_train), dataset.y_train)
    precision = precision_at_k(index, embed(encoder, dataset.x_test), dataset.y_test, k=k)
    return {"name": name, "dataset_name": dataset.name, "k": k, "precision_at_k": precision,
            "queries": int(len(dataset.y_test)), "gallery_images": int(len(dataset.y_train)),
            "encoder_description": description}


def bench_catalogue_retrieval(registry):
    """``catalogue_precision`` of every registry model trained on a catalogue (a catalogue that
    cannot be read any more is reported as skipped)."""
    rows = []
    for entry in registry.list():
        if entry.dataset_spec.get("kind") != "folder":
            continue
        try:
            rows.append(catalogue_precision(entry.name, registry))
        except FashionError as exc:
            rows.append({"name": entry.name, "skipped": str(exc)})
    return rows


def bench_training(dataset, images, batch_size=128, seed=0):
    """fashion_net training throughput (images/second) over one epoch on a subset."""
    import keras

    from .training import make_optimizer

    keras.utils.set_random_seed(seed)
    spec = zoo.get_spec("fashion_net")
    idx = sample_indices(len(dataset.y_train), images, seed)
    x = to_model_input(dataset.x_train[idx])
    y = np.eye(dataset.num_classes, dtype=np.float32)[dataset.y_train[idx]]
    model = zoo.build("fashion_net", dataset.image_shape, dataset.num_classes).classifier
    steps = int(np.ceil(len(x) / batch_size))
    model.compile(optimizer=make_optimizer(spec.optimizer, spec.learning_rate, spec.weight_decay, spec.lr_schedule, steps),
                  loss=keras.losses.CategoricalCrossentropy(label_smoothing=spec.label_smoothing))
    stamps = []

    class _Stamps(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            stamps.append(time.perf_counter())

    model.fit(x, y, batch_size=batch_size, epochs=1, verbose=0, shuffle=True, callbacks=[_Stamps()])
    timed_images = len(x) - batch_size  # the first batch includes graph tracing
    rate = timed_images / (stamps[-1] - stamps[0]) if len(stamps) > 1 else float("nan")
    return {"arch": "fashion_net", "images": int(len(x)), "batch_size": batch_size, "images_per_second": float(rate)}


def clustered_vectors(n, dims, seed=0, clusters=1000, spread=0.35):
    """``n`` synthetic embeddings (float32): Gaussian blobs around ``clusters`` random centres,
    like a catalogue's many near-duplicate products. Made in blocks (bounded temporaries)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0.0, 1.0, (clusters, dims)).astype(np.float32)
    out = np.empty((n, dims), np.float32)
    for start in range(0, n, 100_000):
        m = min(100_000, n - start)
        out[start: start + m] = centres[rng.integers(0, clusters, m)]
        out[start: start + m] += rng.normal(0.0, spread, (m, dims)).astype(np.float32)
    return out


def bench_ann(n, calls, dims=ANN_DIMS, k=NEIGHBOURS_K, seed=0):
    """Approximate search at catalogue scale: the HNSW index of ``neighbours.NeighbourIndex`` over
    ``n`` clustered ``dims``-d vectors; single-query latency against exhaustive search and
    recall@k against the exhaustive answers, on ``calls`` held-out queries."""
    import psutil

    from .neighbours import HNSW_EF_SEARCH, HNSW_M, NeighbourIndex

    vectors = clustered_vectors(n + calls, dims, seed)
    gallery, queries = vectors[:n], vectors[n:]
    process = psutil.Process()
    rss_before = process.memory_info().rss
    started = time.perf_counter()
    index = NeighbourIndex(gallery, np.zeros(n, np.int8), approximate=True)
    build_seconds = time.perf_counter() - started
    memory_mb = (process.memory_info().rss - rss_before) / 2**20
    del vectors, gallery

    def timed(exact, count):
        index.query(queries[0], k=k, exact=exact)  # warm-up
        timings, found = [], []
        for q in queries[:count]:
            t0 = time.perf_counter()
            found.append(index.query(q, k=k, exact=exact)[1][0])
            timings.append(time.perf_counter() - t0)
        return _percentiles_ms(timings)[0], np.array(found)

    p50, approximate = timed(False, calls)
    exact_p50, _ = timed(True, min(calls, 100))
    _, exact = index.query(queries, k=k, exact=True)  # a batch: exhaustive, with BLAS
    recall = float(np.mean([len(set(a) & set(b)) / k for a, b in zip(approximate, exact)]))
    return {"date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), "n": int(n), "dims": int(dims),
            "k": int(k), "index": f"faiss IndexHNSWFlat (M={HNSW_M}, efSearch={HNSW_EF_SEARCH})",
            "build_seconds": build_seconds, "memory_mb": memory_mb, "query_ms_p50": p50,
            "exact_query_ms_p50": exact_p50, "recall_at_10": recall, "queries": int(len(approximate)),
            "targets": dict(ANN_TARGETS)}


def _check_suites(suites):
    chosen = list(dict.fromkeys(suites or SUITES))
    unknown = [name for name in chosen if name not in SUITES]
    if unknown:
        raise InvalidParameterError(f"unknown bench suite {unknown[0]!r}; choose from: {', '.join(SUITES)}.")
    return [name for name in SUITES if name in chosen]


def run_benchmark(quick=False, registry=None, progress=None, suites=None):
    """Run the measurements of ``suites`` (default: all of ``SUITES``); returns the JSON-able dict
    described in the module docstring, with the keys of the suites that ran.

    ``progress``: optional callable receiving one line per step (for the CLI's stderr).
    """
    from .inference import Classifier
    from .photo_proxy import catalogue_photo_accuracy
    from .registry import Registry, best_model_name, default_photo_model_name

    suites = _check_suites(suites)
    say = progress or (lambda line: None)
    started = time.perf_counter()
    registry = registry or Registry()
    settings = dict(QUICK if quick else FULL)
    result = {"date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), "quick": bool(quick),
              "machine": machine_info(), "settings": settings, "suites": suites}
    dataset, test_idx = None, None
    if set(suites) - {"ann", "real_photos", "catalogue_retrieval"}:
        entries = shipped_models(registry)
        if not entries:
            raise ModelNotFoundError(
                f"no Fashion-MNIST models in {registry.root}: train one first "
                "(`python -m fashion_core train --arch fashion_net`)."
            )
        dataset = load_fashion_mnist()
        test_idx = sample_indices(len(dataset.y_test), settings["test_images"])
        settings["test_images"] = int(len(test_idx))

    if "models" in suites:
        say(f"models: accuracy and batch throughput on {len(test_idx)} test images")
        result["models"], result["seed003"] = bench_models(registry, entries, dataset, test_idx, settings["repeats"])

    if "single_image" in suites:
        default = default_photo_model_name(registry)
        say(f"single-image latency of {default} ({settings['latency_calls']} calls)")
        result["single_image"] = bench_single_image(registry, default, dataset, settings["latency_calls"])

    best = best_model_name(registry, photo_models=False) if {"photo_proxy", "saliency"} & set(suites) else None
    if "photo_proxy" in suites:
        say("photo proxy: synthetic catalogue photos vs clean test images")
        photo = catalogue_photo_accuracy(Classifier.from_registry(best, registry=registry), dataset,
                                         n=settings["photo_images"], seed=0)
        result["photo_proxy"] = {"model": best, **photo, "target_ratio": TARGET_PHOTO_RATIO}

    if "calibration" in suites:
        say(f"calibration: ECE before / after the stored calibration on {len(test_idx)} test images")
        result["calibration"] = bench_calibration(registry, calibration_models(registry, entries), dataset, test_idx)

    if "saliency" in suites:
        say(f"saliency faithfulness of {best} on {settings['saliency_images']} test images")
        result["saliency"] = bench_saliency(registry, best, dataset, settings["saliency_images"])

    if "neighbours" in suites:
        say("nearest neighbours: precision@10 per encoder and query latency")
        result["neighbours"] = bench_neighbours(registry, dataset, settings["gallery_images"], settings["latency_calls"])
        settings["gallery_images"] = result["neighbours"]["gallery_images"]

    if "real_photos" in suites:
        say("real photos: the photo model and the best Fashion-MNIST model on the val split")
        result["real_photos"] = bench_photos(registry, settings["real_photos"])

    if "catalogue_retrieval" in suites:
        say("catalogue models: visual search precision@5 on their catalogue's test split")
        result["catalogue_retrieval"] = bench_catalogue_retrieval(registry)

    if "training" in suites:
        say(f"training throughput of fashion_net on {settings['training_images']} images")
        result["training"] = bench_training(dataset or load_fashion_mnist(), settings["training_images"])

    if "ann" in suites:
        say(f"approximate nearest neighbours: {settings['ann_vectors']:,} clustered {ANN_DIMS}-d vectors")
        result["ann"] = bench_ann(settings["ann_vectors"], settings["latency_calls"])
    result["seconds"] = time.perf_counter() - started
    return result


def merge_results(previous, result):
    """``previous`` (a saved bench result) with the keys of the suites ``result`` ran replaced:
    what ``bench --suite NAME --save FILE`` writes over an existing file."""
    merged = dict(previous or {})
    suite_keys = {"models": ("models", "seed003")}
    for name in result["suites"]:
        for key in suite_keys.get(name, (name,)):
            merged[key] = result[key]
    if set(result["suites"]) != set(SUITES):
        merged["suites"] = [name for name in SUITES if name in set(merged.get("suites") or SUITES) | set(result["suites"])]
        return merged
    return dict(result)


def _fmt(value, spec):
    return "-" if value is None else format(value, spec)


def format_report(result):
    """The human table of a ``run_benchmark`` result (the parts its suites measured)."""
    m, s = result["machine"], result["settings"]
    lines = [f"bench{' --quick' if result['quick'] else ''} on {m['cpu_count']} CPU(s), {m['platform']}, "
             f"TensorFlow {m['tensorflow']}, {result['date']}"]
    if "models" in result:
        lines.append(f"{'model':<24}{'arch':<22}{'test acc':>9}{'flip-TTA':>9}{'img/s':>10}{'vs seed003':>11}")
        for r in result["models"]:
            lines.append(f"{r['name']:<24}{r['arch']:<22}{r['test_accuracy']:>9.4f}{_fmt(r['flip_tta_accuracy'], '.4f'):>9}"
                         f"{r['images_per_second']:>10.0f}{r['speed_vs_seed003']:>10.2f}x")
        sd = result["seed003"]
        lines.append(f"  seed003 reference: {sd['images_per_second']:.0f} img/s ({sd['source']}); "
                     f"accuracy on {s['test_images']} test images")
    si = result.get("single_image")
    if si:
        lines.append(f"single image ({si['model']}, {si['inputs']} → probabilities): p50 {si['p50_ms']:.1f} ms, "
                     f"p95 {si['p95_ms']:.1f} ms over {si['calls']} calls (target p50 ≤ {si['target_p50_ms']:.0f} ms)")
    nb = result.get("neighbours")
    if nb:
        lines.append(f"neighbours ({nb['encoder']}: {nb['encoder_description']}): precision@{nb['k']} "
                     f"{nb['precision_at_k']:.4f} (target ≥ {nb['target_precision']}); top-{nb['k']} query over "
                     f"{nb['gallery_images']} images p50 {nb['query_p50_ms']:.2f} ms, p95 {nb['query_p95_ms']:.2f} ms "
                     f"(target ≤ {nb['target_p50_ms']:.0f} ms), recall vs brute force {nb['recall_vs_brute_force']:.3f}")
        for r in nb["per_encoder"]:
            lines.append(f"  {r['name']:<22}{r['description']:<48} precision@{nb['k']} {r['precision_at_k']:.4f}")
    an = result.get("ann")
    if an:
        t = an["targets"]
        lines.append(f"ann ({an['index']}): {an['n']:,} x {an['dims']}-d built in {an['build_seconds']:.1f} s, "
                     f"+{an['memory_mb']:.0f} MB; top-{an['k']} query p50 {an['query_ms_p50']:.3f} ms (target ≤ "
                     f"{t['query_ms_p50']:.0f} ms) vs exhaustive {an['exact_query_ms_p50']:.2f} ms; recall@10 "
                     f"{an['recall_at_10']:.3f} (target ≥ {t['recall_at_10']}) over {an['queries']} queries")
    ph = result.get("photo_proxy")
    if ph:
        lines.append(f"catalogue photos ({ph['model']}, n={ph['n']}): {ph['photo_accuracy']:.4f} vs clean "
                     f"{ph['clean_accuracy']:.4f} = {ph['ratio']:.1%} (target ≥ {ph['target_ratio']:.0%})")
    rp = result.get("real_photos") or {}
    if "skipped" in rp:
        lines.append(f"real photos: skipped ({rp['skipped']})")
    for r in rp.get("models", []):
        t = rp["targets"]
        lines.append(f"real photos, val split ({r['name']}{', photo model' if r['photo_model'] else ''}): "
                     f"catalogue {_fmt(r['domains']['catalogue']['accuracy'], '.1%')} (n={r['domains']['catalogue']['n']}, "
                     f"target ≥ {t['catalogue']:.0%}), phone {_fmt(r['domains']['phone']['accuracy'], '.1%')} "
                     f"(n={r['domains']['phone']['n']}, target ≥ {t['phone']:.0%}); 'other' flagged "
                     f"{_fmt(r['other_flagged'], '.1%')} (target ≥ {t['other_flagged']:.0%}), correct answers flagged "
                     f"{_fmt(r['correct_flagged'], '.1%')} (target ≤ {t['correct_flagged']:.0%})")
    cal = result.get("calibration")
    if cal:
        for r in cal["models"]:
            lines.append(f"calibration {r['name']:<22} ECE {r['ece_before']:.4f} → {r['ece']:.4f} "
                         f"({r.get('method') or 'not calibrated'}, temperature {_fmt(r['temperature'], '.3f')}; "
                         f"target ≤ {cal['target_ece']})")
    sal = result.get("saliency")
    if sal:
        lines.append(f"saliency ({sal['model']}, {sal['n']} test images): hiding the {sal['hide_fraction']:.0%} most salient "
                     f"pixels lowers the answer more than a random {sal['hide_fraction']:.0%} for "
                     f"{sal['share_salient_lowers_more']:.1%} of images with {sal['default_method']} "
                     f"(target ≥ {sal['target_share']:.0%})")
        for m in sal["methods"]:
            if "skipped" not in m:
                lines.append(f"  {m['method']:<10} {m['share_salient_lowers_more']:.1%}  mean drop salient "
                             f"{m['mean_drop_salient']:.3f} vs random {m['mean_drop_random']:.3f}  ({m['seconds']:.1f} s)")
    for r in result.get("catalogue_retrieval") or []:
        lines.append(f"catalogue search {r['name']}: " + (f"skipped ({r['skipped']})" if "skipped" in r else
                     f"precision@{r['k']} {r['precision_at_k']:.4f} ({r['queries']} test products vs "
                     f"{r['gallery_images']} training products, {r['dataset_name']})"))
    tr = result.get("training")
    if tr:
        lines.append(f"training fashion_net: {tr['images_per_second']:.0f} img/s (one epoch, {tr['images']} images, batch {tr['batch_size']})")
    lines.append(f"total {result['seconds']:.1f} s")
    return "\n".join(lines)
