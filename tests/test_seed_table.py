"""scripts/seed_table.py: the README's "Reproducing the seeds" table from the registry."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def seed_table():
    from scripts import seed_table

    return seed_table


def test_paper_percent(seed_table):
    assert seed_table.paper_percent("92.02–92.34%") == 92.02
    assert seed_table.paper_percent("90.70% ± 0.33 (5-fold CV)") == 90.70
    assert seed_table.paper_percent("target ≥ 95.0%") == 95.0
    assert seed_table.paper_percent("") is None


def test_notes_name_the_reading_and_hold_our_targets_without_tta(seed_table):
    """An option with the architecture's own note (a reading of the paper) is named in the row;
    our own model meets its target on plain test accuracy only, never "within half a point"."""
    from fashion_core import zoo

    def meta(accuracy, tta=None, **options):
        return {"test_accuracy": accuracy, "flip_tta_accuracy": tta, "epochs_run": {"classifier": 20},
                "hyper_parameters": {"epochs": 20, "build_options": options}}

    ae = zoo.ARCHITECTURES["conv_autoencoder"]
    assert "reading: the encoder trains" in seed_table.note_for(meta(0.93, frozen_encoder=False), ae, 93.0)
    assert "reading:" not in seed_table.note_for(meta(0.93), ae, 93.0)
    ours = zoo.ARCHITECTURES["fashion_net"]
    assert seed_table.note_for(meta(0.9474, 0.9598), ours, 95.98).endswith("vs target: below target")
    assert seed_table.note_for(meta(0.9563, 0.9598), ours, 95.98).endswith("vs target: target met")


def test_quick_preset_paragraph_from_the_commands_json(seed_table):
    assert seed_table.render_quick(None) is None
    run = {"test_accuracy": 0.9351, "flip_tta_accuracy": 0.9372, "epochs": {"classifier": 12}, "train_seconds": 520.0,
           "wall_seconds": 570.0, "date": "2026-11-27T06:10:00+00:00", "machine": "2 CPUs",
           "command": "python -m fashion_core train --preset quick --name quick --json"}
    text = seed_table.render_quick(run)
    assert "**93.51%**" in text and "9.5 min" in text and text.endswith("docs/QUICK.md).") and ": met." in text
    assert ": not met." in seed_table.render_quick({**run, "wall_seconds": 640.0})


def test_rewrites_readme_and_check_mode(seed_table, trained_registry, tmp_path, capsys):
    readme = tmp_path / "README.md"
    readme.write_text("# Project\n\nIntro.\n")
    args = ["--readme", str(readme), "--models", str(trained_registry.root)]
    assert seed_table.main([*args, "--check"]) == 1  # markers missing: out of date
    assert seed_table.main(args) == 0
    text = readme.read_text()
    assert text.startswith("# Project\n\nIntro.\n") and "## Reproducing the seeds" in text
    block = text[text.index(seed_table.START): text.index(seed_table.END)]
    rows = [line for line in block.splitlines() if line.startswith("| ") and "Architecture" not in line]
    assert len(rows) == len(seed_table.ROWS)
    by_arch = dict(zip(seed_table.ROWS, rows))
    # tiny_cnn is seed004_cnn trained 1 epoch on a subset: its shortfall is explained from data.
    assert "`tiny_cnn`" in by_arch["seed004_cnn"] and "83.0%" in by_arch["seed004_cnn"]
    assert "1/10" in by_arch["seed004_cnn"]
    if "pp vs paper —" in by_arch["seed004_cnn"]:
        assert "1 classifier epochs instead of the paper's 10" in by_arch["seed004_cnn"]
    assert "`tiny_ae`" in by_arch["conv_autoencoder"] and "AE 1/20" in by_arch["conv_autoencoder"]
    assert "instead of the paper's 20" in by_arch["conv_autoencoder"]
    assert "not trained (" in by_arch["vgg16_transfer"] and "not trained (" in by_arch["fashion_net"]
    assert seed_table.main([*args, "--check"]) == 0
    # A second run keeps the rest of the README and changes nothing.
    readme.write_text(text.replace("Intro.", "Intro, edited."))
    assert seed_table.main([*args, "--check"]) == 0
    readme.write_text(text.replace("83.0%", "99.9%"))
    assert seed_table.main([*args, "--check"]) == 1
    assert seed_table.main(args) == 0 and readme.read_text() == text
    assert seed_table.main(["--readme", str(tmp_path / "missing.md")]) == 2


def test_photo_table_from_a_saved_bench_result(seed_table, photo_models, tmp_path):
    from fashion_core.bench import bench_photos

    assert "Not measured (no bench result saved yet)" in seed_table.render_photo_table(None)
    assert "Not measured (nowhere)" in seed_table.render_photo_table({"real_photos": {"skipped": "nowhere"}})
    bench = {"date": "2026-11-26T10:00:00+00:00", "machine": {"cpu_count": 2},
             "real_photos": bench_photos(photo_models, limit=None)}
    table = seed_table.render_photo_table(bench)
    assert "`sure_sneaker` (photo model, default)" in table
    assert "| catalogue photos, top-1 (n=4) | 25.0% | ≥ 92% |" in table
    assert "| Sneaker | 100.0% (1) / – |" in table
    readme = tmp_path / "README.md"
    readme.write_text("# Project\n")
    (tmp_path / "bench.json").write_text(__import__("json").dumps(bench))
    args = ["--readme", str(readme), "--models", str(photo_models.root), "--bench", str(tmp_path / "bench.json")]
    assert seed_table.main(args) == 0 and seed_table.main([*args, "--check"]) == 0
    text = readme.read_text()
    assert "## Real photos" in text and table in text
    assert "Photo model (ours, `sure_sneaker`)" in text and "the default for uploads and webcam photos" in text


def test_trust_table_from_a_saved_bench_result(seed_table, registry, tmp_path):
    bench = {"date": "2026-11-26T10:00:00+00:00", "quick": False, "machine": {"cpu_count": 2},
             "settings": {"test_images": 10000},
             "calibration": {"target_ece": 0.015, "n_bins": 15, "models": [
                 {"name": "fashion_net", "temperature": 0.654, "ece_before": 0.0818, "ece": 0.0079},
                 {"name": "seed004_cnn", "temperature": 0.885, "method": "class_temperature+top_label_beta",
                  "ece_before": 0.0379, "ece": 0.0112},
                 {"name": "plain", "temperature": None, "ece_before": 0.02, "ece": 0.02}]},
             "saliency": {"model": "fashion_net", "n": 500, "hide_fraction": 0.2, "default_method": "occlusion",
                          "share_salient_lowers_more": 0.9, "target_share": 0.8, "methods": [
                              {"method": "occlusion", "share_salient_lowers_more": 0.9, "mean_drop_salient": 0.4,
                               "mean_drop_random": 0.1, "seconds": 60.0},
                              {"method": "grad_cam", "share_salient_lowers_more": 0.55, "mean_drop_salient": 0.2,
                               "mean_drop_random": 0.15, "seconds": 5.0}]}}
    audit = {"arch": "seed003_cnn", "folds": 3, "epochs": 3, "audited": 60000, "flagged": 2043,
             "dataset_name": "Fashion-MNIST", "class_names": ["A", "B"], "flagged_per_class": {"A": 2000, "B": 43},
             "issues": [{"index": 7, "given": 0, "suggested": 1, "score": 0.99, "flagged": True}]}
    flip = {"images": 20000, "flipped": 1000, "arch": "seed003_cnn", "folds": 3, "epochs": 3,
            "recall_at_flipped": 0.715, "seconds": 63.0}
    assert "not measured" in seed_table.render_trust_table(None)
    table = seed_table.render_trust_table(bench, audit, flip)
    assert "| `fashion_net` | one temperature | 0.654 | 0.0818 | 0.0079 | ≤ 0.015 |" in table  # an older result
    assert "| `seed004_cnn` | temperature + confidence map per class | 0.885 | 0.0379 | 0.0112 |" in table
    assert "| `plain` | not fitted |" in table
    assert "| occlusion (shown) | 90.0% | 0.400 | 0.100 | ≥ 80% |" in table
    assert "**2,043 of the 60,000**" in table and "| 7 | A | B | 0.990 |" in table
    assert "71.5% of the 1,000 most suspicious" in table
    registry.save_audit(seed_table.SHIPPED_AUDIT, audit)
    readme = tmp_path / "README.md"
    readme.write_text("# Project\n")
    (tmp_path / "bench.json").write_text(__import__("json").dumps(bench))
    (tmp_path / "flip.json").write_text(__import__("json").dumps(flip))
    args = ["--readme", str(readme), "--models", str(registry.root), "--bench", str(tmp_path / "bench.json"),
            "--flip", str(tmp_path / "flip.json")]
    assert seed_table.main(args) == 0 and seed_table.main([*args, "--check"]) == 0
    text = readme.read_text()
    assert "## Why did it say that?" in text and table in text


def test_transfer_table_from_transfer_json(seed_table):
    transfer = {
        "date": "2026-11-26T12:00:00+00:00", "machine": {"cpu_count": 2, "load_average_at_start": 1.2},
        "catalogue": {"classes": 20, "per_class": 300, "train": 3916, "test": 1031, "script": "python -m scripts.myntra_catalogue X"},
        "goal": {"top1": 0.88, "wall_seconds": 300},
        "runs": [
            {"label": "photo_net", "name": "myntra20-photo_net", "parent": "photo_net", "lineage": ["photo_net", "fashion_net"],
             "test_accuracy": 0.89, "served_accuracy": 0.9, "wall_seconds": 290.0, "train_seconds": 240.0,
             "precision_at_5": 0.85, "command": "python -m fashion_core train --from photo_net",
             "per_class_f1": {"Tops": 0.6, "Socks": 0.99}},
            {"label": "scratch", "failed": ["error: out of memory"]},
        ],
    }
    table = seed_table.render_transfer_table(transfer)
    assert "| `photo_net ← fashion_net` | 90.0% | 4.8 min | 4.0 min | 0.850 |" in table
    assert "failed: error: out of memory" in table and "Tops 0.60" in table
    assert seed_table.render_transfer_table(None) is None
    text = seed_table.updated_readme("# P\n", "seeds", transfer_table=table)
    assert seed_table.TRANSFER_START in text and "90.0%" in text
