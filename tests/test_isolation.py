"""Nothing shared by accident: a training run's precision policy and seeds are not seen by
another thread (another dashboard session), and cached objects shared between sessions are
read-only."""

from __future__ import annotations

import random
import threading

import numpy as np
import pytest

from fashion_core.neighbours import NeighbourIndex


def test_training_precision_policy_is_not_seen_by_another_thread(small_dataset, monkeypatch):
    import keras

    from fashion_core import training, zoo

    seen = {}
    inside = threading.Event()
    release = threading.Event()
    real_build = zoo.build

    def build_and_wait(*args, **kwargs):  # pause the training thread inside its policy scope
        seen.setdefault("trainer", keras.mixed_precision.global_policy().name)  # the first build
        inside.set()
        release.wait(60)
        return real_build(*args, **kwargs)

    monkeypatch.setattr(zoo, "build", build_and_wait)
    config = training.TrainConfig(arch="seed004_cnn", epochs=1, batch_size=64, limit=200, precision="mixed_bfloat16")
    trainer = threading.Thread(target=training.train, args=(small_dataset, config))
    trainer.start()
    assert inside.wait(120)
    seen["other"] = keras.mixed_precision.global_policy().name  # another session, meanwhile
    release.set()
    trainer.join(300)
    assert seen == {"trainer": "mixed_bfloat16", "other": "float32"}
    assert keras.mixed_precision.global_policy().name == "float32"


def test_training_leaves_python_and_numpy_random_streams_alone(small_dataset):
    from fashion_core import training

    random.seed(123)
    np.random.seed(123)
    expected = (random.random(), np.random.random())
    random.seed(123)
    np.random.seed(123)
    training.train(small_dataset, training.TrainConfig(arch="seed004_cnn", epochs=1, batch_size=64, limit=200, seed=7))
    assert (random.random(), np.random.random()) == expected  # as if no training had run


@pytest.mark.parametrize("approximate", [False, True])
def test_a_shared_neighbour_index_is_read_only_and_queries_write_nothing_shared(approximate):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3000, 192)).astype(np.float32)
    index = NeighbourIndex(x, rng.integers(0, 10, 3000), approximate=approximate)
    assert not index.vectors.flags.writeable and not index.labels.flags.writeable
    state_before = dict(vars(index))
    results = {}

    def session(i):
        results[i] = index.query(x[i], k=5, exclude=[i])[1][0].tolist(), index.last_query_exact

    threads = [threading.Thread(target=session, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 8
    assert {k: id(v) for k, v in vars(index).items()} == {k: id(v) for k, v in state_before.items()}
    for i, (found, exact) in results.items():
        assert i not in found and exact is (not approximate)  # each thread sees its own flag


def test_a_page_run_leaves_the_keras_session_alone(models_env, monkeypatch):
    """Streamlit clears the Keras session after every script run (resetting every thread's Keras
    state and TensorFlow's kernel cache, then a full garbage collection); the app turns it off."""
    import sys

    import keras
    from streamlit.runtime.scriptrunner import script_runner

    from tests.helpers import assert_clean, open_app

    cleared = []
    monkeypatch.setattr(keras.backend, "clear_session", lambda *a, **k: cleared.append(1))
    # Streamlit's own clean-up, as a fresh process has it before app.py first runs
    monkeypatch.setattr(script_runner, "_clean_problem_modules",
                        lambda: sys.modules["keras"].backend.clear_session())
    at = open_app("views/models.py")
    assert_clean(at)
    at.run()
    assert cleared == []


def test_the_server_runs_no_full_garbage_collection_after_every_rerun():
    import tomllib
    from pathlib import Path

    config = tomllib.loads((Path(__file__).resolve().parent.parent / ".streamlit" / "config.toml").read_text())
    assert config["runner"]["postScriptGC"] is False


def test_the_server_watches_no_files():
    """Streamlit's file watcher (inotify on the app's folder, a path check of every imported module
    after each script run) cost more CPU than the pages under load: the shipped config turns it off."""
    import tomllib
    from pathlib import Path

    config = tomllib.loads((Path(__file__).resolve().parent.parent / ".streamlit" / "config.toml").read_text())
    assert config["server"]["fileWatcherType"] == "none"
