"""scripts/rescore.py: shipped models re-scored from their .keras file alone match their metadata."""

from __future__ import annotations

import json
import shutil


def test_rescore_matches_the_metadata_and_catches_a_wrong_figure(trained_registry, tmp_path, capsys):
    from scripts import rescore

    assert rescore.main(["--models", str(trained_registry.root), "tiny_cnn"]) == 0
    assert "off by 0 image(s)" in capsys.readouterr().out
    copy = tmp_path / "models"
    shutil.copytree(trained_registry.root / "tiny_cnn", copy / "tiny_cnn")
    meta_path = copy / "tiny_cnn" / "metadata.json"
    meta = json.loads(meta_path.read_text())
    meta_path.write_text(json.dumps({**meta, "test_accuracy": meta["test_accuracy"] - 0.01}))  # 1% of the test set off
    assert rescore.main(["--models", str(copy)]) == 1
    out = capsys.readouterr().out
    assert "tiny_cnn" in out and "off by 0 image(s)" not in out
