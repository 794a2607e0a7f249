"""Background jobs: training, cross-validation and sweeps that run outside the page script.

A job's whole state lives on disk next to the registry (``models/_jobs/<id>/``), so every
session, tab and page of the server — and a server started again after a crash — reads the same
facts::

    models/_jobs/<id>/job.json   kind, title, owner, params, state, times, progress, history,
                                 result or error (written atomically, by one writer at a time)
    models/_jobs/<id>/cancel     present once someone asked to cancel (a marker, never a write
                                 to job.json, so a cancel can never overwrite progress)
    models/_jobs/<id>/log.txt    one line per event; the traceback of an unexpected failure
    models/_jobs/runner.lock     held (``flock``) by the runner while it runs a job
    models/_jobs/state.lock      held for a moment around every change of state

States: ``queued`` → ``running`` → ``done`` | ``cancelled`` | ``failed``; ``queued`` →
``cancelled``; a ``running`` job whose worker process is gone (pid + process start time) reads
as ``interrupted`` and is stored so by the next runner. ``JobRunner`` takes queued jobs
first-in first-out and runs one at a time (``runner.lock`` makes that one per registry even with
several server processes). What a job does is a row of ``JOB_KINDS``: a function
``(params, progress, registry) -> result dict``. Why a thread, why the pid check, why anyone may
cancel: docs/JOBS.md.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import shutil
import socket
import threading
import time
import traceback
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

from .errors import FashionError, InvalidNameError, InvalidParameterError
from .registry import JOBS_DIR, Registry, write_json_atomic
from .training import TrainConfig, TrainingCancelled, TrainingProgress, sweep_grid

try:  # POSIX: the kernel drops the lock when its process dies, whatever the cause
    import fcntl
except ImportError:  # pragma: no cover - Windows: one server process per registry, no cross-process lock
    fcntl = None

JOB_FILE, CANCEL_FILE, LOG_FILE = "job.json", "cancel", "log.txt"
RUNNER_LOCK, STATE_LOCK = "runner.lock", "state.lock"
QUEUED, RUNNING, DONE, CANCELLED, FAILED, INTERRUPTED = "queued", "running", "done", "cancelled", "failed", "interrupted"
ACTIVE = (QUEUED, RUNNING)
ENDED = (DONE, CANCELLED, FAILED, INTERRUPTED)
KEEP_ENDED = 50  # finished jobs kept on disk (older ones are removed when a job is submitted)
PROGRESS_WRITE_SECONDS = 1.0  # batch progress is written at most this often (epoch ends always)
CANCEL_CHECK_SECONDS = 0.5


class JobCancelled(Exception):
    """Raised inside a job when its cancel request is seen: the job stops and keeps nothing."""


def _now():
    return time.time()


def _iso(seconds):
    return _dt.datetime.fromtimestamp(seconds, _dt.timezone.utc).isoformat(timespec="seconds") if seconds else None


def _process_identity(pid=None):
    """``{pid, started, host}`` of a process (this one by default): the start time tells a live
    process from a later one that reuses its pid."""
    import psutil

    process = psutil.Process(pid or os.getpid())
    return {"pid": process.pid, "started": process.create_time(), "host": socket.gethostname()}


def worker_alive(worker):
    """True when the process described by ``worker`` (``_process_identity``) still runs.

    A worker on another host cannot be checked and counts as alive."""
    import psutil

    if not worker:
        return False
    if worker.get("host") not in (None, socket.gethostname()):
        return True
    try:
        process = psutil.Process(int(worker["pid"]))
        same = abs(process.create_time() - float(worker["started"])) < 1e-3
        return same and process.status() != psutil.STATUS_ZOMBIE  # killed, not yet reaped: gone
    except (psutil.Error, KeyError, TypeError, ValueError):
        return False


@contextlib.contextmanager
def _flock(path, blocking=True):
    """An exclusive ``flock`` on ``path`` (created if needed); yields False when ``blocking`` is
    off and another holder has it. Each call opens its own file, so two threads of one process
    exclude each other too."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        if fcntl is None:
            yield True
            return
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# --- job kinds -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class JobKind:
    """What one kind of job does.

    ``run(params, progress, registry) -> result dict`` (JSON-serialisable); ``check(params,
    registry)`` raises a ``FashionError`` for parameters that cannot work, at submit time;
    ``title(params)`` names the job in lists; ``target(params)`` is the model name it registers
    (None when it registers none), so two jobs never race for one name; ``runs(params)`` labels
    the successive training runs of one job (folds, sweep combinations)."""

    label: str
    run: object
    check: object
    title: object
    target: object = lambda params: None
    runs: object = lambda params: []


def _config(params):
    try:
        return TrainConfig(**params["config"]).resolve()
    except TypeError as exc:
        raise InvalidParameterError(f"bad training settings: {exc}.") from None


def _dataset(params):
    from .loaders import load_dataset

    return load_dataset(params.get("dataset"))


def _check_train(params, registry):
    _config(params)
    registry.check_name_free(params.get("name"))


def _run_train(params, progress, registry):
    from .runs import train_and_save

    entry, result, evaluation = train_and_save(_dataset(params), _config(params), params["name"],
                                               registry=registry, progress=progress)
    return {"model": entry.name, "accuracy": evaluation["accuracy"], "loss": evaluation["loss"],
            "macro_f1": evaluation["macro_f1"], "seconds": result.train_seconds, "history": result.history}


def _check_cv(params, registry):
    _config(params)
    folds = params.get("folds")
    if isinstance(folds, bool) or not isinstance(folds, int) or not 2 <= folds <= 20:
        raise InvalidParameterError(f"folds must be a whole number between 2 and 20; got {folds!r}.")


def _run_cv(params, progress, registry):
    from .training import cross_validate

    data = _dataset(params)
    return {**cross_validate(data, _config(params), folds=params["folds"], progress=progress), "dataset_name": data.name}


def _check_sweep(params, registry):
    base = _config(params)
    if not params.get("optimizers") or not params.get("learning_rates"):
        raise InvalidParameterError("a sweep needs at least one optimizer and one learning rate.")
    for optimizer, rate in sweep_grid(params["optimizers"], params["learning_rates"]):
        TrainConfig(**{**asdict(base), "optimizer": optimizer, "learning_rate": rate}).resolve()


def _run_sweep(params, progress, registry):
    from .training import sweep

    data = _dataset(params)
    result = sweep(data, _config(params), optimizers=params["optimizers"],
                   learning_rates=params["learning_rates"], progress=progress)
    return {**result, "dataset_name": data.name}


def _check_finetune(params, registry):
    from pathlib import Path

    registry.get(params.get("base"))  # a clear error for an unknown base
    registry.check_name_free(params.get("name"))
    if not Path(str(params.get("data_csv") or "")).is_file():
        raise InvalidParameterError(f"{params.get('data_csv')}: no such corrections file.")


def _run_finetune(params, progress, registry):
    from .finetune import finetune_job

    return finetune_job(params, progress, registry)


def _arch_title(params):
    from . import zoo

    arch = (params.get("config") or {}).get("arch")
    return zoo.ARCHITECTURES[arch].title if arch in zoo.ARCHITECTURES else str(arch)


JOB_KINDS = {
    "train": JobKind("Training", _run_train, _check_train, title=lambda p: p["name"], target=lambda p: p["name"]),
    "cv": JobKind("Cross-validation", _run_cv, _check_cv,
                  title=lambda p: f"{p['folds']}-fold CV · {_arch_title(p)}",
                  runs=lambda p: [f"Fold {i + 1}/{p['folds']}" for i in range(p["folds"])]),
    "sweep": JobKind("Sweep", _run_sweep, _check_sweep,
                     title=lambda p: f"Sweep · {_arch_title(p)}",
                     runs=lambda p: [f"Run {i + 1}/{len(g)} ({o}, lr {r:g})"
                                     for g in [sweep_grid(p["optimizers"], p["learning_rates"])]
                                     for i, (o, r) in enumerate(g)]),
    "finetune": JobKind("Fine-tuning", _run_finetune, _check_finetune,
                        title=lambda p: f"{p['name']} (from {p['base']})", target=lambda p: p["name"]),
}


def train_params(dataset_spec, config, name):
    """The ``params`` of a "train" job: the dataset's recipe (never its arrays), the settings,
    the model name."""
    return {"dataset": dict(dataset_spec), "config": asdict(config), "name": name}


# --- the job view --------------------------------------------------------------------------------


@dataclass
class Job:
    """One job as read from disk (``JobStore.get``): the stored record, with ``state`` already
    ``interrupted`` when it says running but its worker process is gone."""

    record: dict
    cancel_requested: bool = False

    def __getattr__(self, name):
        try:
            return self.__dict__["record"][name]
        except KeyError:
            raise AttributeError(name) from None

    @property
    def state(self):
        return self.record["state"]

    @property
    def ended(self):
        return self.state in ENDED

    @property
    def label(self):
        kind = JOB_KINDS.get(self.record["kind"])
        return kind.label if kind else self.record["kind"]

    @property
    def progress(self):
        return self.record.get("progress") or {}

    def fraction_done(self):
        """Share of the whole job done (all runs and stages), 0..1."""
        p = self.progress
        if not p:
            return 1.0 if self.state == DONE else 0.0
        epochs, steps = max(1, p.get("epochs", 1)), max(1, p.get("steps", 1))
        in_stage = min(1.0, (p.get("epoch", 0) * steps + p.get("batch", 0)) / (epochs * steps))
        runs = max(1, p.get("runs", 1))
        return min(1.0, (max(0, p.get("run", 1) - 1) + in_stage) / runs)

    def eta_seconds(self, now=None):
        """Seconds left in the current stage, from its pace so far; None when unknown."""
        p = self.progress
        if self.state != RUNNING or not p.get("stage_started"):
            return None
        epochs, steps = max(1, p.get("epochs", 1)), max(1, p.get("steps", 1))
        done = min(1.0, (p.get("epoch", 0) * steps + p.get("batch", 0)) / (epochs * steps))
        if done <= 0:
            return None
        elapsed = p["updated"] - p["stage_started"]
        return max(0.0, elapsed / done * (1 - done) - ((now or _now()) - p["updated"]))


# --- the store -----------------------------------------------------------------------------------


class JobStore:
    """The jobs of one registry, on disk. Any number of stores (sessions, tabs, processes) on the
    same folder see the same jobs; every change of state happens under ``state.lock``."""

    def __init__(self, root):
        self.root = Path(root)

    @classmethod
    def for_registry(cls, registry=None):
        return cls((registry or Registry()).root / JOBS_DIR)

    # --- reading ---------------------------------------------------------------------------------

    def _folder(self, job_id):
        if not isinstance(job_id, str) or not job_id or "/" in job_id or job_id.startswith("."):
            raise InvalidNameError(f"invalid job id {job_id!r}.")
        return self.root / job_id

    def _read(self, folder):
        try:
            record = json.loads((folder / JOB_FILE).read_text())
        except (OSError, ValueError):
            return None
        return record if isinstance(record, dict) and "state" in record else None

    def _view(self, folder, record):
        record = dict(record)
        if record["state"] == RUNNING and not worker_alive(record.get("worker")):
            record["state"] = INTERRUPTED
            record["error"] = record.get("error") or "the server stopped while this job was running; nothing was saved."
        return Job(record, cancel_requested=(folder / CANCEL_FILE).exists())

    def get(self, job_id):
        """The job ``job_id``; ``InvalidNameError`` when there is none."""
        folder = self._folder(job_id)
        record = self._read(folder)
        if record is None:
            raise InvalidNameError(f"no job {job_id!r}.")
        return self._view(folder, record)

    def list(self):
        """Every job, oldest first (submission order)."""
        if not self.root.is_dir():
            return []
        jobs = []
        for folder in sorted(self.root.iterdir()):
            if folder.is_dir() and not folder.name.startswith("."):
                record = self._read(folder)
                if record is not None:
                    jobs.append(self._view(folder, record))
        return sorted(jobs, key=lambda job: (job.record.get("submitted_at") or 0, job.id))

    def queue(self):
        """Queued jobs in the order they will run (position 1 runs next)."""
        return [job for job in self.list() if job.state == QUEUED]

    def position(self, job_id):
        """1-based place of a queued job in the queue; 0 for the running job; None otherwise."""
        job = self.get(job_id)
        if job.state == RUNNING:
            return 0
        ids = [j.id for j in self.queue()]
        return ids.index(job_id) + 1 if job_id in ids else None

    def running(self):
        return next((job for job in self.list() if job.state == RUNNING), None)

    def log(self, job_id):
        try:
            return (self._folder(job_id) / LOG_FILE).read_text()
        except OSError:
            return ""

    # --- writing ---------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self):
        with _flock(self.root / STATE_LOCK):
            yield

    def _write(self, record):
        write_json_atomic(self._folder(record["id"]) / JOB_FILE, record)

    def _log(self, job_id, line):
        with open(self._folder(job_id) / LOG_FILE, "a") as handle:
            handle.write(f"{_iso(_now())} {line}\n")

    def submit(self, kind, params, owner=None, registry=None):
        """Check ``params`` (``JobKind.check``), queue a job and return it. A second active job
        that would register the same model name is refused."""
        if kind not in JOB_KINDS:
            raise InvalidParameterError(f"unknown job kind {kind!r}; choose one of: {', '.join(JOB_KINDS)}.")
        spec = JOB_KINDS[kind]
        registry = registry or Registry(self.root.parent)
        spec.check(params, registry)
        target = spec.target(params)
        json.dumps(params)  # params must be JSON (a recipe, settings), never arrays
        now = _now()
        job_id = f"{_dt.datetime.fromtimestamp(now, _dt.timezone.utc):%Y%m%d-%H%M%S-%f}-{uuid.uuid4().hex[:4]}"
        record = {"id": job_id, "kind": kind, "title": spec.title(params), "owner": owner, "params": params,
                  "target": target, "state": QUEUED, "submitted_at": now, "started_at": None, "ended_at": None,
                  "worker": None, "progress": {}, "history": {}, "result": None, "error": None}
        with self._locked():
            if target and any(j.state in ACTIVE and j.record.get("target") == target for j in self.list()):
                raise InvalidNameError(f"a job that will save a model named {target!r} is already queued or running.")
            self._folder(job_id).mkdir(parents=True)
            self._write(record)
            self._log(job_id, f"queued by {owner or 'someone'}: {record['title']}")
        self.prune()
        return self.get(job_id)

    def cancel(self, job_id):
        """Cancel a job: a queued one at once, a running one at its next batch (nothing is saved
        either way). Returns the job; an ended job is left as it is."""
        folder = self._folder(job_id)
        with self._locked():
            job = self.get(job_id)
            if job.state == QUEUED:
                record = {**job.record, "state": CANCELLED, "ended_at": _now(), "error": "cancelled before it started."}
                self._write(record)
                self._log(job_id, "cancelled while queued")
            elif job.state == RUNNING:
                (folder / CANCEL_FILE).touch()
                self._log(job_id, "cancel requested")
        return self.get(job_id)

    def cancel_requested(self, job_id):
        return (self._folder(job_id) / CANCEL_FILE).exists()

    def mark_interrupted(self):
        """Store ``interrupted`` for every job that reads so (its worker is gone). Returns their ids."""
        ids = []
        if not self.root.is_dir():
            return ids
        with self._locked():
            for job in self.list():
                stored = self._read(self._folder(job.id))
                if job.state == INTERRUPTED and stored and stored["state"] == RUNNING:
                    self._write({**job.record, "ended_at": job.ended_at or _now()})
                    self._log(job.id, "interrupted: its server process is gone")
                    ids.append(job.id)
        return ids

    def claim_next(self):
        """Move the oldest queued job to ``running`` in this process; returns it or None."""
        with self._locked():
            for job in self.queue():
                if self.cancel_requested(job.id):
                    continue
                record = {**job.record, "state": RUNNING, "started_at": _now(), "worker": _process_identity()}
                self._write(record)
                self._log(job.id, f"started by pid {record['worker']['pid']}")
                return self.get(job.id)
        return None

    def finish(self, job_id, state, result=None, error=None):
        """End a running job as ``done``, ``cancelled`` or ``failed``."""
        with self._locked():
            record = self._read(self._folder(job_id))
            record.update(state=state, ended_at=_now(), result=result, error=error)
            self._write(record)
            self._log(job_id, state + (f": {error}" if error else ""))

    def update_progress(self, job_id, progress, history):
        """Store a running job's progress (only its runner writes a running job's file)."""
        record = self._read(self._folder(job_id))
        if record is not None and record["state"] == RUNNING:
            record.update(progress=progress, history=history)
            self._write(record)

    def prune(self, keep=KEEP_ENDED):
        """Remove all but the ``keep`` most recent ended jobs."""
        ended = [job for job in self.list() if job.ended]
        for job in ended[:max(0, len(ended) - keep)]:
            shutil.rmtree(self._folder(job.id), ignore_errors=True)


# --- progress ------------------------------------------------------------------------------------


class JobProgress(TrainingProgress):
    """Writes a running job's progress to its file: every stage start and epoch end, batches at
    most every ``PROGRESS_WRITE_SECONDS``; and stops the job when a cancel is requested.

    ``should_stop`` raises ``JobCancelled`` rather than returning True: ``train`` would keep a
    model stopped that way (``TrainResult.cancelled``), and a cancelled job keeps nothing. It is
    also checked between stages and folds (``on_stage_begin``) and before saving
    (``runs.train_and_save``)."""

    def __init__(self, store, job_id, run_labels=(), first_stage=None):
        self.store, self.job_id = store, job_id
        self.run_labels = list(run_labels)
        self.first_stage = first_stage
        self.run = 0
        self.history = {}
        self.state = {}
        self._last_write = self._last_check = 0.0

    def _check_cancel(self, force=False):
        now = time.monotonic()
        if force or now - self._last_check >= CANCEL_CHECK_SECONDS:
            self._last_check = now
            if self.store.cancel_requested(self.job_id):
                raise JobCancelled("cancelled")

    def _write(self, force=False):
        now = time.monotonic()
        if force or now - self._last_write >= PROGRESS_WRITE_SECONDS:
            self._last_write = now
            self.state["updated"] = _now()
            self.store.update_progress(self.job_id, dict(self.state), self.history)

    def on_stage_begin(self, stage, epochs, steps_per_epoch):
        self._check_cancel(force=True)
        if self.first_stage is None:
            self.first_stage = stage
        if stage == self.first_stage:
            self.run += 1
            self.history = {}
        self.history[stage] = {}
        runs = max(1, len(self.run_labels))
        label = self.run_labels[min(self.run, runs) - 1] if self.run_labels else ""
        self.state = {"stage": stage, "epoch": 0, "epochs": max(1, int(epochs)), "batch": 0,
                      "steps": max(1, int(steps_per_epoch or 1)), "run": self.run, "runs": runs,
                      "run_label": label, "stage_started": _now()}
        self._write(force=True)

    def on_batch_end(self, stage, epoch, batch, logs):
        self.state.update(epoch=epoch, batch=batch + 1)
        self._write()

    def on_epoch_end(self, stage, epoch, logs):
        for key, value in logs.items():
            self.history.setdefault(stage, {}).setdefault(key, []).append(float(value))
        self.state.update(epoch=epoch + 1, batch=0)
        self._write(force=True)

    def should_stop(self):
        self._check_cancel()
        return False


# --- the runner ----------------------------------------------------------------------------------


class JobRunner:
    """Runs the queued jobs of one store, first-in first-out, one at a time, in a daemon thread.

    ``start()`` once per server process (the dashboard: ``ui/jobs.py``); ``run_next()`` runs one
    job synchronously (tests, scripts). A job ends ``done`` (its result stored), ``cancelled``
    (``JobCancelled`` / ``TrainingCancelled``), or ``failed`` (any other exception: its message,
    the traceback in ``log.txt``). Saves are the registry's atomic ones, so a job killed with its
    server leaves nothing half-saved; it reads as interrupted afterwards."""

    def __init__(self, store, registry=None, poll_seconds=1.0):
        self.store = store
        self.registry = registry or Registry(store.root.parent)
        self.poll_seconds = poll_seconds
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = None

    def start(self):
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name="fashion-jobs", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout=30):
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def alive(self):
        return self._thread is not None and self._thread.is_alive()

    def wake(self):
        """Look at the queue now (called after a submit) instead of at the next poll."""
        self._wake.set()

    def _loop(self):
        while not self._stop.is_set():
            try:
                ran = self.run_next(blocking=False)
            except Exception:  # never let the worker die: the next poll tries again
                ran = None
            if ran is None:
                self._wake.wait(self.poll_seconds)
                self._wake.clear()

    def run_next(self, blocking=True):
        """Claim and run the oldest queued job; returns the ended ``Job`` or None (no job, or
        another runner holds ``runner.lock`` and ``blocking`` is off)."""
        if not self.store.root.is_dir():
            return None
        with _flock(self.store.root / RUNNER_LOCK, blocking=blocking) as held:
            if not held:
                return None
            self.store.mark_interrupted()
            job = self.store.claim_next()
            if job is None:
                return None
            self._run(job)
            return self.store.get(job.id)

    def _run(self, job):
        kind = JOB_KINDS.get(job.kind)
        progress = JobProgress(self.store, job.id, run_labels=kind.runs(job.params) if kind else ())
        try:
            if kind is None:
                raise InvalidParameterError(f"unknown job kind {job.kind!r}.")
            result = kind.run(job.params, progress, self.registry)
        except (JobCancelled, TrainingCancelled):
            self.store.finish(job.id, CANCELLED, error="cancelled while running; nothing was saved.")
        except FashionError as exc:
            self.store.finish(job.id, FAILED, error=str(exc))
        except Exception as exc:
            message = str(exc).splitlines()[0] if str(exc) else ""
            self.store._log(job.id, traceback.format_exc())
            self.store.finish(job.id, FAILED, error=f"{type(exc).__name__}: {message}"[:500])
        else:  # a cancel that came after the save (or after the last fold) is too late: done
            self.store.finish(job.id, DONE, result=result)
