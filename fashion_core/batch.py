"""Classify (and embed) a whole catalogue with Ray Data: ``python -m fashion_core batch``.

    python -m fashion_core batch SOURCE --model NAME --out DIR [--embed] [--address ADDR]
                                 [--workers N] [--batch-size B] [--json]

SOURCE is a folder (every image file under it), a ``path,label`` CSV (the catalogue format), a
glob (``'photos/**/*.jpg'``) or a single file, on this machine or at any fsspec URL (``s3://``,
``gs://`` when that filesystem's package is installed).

The paths go through Ray Data to ``workers`` actors; each actor loads the model once and reads,
decodes and preprocesses every file exactly as an upload is (``Classifier.classify_many``), so a
row's class and probability are ``classify --json``'s for the same file. The driver streams the
answers into Parquet:

- ``DIR/predictions/part-*.parquet``: ``path``, ``class_name``, ``probability``, ``flagged``,
  ``ood_score`` (and ``embedding``, a list of float32, with ``--embed``), one file per
  ``PART_ROWS`` rows, each written atomically;
- ``DIR/errors.parquet``: ``path``, ``reason`` for every file that could not be read or decoded;
- with ``--embed``, ``DIR/index.npz``: a faiss neighbour index over every embedding in DIR
  (``neighbours.NeighbourIndex.save``; exact or HNSW by size, with the rows' ``paths``, the
  ``class_names``, the ``model`` and the ``source``), rebuilt after each run so it covers resumed
  runs too, and recorded in the registry (``saved_indexes``) so the Latent space page can search
  the catalogue with it (``CatalogueIndex``).

Memory stays bounded: rows are written as they arrive, never collected. A rerun skips the paths
already in DIR, so a killed job resumes where its last part file ended, without duplicates.
"""

from __future__ import annotations

import glob
import os
import time
import uuid
from pathlib import Path

from .errors import DataError, FashionError, ImageError, InvalidParameterError
from .registry import write_file_atomic

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"}
PREDICTIONS = "predictions"
ERRORS = "errors.parquet"
INDEX = "index.npz"
INDEX_RECORDS = "_catalogue_indexes.json"  # in the registry folder: the saved indexes the dashboard offers
PART_ROWS = 5000
GLOB_CHARS = set("*?[")


def _pyarrow():
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise FashionError("batch needs the scale extras: pip install -r requirements-scale.txt") from None
    return pa, pq


# --- what to classify ---------------------------------------------------------------------------


def _is_image(name):
    base = os.path.basename(name)
    return not base.startswith(".") and os.path.splitext(base)[1].lower() in IMAGE_SUFFIXES


def _list_remote(source):
    try:
        import fsspec
    except ImportError:
        raise FashionError(f"{source}: reading URLs needs fsspec (and s3fs / gcsfs for s3:// / gs://).") from None
    try:
        fs, root = fsspec.core.url_to_fs(source)
        protocol = source.split("://", 1)[0]
        if GLOB_CHARS & set(root):
            found = fs.glob(root)
        elif fs.isdir(root):
            found = fs.find(root)
        else:
            found = [root] if fs.exists(root) else []
    except (ImportError, ValueError) as exc:
        raise FashionError(f"{source}: {exc}") from None
    except OSError as exc:
        raise DataError(f"{source}: cannot list it ({exc}).") from None
    return sorted(f"{protocol}://{p}" for p in found if _is_image(p))


def list_source(source):
    """The image paths (or URLs) of ``source``, sorted; ``DataError`` when there are none."""
    from .catalogue import read_csv_rows

    source = str(source)
    if "://" in source:
        paths = _list_remote(source)
    elif GLOB_CHARS & set(source):
        paths = sorted(p for p in glob.glob(os.path.expanduser(source), recursive=True)
                       if os.path.isfile(p) and _is_image(p))
    else:
        path = Path(source).expanduser()
        if path.is_dir():
            paths = sorted(str(Path(d) / f) for d, dirs, files in os.walk(path)
                           for f in files if _is_image(f) and not any(part.startswith(".") for part in Path(d).relative_to(path).parts))
        elif path.suffix.lower() == ".csv":
            rows, _skipped = read_csv_rows(path)
            paths = [str(row["file"]) for row in rows]
        elif path.is_file():
            paths = [str(path)]
        else:
            raise DataError(f"{source}: no such file or folder.")
    if not paths:
        raise DataError(f"{source}: no image files found (looked for {', '.join(sorted(IMAGE_SUFFIXES))}).")
    return paths


def read_bytes(path):
    """A file's bytes, local or at an fsspec URL, refused by size before it is read whole."""
    from .cli_classify import read_upload
    from .preprocess import check_upload_size

    if "://" not in path:
        return read_upload(path)
    import fsspec

    try:
        with fsspec.open(path, "rb") as handle:
            size = getattr(handle, "size", None)
            if size is not None:
                check_upload_size(size, path)
            return handle.read()
    except OSError as exc:
        raise ImageError(f"{path}: could not be read ({exc}).") from None


def done_paths(out):
    """The paths already answered in ``out`` (predictions and errors): a rerun skips them."""
    _pa, pq = _pyarrow()
    out = Path(out)
    done = set()
    files = sorted((out / PREDICTIONS).glob("part-*.parquet")) + ([out / ERRORS] if (out / ERRORS).exists() else [])
    for file in files:
        try:
            done.update(pq.read_table(file, columns=["path"]).column("path").to_pylist())
        except (OSError, ValueError) as exc:
            raise DataError(f"{file}: not a readable Parquet file ({exc}); move it away to start again.") from None
    return done


# --- the workers --------------------------------------------------------------------------------


class Predictor:
    """One Ray Data actor: the model loaded once, then batches of paths → answer columns."""

    def __init__(self, model, registry_root, embed=False):
        from .inference import Classifier
        from .registry import Registry

        registry = Registry(registry_root)
        self.classifier = Classifier.from_registry(model, registry=registry)
        self.embed = bool(embed)
        self.encoder = None
        if self.embed and not self.classifier.embeds:
            from .latent import encoder_for

            self.encoder = encoder_for(model, registry)[0]

    def _embeddings(self, inputs):
        import numpy as np

        if self.classifier.embeds:
            return self.classifier.embed(inputs)
        from .latent import embed

        return np.asarray(embed(self.encoder, inputs))

    def __call__(self, batch):
        import numpy as np

        paths = [str(p) for p in batch["path"]]
        items, reasons = [], {}
        for i, path in enumerate(paths):
            try:
                items.append((path, read_bytes(path)))
            except ImageError as exc:
                reasons[i] = str(exc)
        answers = iter(self.classifier.classify_many(items))
        results = [None if i in reasons else next(answers) for i in range(len(paths))]
        for i, result in enumerate(results):
            if isinstance(result, Exception):
                reasons[i], results[i] = str(result), None
        good = [i for i, r in enumerate(results) if r is not None]
        columns = {"path": paths, "error": [reasons.get(i, "") for i in range(len(paths))],
                   "class_name": [r.class_name if r else "" for r in results],
                   "probability": np.array([r.probability if r else np.nan for r in results], np.float64),
                   "flagged": np.array([bool(r.flagged) if r else False for r in results]),
                   "ood_score": np.array([np.nan if r is None or r.ood_score is None else r.ood_score for r in results],
                                         np.float64)}
        if self.embed:
            vectors = self._embeddings(np.stack([results[i].prepared.model_input for i in good])) if good else []
            by_row = dict(zip(good, vectors))
            columns["embedding"] = [np.asarray(by_row[i], np.float32).tolist() if i in by_row else [] for i in range(len(paths))]
        return columns


# --- the driver ---------------------------------------------------------------------------------


class _PartWriter:
    """Good rows → ``predictions/part-*.parquet``, ``PART_ROWS`` per file, each written to a
    temporary name and renamed (a killed job leaves whole files only)."""

    def __init__(self, out, embed):
        self.folder = Path(out) / PREDICTIONS
        self.folder.mkdir(parents=True, exist_ok=True)
        self.embed, self.rows, self.parts = embed, [], 0

    def add(self, rows):
        self.rows.extend(rows)
        while len(self.rows) >= PART_ROWS:
            self._write(self.rows[:PART_ROWS])
            self.rows = self.rows[PART_ROWS:]

    def close(self):
        if self.rows:
            self._write(self.rows)
            self.rows = []

    def _write(self, rows):
        pa, pq = _pyarrow()
        fields = [("path", pa.string()), ("class_name", pa.string()), ("probability", pa.float64()),
                  ("flagged", pa.bool_()), ("ood_score", pa.float64())]
        if self.embed:
            fields.append(("embedding", pa.list_(pa.float32())))
        schema = pa.schema(fields)
        table = pa.Table.from_pylist(rows, schema=schema)
        name = f"part-{time.strftime('%Y%m%d%H%M%S')}-{uuid.uuid4().hex[:8]}.parquet"
        write_file_atomic(self.folder / name, lambda handle: pq.write_table(table, handle))
        self.parts += 1


def _write_errors(out, new_errors):
    pa, pq = _pyarrow()
    path = Path(out) / ERRORS
    old = pq.read_table(path).to_pylist() if path.exists() else []
    table = pa.Table.from_pylist(old + new_errors, schema=pa.schema([("path", pa.string()), ("reason", pa.string())]))
    write_file_atomic(path, lambda handle: pq.write_table(table, handle))


def build_index(out, class_names, model="", source=""):
    """The neighbour index over every embedding in ``out``'s part files, saved as ``out/index.npz``
    (labels: class indices in ``class_names``; ``model`` and ``source`` kept with it); returns
    ``(path, rows)``, or None without embeddings."""
    import numpy as np

    from .neighbours import NeighbourIndex

    pa, pq = _pyarrow()
    parts = sorted((Path(out) / PREDICTIONS).glob("part-*.parquet"))
    if not parts:
        return None
    if any("embedding" not in pq.read_schema(part).names for part in parts):
        raise DataError(f"{out} holds rows without embeddings (a run without --embed): give --embed runs their own --out.")
    table = pa.concat_tables([pq.read_table(part, columns=["path", "class_name", "embedding"]) for part in parts])
    column = table.column("embedding").combine_chunks()
    vectors = np.asarray(column.flatten(), np.float32).reshape(len(column), -1)  # no Python lists
    position = {name: i for i, name in enumerate(class_names)}
    labels = np.array([position.get(name, -1) for name in table.column("class_name").to_pylist()], np.int64)
    index = NeighbourIndex(vectors, labels)
    path = index.save(Path(out) / INDEX, paths=np.array(table.column("path").to_pylist()),
                      class_names=np.array(list(class_names)), model=np.array(str(model)), source=np.array(str(source)))
    return path, len(index)


def record_index(registry, path, model, source, rows):
    """Add (or refresh) a saved index in the registry's list of catalogue indexes."""
    from .registry import write_json_atomic

    path = str(Path(path).resolve())
    kept = [r for r in _index_records(registry) if r.get("path") != path]
    record = {"path": path, "model": model, "source": str(source), "rows": int(rows),
              "created_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    write_json_atomic(Path(registry.root) / INDEX_RECORDS, [record, *kept])
    return record


def _index_records(registry):
    import json

    try:
        records = json.loads((Path(registry.root) / INDEX_RECORDS).read_text())
    except (OSError, ValueError):
        return []
    return [r for r in records if isinstance(r, dict) and isinstance(r.get("path"), str)] if isinstance(records, list) else []


def saved_indexes(registry, model=None):
    """The catalogue indexes ``batch --embed`` saved whose file is still there (newest first),
    each ``{"path", "model", "source", "rows", "created_at"}``; only ``model``'s when given."""
    return [r for r in _index_records(registry)
            if (model is None or r.get("model") == model) and Path(r["path"]).is_file()]


class CatalogueIndex:
    """A saved catalogue index (``DIR/index.npz``) with its rows' paths and classes: what the
    Latent space page searches. Query vectors must come from the index's ``model``, embedded as
    ``batch`` embedded the catalogue (``latent.embed`` of its ``encoder_for``)."""

    def __init__(self, path):
        from .neighbours import NeighbourIndex

        self.path = Path(path)
        self.index, extra = NeighbourIndex.load(self.path)
        self.paths = extra.get("paths")
        if self.paths is None or len(self.paths) != len(self.index):
            raise DataError(f"{path}: not an index written by batch --embed (no path for each row).")
        self.class_names = [str(c) for c in extra.get("class_names", [])]
        self.model = str(extra.get("model", ""))
        self.source = str(extra.get("source", ""))

    def __len__(self):
        return len(self.index)

    def class_of(self, row):
        label = int(self.index.labels[row])
        return self.class_names[label] if 0 <= label < len(self.class_names) else "?"

    def search(self, vector, k=8, exclude=None):
        """``[(row, path, class_name, distance)]`` of the ``k`` nearest catalogue photos."""
        distances, found = self.index.query(vector, k=k, exclude=[-1 if exclude is None else exclude])
        return [(int(r), str(self.paths[r]), self.class_of(r), float(d)) for r, d in zip(found[0], distances[0])]


def run_batch(source, model, out, embed=False, address=None, workers=None, batch_size=64, progress=None,
              registry_root=None):
    """Classify every image of ``source`` with registry model ``model`` into ``out``; returns
    ``{"rows", "errors", "skipped", "seconds", "images_per_second", "workers", "out"}``."""
    from .cluster import cpu_share, init_ray
    from .registry import Registry

    started = time.perf_counter()
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or not 1 <= batch_size <= 4096:
        raise InvalidParameterError(f"--batch-size must be a whole number from 1 to 4096; got {batch_size!r}.")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or not 1 <= workers <= 1024):
        raise InvalidParameterError(f"--workers must be a whole number from 1 to 1024; got {workers!r}.")
    _pyarrow()
    registry = Registry(registry_root)
    registry.get(model)  # an unknown model fails before anything starts
    paths = list_source(source)
    done = done_paths(out)
    todo = [p for p in paths if p not in done]
    say = progress or (lambda line: None)
    summary = {"rows": 0, "errors": 0, "skipped": len(paths) - len(todo), "out": str(out)}
    if not todo:
        say(f"all {len(paths)} images of {source} are already in {out}")
        return {**summary, "seconds": time.perf_counter() - started, "images_per_second": 0.0, "workers": 0}

    import ray

    init_ray(address)
    workers = workers or max(1, int(ray.cluster_resources().get("CPU", 1.0)))
    per_worker = cpu_share(workers, fraction=0.9)  # and a little left for Ray Data's own tasks
    dataset = ray.data.from_items([{"path": p} for p in todo], override_num_blocks=max(1, min(len(todo) // batch_size, 2000)))
    answered = dataset.map_batches(Predictor, fn_constructor_args=(model, str(registry.root), embed),
                                   batch_size=batch_size, compute=ray.data.ActorPoolStrategy(size=workers),
                                   num_cpus=per_worker)
    writer, errors, seen = _PartWriter(out, embed), [], 0
    for batch in answered.iter_batches(batch_size=None, batch_format="pandas"):
        rows = batch.to_dict("records")
        good = [{k: v for k, v in r.items() if k != "error"} for r in rows if not r["error"]]
        for row in good:
            if row.get("ood_score") != row.get("ood_score"):  # NaN: the model has no OOD score
                row["ood_score"] = None
            if embed:
                row["embedding"] = [float(v) for v in row["embedding"]]
        writer.add(good)
        errors += [{"path": r["path"], "reason": r["error"]} for r in rows if r["error"]]
        seen += len(rows)
        elapsed = time.perf_counter() - started
        say(f"{seen:,}/{len(todo):,} images ({seen / elapsed:.1f}/s), {len(errors)} unreadable")
    writer.close()
    if errors:
        _write_errors(out, errors)
    if embed:
        say("building the neighbour index of the embeddings")
        built = build_index(out, registry.get(model).metadata.get("class_names") or [], model=model, source=source)
        if built:
            path, rows = built
            record_index(registry, path, model, source, rows)
    seconds = time.perf_counter() - started
    return {**summary, "rows": seen - len(errors), "errors": len(errors), "seconds": seconds,
            "images_per_second": seen / seconds, "workers": workers}
