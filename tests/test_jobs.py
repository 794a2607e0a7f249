"""Background jobs (``fashion_core.jobs``): state transitions, the queue, cancel, failures, a dead
server's job, and two sessions (two stores) seeing one job. Fake job kinds, no TensorFlow, except
the two slow tests that run the real "train" kind."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest

from fashion_core import jobs
from fashion_core.errors import DataError, FashionError, InvalidNameError, InvalidParameterError
from fashion_core.jobs import JobKind, JobRunner, JobStore


def _stages(progress, epochs=2, steps=3, stop=None):
    """Report a one-stage "training" of ``epochs`` x ``steps`` batches; wait on ``stop`` (an
    Event) in the first batch when given, checking ``should_stop`` like a Keras callback."""
    progress.on_stage_begin("classifier", epochs, steps)
    for epoch in range(epochs):
        for batch in range(steps):
            if stop is not None:
                while not stop.is_set():
                    progress.should_stop()
                    time.sleep(0.01)
            progress.on_batch_end("classifier", epoch, batch, {})
            progress.should_stop()
        progress.on_epoch_end("classifier", epoch, {"loss": 1.0 / (epoch + 1), "accuracy": 0.5})


def _fake_run(params, progress, registry):
    if params.get("fail") == "data":
        raise DataError("the catalogue folder is gone.")
    if params.get("fail") == "bug":
        raise RuntimeError("boom")
    _stages(progress, stop=params.get("_stop") and STOP)
    return {"answer": params.get("answer", 42)}


STOP = threading.Event()
CHECKED = []


def _fake_check(params, registry):
    CHECKED.append(params)
    if params.get("bad"):
        raise InvalidParameterError("bad value.")


@pytest.fixture()
def store(registry, monkeypatch):
    monkeypatch.setitem(jobs.JOB_KINDS, "fake", JobKind("Fake", _fake_run, _fake_check, title=lambda p: p.get("title", "fake"),
                                                        target=lambda p: p.get("target")))
    monkeypatch.setattr(jobs, "PROGRESS_WRITE_SECONDS", 0.0)
    monkeypatch.setattr(jobs, "CANCEL_CHECK_SECONDS", 0.0)
    STOP.clear()
    return JobStore.for_registry(registry)


def _wait(predicate, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError("timed out")


def test_a_job_goes_queued_running_done(store, registry):
    job = store.submit("fake", {"answer": 7, "title": "my job"}, owner="alice")
    assert job.state == "queued" and job.owner == "alice" and job.title == "my job" and job.label == "Fake"
    assert store.position(job.id) == 1
    ended = JobRunner(store, registry).run_next()
    assert ended.id == job.id and ended.state == "done"
    assert ended.result == {"answer": 7}
    assert ended.started_at >= ended.submitted_at and ended.ended_at >= ended.started_at
    assert ended.history["classifier"]["loss"] == [1.0, 0.5]  # per-epoch metrics, written as it ran
    assert ended.progress["epoch"] == 2 and ended.fraction_done() == 1.0
    assert store.position(job.id) is None
    assert "queued by alice" in store.log(job.id) and "done" in store.log(job.id)
    assert JobRunner(store, registry).run_next() is None  # nothing left


def test_the_queue_runs_first_in_first_out_with_positions(store, registry):
    first, second, third = (store.submit("fake", {"answer": i}) for i in range(3))
    assert [store.position(j.id) for j in (first, second, third)] == [1, 2, 3]
    assert [j.id for j in store.queue()] == [first.id, second.id, third.id]
    runner = JobRunner(store, registry)
    assert runner.run_next().id == first.id
    assert [store.position(j.id) for j in (second, third)] == [1, 2]
    assert runner.run_next().id == second.id


def test_bad_parameters_are_refused_at_submit(store):
    with pytest.raises(InvalidParameterError, match="bad value"):
        store.submit("fake", {"bad": True})
    with pytest.raises(InvalidParameterError, match="unknown job kind"):
        store.submit("nope", {})
    assert store.list() == []


def test_two_jobs_never_target_the_same_model_name(store, registry):
    store.submit("fake", {"target": "shirt_net"})
    with pytest.raises(InvalidNameError, match="already queued or running"):
        store.submit("fake", {"target": "shirt_net"})
    JobRunner(store, registry).run_next()
    store.submit("fake", {"target": "shirt_net"})  # the first one has ended


def test_cancel_a_queued_job(store, registry):
    job = store.submit("fake", {})
    later = store.submit("fake", {})
    assert store.cancel(job.id).state == "cancelled"
    assert store.position(later.id) == 1
    assert JobRunner(store, registry).run_next().id == later.id
    assert store.get(job.id).state == "cancelled"


def test_cancel_a_running_job_stops_it_and_keeps_nothing(store, registry):
    job = store.submit("fake", {"_stop": True})
    runner = JobRunner(store, registry, poll_seconds=0.05).start()
    try:
        _wait(lambda: store.get(job.id).state == "running")
        assert store.position(job.id) == 0 and store.running().id == job.id
        assert store.cancel(job.id).cancel_requested
        _wait(lambda: store.get(job.id).ended)
    finally:
        runner.stop()
    ended = store.get(job.id)
    assert ended.state == "cancelled" and ended.result is None
    assert "nothing was saved" in ended.error
    assert registry.names() == []


def test_a_failing_job_says_why_and_the_runner_goes_on(store, registry):
    data = store.submit("fake", {"fail": "data"})
    bug = store.submit("fake", {"fail": "bug"})
    fine = store.submit("fake", {})
    runner = JobRunner(store, registry)
    assert runner.run_next().error == "the catalogue folder is gone."
    failed = runner.run_next()
    assert failed.state == "failed" and failed.error == "RuntimeError: boom"
    assert "Traceback" in store.log(bug.id) and "Traceback" not in failed.error
    assert runner.run_next().state == "done"
    assert store.get(data.id).state == "failed" and store.get(fine.id).state == "done"
    assert registry.names() == []


def test_two_sessions_see_the_same_job(store, registry):
    other = JobStore(store.root)  # another session, tab or process on the same registry
    job = store.submit("fake", {"_stop": True}, owner="tab-1")
    assert other.get(job.id).state == "queued" and other.queue()[0].owner == "tab-1"
    runner = JobRunner(other, registry, poll_seconds=0.05).start()
    try:
        _wait(lambda: store.get(job.id).state == "running")
        _wait(lambda: store.get(job.id).progress.get("stage") == "classifier")
        other.cancel(job.id)
        assert store.get(job.id).cancel_requested
        _wait(lambda: store.get(job.id).ended)
    finally:
        runner.stop()
    assert store.get(job.id).state == other.get(job.id).state == "cancelled"


def test_a_running_job_of_a_dead_server_reads_as_interrupted(store, registry):
    job = store.submit("fake", {})
    server = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        record = {**store.get(job.id).record, "state": "running", "started_at": time.time(),
                  "worker": jobs._process_identity(server.pid)}
        store._write(record)
        assert store.get(job.id).state == "running"
    finally:
        server.kill()  # kill -9 of the server that ran it
        server.wait()
    seen = store.get(job.id)
    assert seen.state == "interrupted" and "server stopped" in seen.error and seen.ended
    assert store.running() is None
    assert store._read(store.root / job.id)["state"] == "running"  # reading writes nothing
    assert store.mark_interrupted() == [job.id]  # a runner stores it
    assert store._read(store.root / job.id)["state"] == "interrupted"
    assert JobRunner(store, registry).run_next() is None  # never run again


def test_a_reused_pid_is_not_the_same_worker():
    me = jobs._process_identity()
    assert jobs.worker_alive(me)
    assert not jobs.worker_alive({**me, "started": me["started"] - 100})
    assert not jobs.worker_alive(None)


def test_only_one_runner_runs_at_a_time(store, registry):
    job = store.submit("fake", {"_stop": True})
    first = JobRunner(store, registry, poll_seconds=0.05).start()
    try:
        _wait(lambda: store.get(job.id).state == "running")
        store.submit("fake", {})
        assert JobRunner(store, registry).run_next(blocking=False) is None  # another server's runner waits
        STOP.set()
        _wait(lambda: all(j.state == "done" for j in store.list()))
    finally:
        first.stop()


def test_old_ended_jobs_are_pruned(store, registry):
    runner = JobRunner(store, registry)
    for _ in range(4):
        store.submit("fake", {})
        runner.run_next()
    store.prune(keep=2)
    assert len(store.list()) == 2


def test_train_params_refuse_a_taken_or_bad_name_at_submit(registry):
    from fashion_core.training import TrainConfig

    store = JobStore.for_registry(registry)
    with pytest.raises(InvalidNameError, match="invalid model name"):
        store.submit("train", jobs.train_params({"kind": "fashion-mnist"}, TrainConfig(arch="seed004_cnn"), "../x"))
    with pytest.raises(InvalidParameterError, match="epochs"):
        store.submit("train", jobs.train_params({"kind": "fashion-mnist"}, TrainConfig(arch="seed004_cnn", epochs=0), "ok"))
    with pytest.raises(InvalidParameterError, match="folds"):
        store.submit("cv", {**jobs.train_params({"kind": "fashion-mnist"}, TrainConfig(arch="seed004_cnn"), None), "folds": 1})
    assert store.list() == []


TINY = {"kind": "fashion-mnist", "subset": {"limit": 600, "seed": 0}}


@pytest.mark.slow
def test_a_train_job_registers_its_model(registry, fashion_mnist):
    from fashion_core.training import TrainConfig

    store = JobStore.for_registry(registry)
    job = store.submit("train", jobs.train_params(TINY, TrainConfig(arch="seed004_cnn", epochs=1, batch_size=64), "job_net"),
                       owner="me")
    ended = JobRunner(store, registry).run_next()
    assert ended.state == "done", ended.error
    assert ended.result["model"] == "job_net" and "classifier" in ended.result["history"]
    assert registry.names() == ["job_net"]
    assert ended.history["classifier"]["loss"]


@pytest.mark.slow
def test_a_cancelled_train_job_registers_nothing(registry, fashion_mnist, monkeypatch):
    from fashion_core.training import TrainConfig

    monkeypatch.setattr(jobs, "CANCEL_CHECK_SECONDS", 0.0)
    # Every batch is written: on a fast machine an epoch of this tiny run ends within the default
    # one-second throttle, and the epoch-end write says batch 0.
    monkeypatch.setattr(jobs, "PROGRESS_WRITE_SECONDS", 0.0)
    store = JobStore.for_registry(registry)
    job = store.submit("train", jobs.train_params(TINY, TrainConfig(arch="seed004_cnn", epochs=500, batch_size=16), "never"))
    runner = JobRunner(store, registry, poll_seconds=0.05).start()
    try:
        _wait(lambda: store.get(job.id).progress.get("batch", 0) > 0 or store.get(job.id).progress.get("epoch", 0) > 0,
              timeout=120)
        store.cancel(job.id)
        _wait(lambda: store.get(job.id).ended, timeout=120)
    finally:
        runner.stop()
    assert store.get(job.id).state == "cancelled"
    assert registry.names() == [] and not any(registry.root.glob(".never*"))


def test_train_and_save_asked_to_stop_saves_nothing(registry, small_dataset):
    from fashion_core.runs import train_and_save
    from fashion_core.training import TrainConfig, TrainingCancelled, TrainingProgress

    class StopAfterTraining(TrainingProgress):
        trained = False

        def on_epoch_end(self, stage, epoch, logs):
            self.trained = True

        def should_stop(self):
            return self.trained  # training runs to its end; the check before the save stops it

    with pytest.raises(TrainingCancelled):
        train_and_save(small_dataset, TrainConfig(arch="seed004_cnn", epochs=1, limit=200), "stopped",
                       registry=registry, progress=StopAfterTraining())
    assert registry.names() == []


def test_a_finetune_job_is_checked_at_submit(store, photo_models, tmp_path):
    """The "Improve" button's job: an unknown base, a taken name or a missing corrections file is
    refused before anything is queued."""
    csv = tmp_path / "corrections.csv"
    csv.write_text("path,label\n")
    with pytest.raises(FashionError):
        store.submit("finetune", {"base": "missing", "data_csv": str(csv), "name": "new_one"}, registry=photo_models)
    with pytest.raises(FashionError):
        store.submit("finetune", {"base": "unsure", "data_csv": str(csv), "name": "sure_sneaker"}, registry=photo_models)
    with pytest.raises(FashionError):
        store.submit("finetune", {"base": "unsure", "data_csv": str(tmp_path / "no.csv"), "name": "new_one"},
                     registry=photo_models)
    job = store.submit("finetune", {"base": "unsure", "data_csv": str(csv), "name": "new_one"}, registry=photo_models)
    assert job.state == "queued" and job.target == "new_one" and "from unsure" in job.title
