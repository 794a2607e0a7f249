"""Teach by correcting (fashion_core.finetune) and ``python -m fashion_core finetune``: the held-out
split, the training mix, the CLI contract (JSON shape, a new model, the base untouched) and bad
input (one line, exit code 2). The base is a constant classifier and the photos are a few fixtures:
nothing here depends on how well a model trains."""

from __future__ import annotations

import csv
import hashlib
import json

import numpy as np
import pytest

from fashion_core.cli import main
from fashion_core.finetune import heldout_split, training_mix
from tests.helpers import PHOTO_FIXTURES, constant_classifier

# The constant base's embeddings are all zero: the 2-D map stored on save divides by a zero variance.
CONSTANT_MAP = pytest.mark.filterwarnings("ignore:invalid value encountered in divide:RuntimeWarning")

FIXTURE_ROWS = [("phone-06.jpg", "Shirt", "sender267"), ("phone-07.jpg", "Trouser", "sender322"),
                ("phone-08.jpg", "Pullover", "sender61"), ("catalogue-01.jpg", "Sneaker", "10082"),
                ("catalogue-02.jpg", "Bag", "10211"), ("phone-11.jpg", "Dress", "sender303")]


def test_group_split_holds_out_whole_groups_seeded():
    groups = np.repeat([f"g{i}" for i in range(10)], 5)
    labels = np.arange(50) % 3
    train, held, method = heldout_split(labels, groups, 0.2, seed=1)
    assert method == "group" and len(held) == 10 and len(train) == 40
    assert not set(groups[train]) & set(groups[held])
    assert np.array_equal(held, heldout_split(labels, groups, 0.2, seed=1)[1])
    assert not np.array_equal(held, heldout_split(labels, groups, 0.2, seed=2)[1])


def test_random_split_is_stratified_when_it_can_be_and_never_empty():
    labels = np.repeat([0, 1, 2], 10)
    train, held, method = heldout_split(labels, None, 0.2)
    assert method == "stratified" and np.bincount(labels[held]).tolist() == [2, 2, 2]
    train, held, method = heldout_split(np.array([0, 1, 2, 3]), None, 0.2)
    assert method == "random" and len(held) == 1 and len(train) == 3
    train, held, method = heldout_split(labels, np.array(["one"] * 30), 0.2)  # one group: random instead
    assert method == "stratified" and len(held) == 6
    assert heldout_split(labels, None, 0.0)[2] == "none" and len(heldout_split(labels, None, 0.0)[1]) == 0


def test_training_mix_repeats_corrections_to_their_share():
    cx, cy = np.zeros((10, 4, 4, 1), np.uint8), np.ones(10, np.int64)
    rx, ry = np.zeros((300, 4, 4, 1), np.uint8), np.zeros(300, np.int64)
    x, y, repeat = training_mix(cx, cy, rx, ry, 0.25)
    assert repeat == 10 and len(x) == len(y) == 400 and (y == 1).sum() == 100
    assert training_mix(cx, cy, rx[:0], ry[:0], 0.25)[2] == 1  # no replay: the corrections alone
    assert training_mix(cx, cy, rx, ry, 0.99)[2] == 20  # capped


@pytest.fixture()
def base(registry, fashion_mnist):
    """A constant Fashion-MNIST classifier in a temporary registry."""
    from fashion_core.classes import FASHION_MNIST_CLASSES

    metadata = {"arch": "imported", "dataset": {"kind": "fashion-mnist"}, "dataset_name": "Fashion-MNIST",
                "class_names": list(FASHION_MNIST_CLASSES), "image_shape": [28, 28, 1],
                "hyper_parameters": {"validation_fraction": 0.1, "seed": 0}}
    return registry.save("const", constant_classifier(np.zeros(10)), metadata)


def write_csv(folder, rows, group=True):
    """The fixture photos copied into ``folder`` and listed with relative paths."""
    (folder / "img").mkdir(parents=True, exist_ok=True)
    path = folder / "fix.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "label", "group"] if group else ["path", "label"])
        for file, label, sender in rows:
            source = PHOTO_FIXTURES / "images" / file
            if source.is_file():
                (folder / "img" / file).write_bytes(source.read_bytes())
            writer.writerow([f"img/{file}", label, sender] if group else [f"img/{file}", label])
    return path


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@CONSTANT_MAP
def test_finetune_cli_json_contract(base, registry, tmp_path, capsys):
    data_csv = write_csv(tmp_path, FIXTURE_ROWS + [("missing.jpg", "Bag", "x")])
    before = digest(base.model_file)
    code = main(["finetune", "const", "--data-csv", str(data_csv), "--name", "const_fixed", "--epochs", "1",
                 "--replay", "64", "--json", "--quiet"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    payload = json.loads(captured.out)
    assert payload["base"] == "const" and payload["name"] == "const_fixed"
    for stage in ("before", "after"):
        assert set(payload[stage]) == {"heldout_accuracy", "test_accuracy"}
        assert 0.0 <= payload[stage]["heldout_accuracy"] <= 1.0 and 0.0 <= payload[stage]["test_accuracy"] <= 1.0
    assert payload["corrections"] + payload["heldout"] == len(FIXTURE_ROWS) and payload["heldout"] >= 1
    assert payload["split"] == "group" and payload["train_seconds"] >= 0
    assert [row[0] for row in payload["skipped"]] == ["img/missing.jpg"]  # unreadable: skipped and reported
    meta = registry.get("const_fixed").metadata
    assert meta["parent"] == "const" and meta["finetune"]["corrections"] == payload["corrections"]
    assert meta["command"].startswith("python -m fashion_core finetune const --data-csv")
    assert meta["class_names"] == base.metadata["class_names"] and meta["image_shape"] == [28, 28, 1]
    assert digest(base.model_file) == before  # the base is never overwritten
    assert registry.names() == ["const", "const_fixed"]


@CONSTANT_MAP
def test_finetune_job_has_the_job_signature(base, registry, tmp_path):
    from fashion_core.finetune import finetune_job
    from fashion_core.training import TrainingProgress

    class Count(TrainingProgress):
        batches = 0

        def on_batch_end(self, stage, epoch, batch, logs):
            Count.batches += 1

    params = {"base": "const", "data_csv": str(write_csv(tmp_path, FIXTURE_ROWS, group=False)), "name": "job_model",
              "epochs": 1, "replay": 32}
    result = finetune_job(params, Count(), registry)
    assert result["name"] == "job_model" and Count.batches > 0 and result["split"] in ("random", "stratified")


@pytest.mark.parametrize("case", ["missing base", "missing file", "bad label", "name taken", "bad name",
                                  "bad epochs", "too few photos", "no label column"])
def test_finetune_bad_input_is_one_line_exit_2(case, base, registry, tmp_path, capsys):
    good = write_csv(tmp_path / "good", FIXTURE_ROWS)
    args = {"base": "const", "csv": str(good), "name": "new_model", "extra": []}
    if case == "missing base":
        args["base"] = "nope"
    elif case == "missing file":
        args["csv"] = str(tmp_path / "nowhere.csv")
    elif case == "bad label":
        args["csv"] = str(write_csv(tmp_path / "bad", FIXTURE_ROWS[:3] + [("phone-09.jpg", "Boots", "s")]))
    elif case == "name taken":
        args["name"] = "const"
    elif case == "bad name":
        args["name"] = "../escape"
    elif case == "bad epochs":
        args["extra"] = ["--epochs", "0"]
    elif case == "too few photos":
        args["csv"] = str(write_csv(tmp_path / "few", FIXTURE_ROWS[:1] + [("missing.jpg", "Bag", "x")]))
    else:
        (tmp_path / "nolabel.csv").write_text("path,class\nimg/a.jpg,Bag\n")
        args["csv"] = str(tmp_path / "nolabel.csv")
    code = main(["finetune", args["base"], "--data-csv", args["csv"], "--name", args["name"], "--quiet", *args["extra"]])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("error: ") and err.strip().count("\n") == 0 and "Traceback" not in err
    assert registry.names() == ["const"]


def test_a_cancelled_finetune_saves_nothing(base, registry, tmp_path):
    from fashion_core.finetune import finetune_and_save
    from fashion_core.training import TrainingCancelled, TrainingProgress

    class Stop(TrainingProgress):
        def should_stop(self):
            return True

    with pytest.raises(TrainingCancelled):
        finetune_and_save("const", write_csv(tmp_path, FIXTURE_ROWS), "never", registry=registry, progress=Stop(),
                          epochs=1, replay=32)
    assert registry.names() == ["const"]
