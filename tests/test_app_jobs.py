"""Background jobs in the dashboard (AppTest): Train submits a job, the sidebar indicator and the
Train page show it, a second session sees the same job, the running job's live curves and
Cancel. Fake job kinds, no training."""

from __future__ import annotations

import threading
import time

import pytest

from fashion_core import jobs
from fashion_core.jobs import JobKind, JobRunner, JobStore
from tests.helpers import assert_clean, custom_setup, open_app

STOP = threading.Event()


def _slow_run(params, progress, registry):
    progress.on_stage_begin("classifier", 3, 4)
    progress.on_epoch_end("classifier", 0, {"loss": 0.9, "accuracy": 0.6, "val_loss": 1.0, "val_accuracy": 0.55})
    progress.on_batch_end("classifier", 1, 1, {})
    while not STOP.is_set():
        progress.should_stop()
        time.sleep(0.02)
    return {}


@pytest.fixture()
def no_runner(registry, monkeypatch):
    """The app's runner thread does nothing: submitted jobs stay queued."""
    monkeypatch.setattr(JobRunner, "start", lambda self: self)
    return JobStore.for_registry(registry)


@pytest.fixture()
def slow_kind(monkeypatch):
    monkeypatch.setitem(jobs.JOB_KINDS, "slow", JobKind("Slow", _slow_run, lambda p, r: None, title=lambda p: p["title"]))
    monkeypatch.setattr(jobs, "PROGRESS_WRITE_SECONDS", 0.0)
    monkeypatch.setattr(jobs, "CANCEL_CHECK_SECONDS", 0.0)
    STOP.clear()
    yield
    STOP.set()


def _sidebar_text(at):
    return " ".join([m.value for m in at.sidebar.markdown] + [c.value for c in at.sidebar.caption])


def _submit_on_train(at, name):
    custom_setup(at)
    at.number_input(key="train_epochs_seed004_cnn").set_value(1)
    at.text_input(key="train_name_seed004_cnn").set_value(name)
    at.button(key="start_training").click()
    at.run()
    assert_clean(at)


def test_train_submits_a_job_and_every_page_shows_it(no_runner):
    at = open_app("views/train.py")
    assert not no_runner.list()
    _submit_on_train(at, "queued_net")
    job, = no_runner.list()
    assert job.kind == "train" and job.state == "queued" and job.params["name"] == "queued_net"
    assert job.params["dataset"]["kind"] == "fashion-mnist" and job.params["config"]["epochs"] == 1
    assert any("queued_net" in s.value and "queued" in s.value for s in at.success)
    assert "1 waiting in the queue (1 yours)" in _sidebar_text(at)
    assert any("1. **queued_net**" in m.value and "yours" in m.value for m in at.markdown)
    at.switch_page("views/home.py")  # another page: the indicator is still there
    at.run()
    assert "1 waiting in the queue" in _sidebar_text(at)


def test_the_same_name_twice_is_refused_and_the_next_default_name_is_free(no_runner):
    at = custom_setup(open_app("views/train.py"))
    default = at.text_input(key="train_name_seed004_cnn").value
    _submit_on_train(at, default)
    at.button(key="start_training").click()
    at.run()
    assert any("already queued or running" in e.value for e in at.error)
    assert len(no_runner.list()) == 1
    fresh = custom_setup(open_app("views/train.py"))  # a new session proposes another name
    assert fresh.text_input(key="train_name_seed004_cnn").value != default


def test_a_second_session_sees_the_queue_and_can_cancel(no_runner):
    mine = open_app("views/train.py")
    _submit_on_train(mine, "first_net")
    _submit_on_train(mine, "second_net")
    other = open_app("views/train.py")  # another tab or person
    text = " ".join(m.value for m in other.markdown)
    assert "1. **first_net**" in text and "2. **second_net**" in text and "yours" not in text
    assert "2 waiting in the queue" in _sidebar_text(other)
    first = no_runner.queue()[0]
    other.button(key=f"cancel_{first.id}").click()
    other.run()
    assert no_runner.get(first.id).state == "cancelled"
    assert no_runner.position(no_runner.queue()[0].id) == 1
    mine.run()
    assert any("1. **second_net**" in m.value for m in mine.markdown)


def test_the_running_job_shows_live_curves_and_cancel_stops_it(no_runner, registry, slow_kind):
    job = no_runner.submit("slow", {"title": "live_net"}, owner="someone else")
    runner = JobRunner(no_runner, registry, poll_seconds=0.05)
    thread = threading.Thread(target=runner.run_next)
    thread.start()
    try:
        deadline = time.time() + 30
        while not no_runner.get(job.id).history.get("classifier") and time.time() < deadline:
            time.sleep(0.05)
        at = open_app("views/train.py")
        assert_clean(at)
        text = " ".join(m.value for m in at.markdown)
        assert "**live_net**" in text and "started in another session" in text
        assert "Training the classifier" in text and "epoch 2/3" in text
        assert len(at.get("plotly_chart")) >= 1  # the live loss / accuracy curves
        assert "live_net" in _sidebar_text(at) and "Training the classifier" in _sidebar_text(at)
        at.button(key=f"cancel_{job.id}").click()
        at.run()
        thread.join(30)
    finally:
        STOP.set()
        thread.join(30)
    assert no_runner.get(job.id).state == "cancelled"
    assert registry.names() == []


def test_a_job_of_a_killed_server_shows_as_interrupted(no_runner, slow_kind):
    import subprocess
    import sys

    job = no_runner.submit("slow", {"title": "lost_net"}, owner="a closed tab")
    server = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    no_runner._write({**no_runner.get(job.id).record, "state": "running", "worker": jobs._process_identity(server.pid)})
    server.kill()
    server.wait()
    at = open_app("views/train.py")
    assert_clean(at)
    table = next(d.value for d in at.dataframe if "state" in d.value.columns)  # "Recent jobs"
    row = table[table["job"] == "lost_net"].iloc[0]
    assert row["state"] == "interrupted" and "server stopped" in row["detail"] and not row["yours"]
    assert not at.get("plotly_chart")  # nothing shows as running


def test_a_finished_cross_validation_is_shown_and_kept_with_a_model(no_runner, registry):
    from fashion_core.classes import FASHION_MNIST_CLASSES
    from fashion_core.registry import EXPERIMENT_FILES
    from fashion_core.training import TrainConfig
    from tests.helpers import constant_classifier

    registry.save("cnn", constant_classifier([0.0] * 10), {"arch": "seed004_cnn", "class_names": list(FASHION_MNIST_CLASSES)})
    params = {**jobs.train_params({"kind": "fashion-mnist"}, TrainConfig(arch="seed004_cnn", epochs=1), None), "folds": 2}
    job = no_runner.submit("cv", params, owner="a closed tab")
    folds = [{"fold": i, "train_accuracy": 0.9, "test_accuracy": 0.8, "epochs_run": 1, "seconds": 1.0} for i in (1, 2)]
    result = {"arch": "seed004_cnn", "folds": folds, "mean_test_accuracy": 0.8, "std_test_accuracy": 0.0,
              "mean_train_accuracy": 0.9, "std_train_accuracy": 0.0, "config": params["config"], "dataset_name": "Fashion-MNIST"}
    no_runner.claim_next()
    no_runner.finish(job.id, "done", result=result)
    at = open_app("views/train.py")
    assert_clean(at)
    assert any("**Cross-validation**" in m.value for m in at.markdown)
    at.button(key=f"keep_button_cv_{job.id}").click()
    at.run()
    assert registry.read_json("cnn", EXPERIMENT_FILES["cv"])["folds"] == folds


def test_quick_preset_is_the_default_and_shows_its_expected_time(no_runner):
    from fashion_core.training import PRESETS

    at = open_app("views/train.py")
    assert at.radio(key="train_setup").value == "quick"
    text = " ".join(m.value for m in at.markdown)
    assert "Expected time" in text and PRESETS["quick"].description in text
    at.text_input(key="train_name_preset").set_value("quick_one")
    at.button(key="start_training").click()
    at.run()
    assert_clean(at)
    job, = no_runner.list()
    config = job.params["config"]
    assert config["preset"] == "quick" and config["arch"] == "fashion_net" and config["epochs"] == PRESETS["quick"].epochs
