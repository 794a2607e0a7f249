import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fashion_core.cli import main


def run_cli(*args):
    """Run the CLI in a subprocess, as a user or a script would."""
    return subprocess.run([sys.executable, "-m", "fashion_core", *args], capture_output=True, text=True, timeout=600)


def test_train_evaluate_list_export_delete(registry, tmp_path, capsys):
    code = main(["train", "--arch", "seed004_cnn", "--epochs", "1", "--limit", "500", "--name", "cli_model", "--json", "--quiet"])
    out = capsys.readouterr().out
    assert code == 0
    payload = json.loads(out)
    assert payload["name"] == "cli_model" and payload["arch"] == "seed004_cnn"
    assert 0.0 <= payload["test_accuracy"] <= 1.0 and payload["train_seconds"] > 0
    assert "python -m fashion_core train --arch seed004_cnn" in registry.get("cli_model").metadata["command"]

    assert main(["evaluate", "cli_model", "--json"]) == 0
    evaluation = json.loads(capsys.readouterr().out)
    assert len(evaluation["confusion_matrix"]) == 10 and len(evaluation["confusion_matrix"][0]) == 10
    assert {"class", "precision", "recall", "f1", "specificity", "support"} <= set(evaluation["per_class"][0])

    assert main(["list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["name"] == "cli_model" and "test_accuracy" in rows[0]

    assert main(["export", "cli_model", str(tmp_path / "out.keras")]) == 0
    assert (tmp_path / "out.keras").is_file()
    assert main(["delete", "cli_model"]) == 0
    assert registry.list() == []


def test_bad_input_exit_code_2_one_line_no_traceback(registry):
    for args in (["train", "--arch", "seed004_cnn", "--epochs", "0"],
                 ["train", "--arch", "seed004_cnn", "--lr", "-1", "--epochs", "1"],
                 ["train", "--arch", "seed004_cnn", "--name", "../escape", "--epochs", "1"],
                 ["evaluate", "missing_model"],
                 ["delete", "../../etc"]):
        result = run_cli(*args)
        assert result.returncode == 2, (args, result.stderr)
        assert "Traceback" not in result.stderr
        assert result.stderr.strip().count("\n") == 0, result.stderr


def test_weights_file_applies_to_imagenet_architectures_only(registry, tmp_path, capsys):
    capsys.readouterr()
    assert main(["train", "--arch", "seed004_cnn", "--weights", str(tmp_path / "w.h5"), "--epochs", "1"]) == 2
    assert "--arch vgg16_transfer" in capsys.readouterr().err
    assert main(["train", "--arch", "vgg16_transfer", "--weights", str(tmp_path / "missing.h5"), "--epochs", "1"]) == 2
    err = capsys.readouterr().err
    assert "file not found" in err and err.count("\n") == 1


def test_unknown_arch_is_usage_error(registry):
    result = run_cli("train", "--arch", "nope")
    assert result.returncode == 2


def test_cv_json(registry, capsys):
    assert main(["cv", "--arch", "seed004_cnn", "--folds", "2", "--epochs", "1", "--limit", "300", "--json", "--quiet"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert len(result["folds"]) == 2 and "mean_test_accuracy" in result and "std_test_accuracy" in result


def test_train_option_reaches_the_builder_and_the_command(registry, capsys):
    code = main(["train", "--arch", "seed004_cnn", "--option", "output=sigmoid", "--epochs", "1", "--limit", "300",
                 "--name", "sig", "--json", "--quiet"])
    assert code == 0, capsys.readouterr()
    entry = registry.get("sig")
    assert entry.metadata["hyper_parameters"]["build_options"] == {"output": "sigmoid"}
    assert "--option output=sigmoid" in entry.metadata["command"]
    assert registry.load_classifier("sig").get_layer("sigmoid_log") is not None
    for bad in (["--option", "output"], ["--option", "colour=1"]):
        result = run_cli("train", "--arch", "seed004_cnn", "--epochs", "1", *bad)
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
        assert result.stderr.strip().count("\n") == 0


def test_train_preset_quick_json_reports_its_own_clock(registry, capsys):
    """The preset's knobs reach the run (here shrunk: 1 epoch, 300 images, width 8) and the JSON
    has the command's own wall clock; the preset is recorded with the model."""
    code = main(["train", "--preset", "quick", "--epochs", "1", "--limit", "300", "--option", "width=8",
                 "--name", "quick_small", "--json", "--quiet"])
    payload = json.loads(capsys.readouterr().out)
    assert code == 0 and payload["preset"] == "quick"
    assert payload["wall_seconds"] >= payload["train_seconds"] > 0
    hp = registry.get("quick_small").metadata["hyper_parameters"]
    assert hp["preset"] == "quick" and hp["arch"] == "fashion_net" and hp["batch_size"] == 256
    assert hp["build_options"] == {"width": 8, "random_erasing": False}
    result = run_cli("train", "--preset", "quick", "--arch", "seed004_cnn")
    assert result.returncode == 2 and result.stderr.strip().count("\n") == 0 and "drop --arch" in result.stderr
    result = run_cli("train", "--epochs", "1")
    assert result.returncode == 2 and "--arch ARCH or --preset NAME" in result.stderr


MIRRORED_RUN = """
import sys
import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]  # two logical CPU devices stand in for two GPUs
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from fashion_core.cli import main

sys.exit(main(["train", "--arch", "seed004_cnn", "--epochs", "1", "--limit", "300", "--devices", "2",
               "--name", "mirrored", "--json", "--quiet"]))
"""


@pytest.mark.slow
def test_train_on_two_devices_with_mirrored_strategy(registry, tmp_path):
    """``--devices 2`` trains one model over two devices (a fresh process: TensorFlow's devices
    are fixed once it starts) and registers it like any run."""
    script = tmp_path / "mirrored.py"
    script.write_text(MIRRORED_RUN)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent), "FASHION_MODELS_DIR": str(registry.root)}
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout)["name"] == "mirrored"
    entry = registry.get("mirrored")
    assert entry.metadata["hyper_parameters"]["devices"] == 2
    assert registry.load_classifier("mirrored").output_shape[-1] == 10  # a normal registry model


def test_devices_beyond_the_machine_are_one_line_exit_2(registry, capsys):
    for devices, message in (("64", "64 devices asked for"), ("two", "--devices takes a whole number")):
        assert main(["train", "--arch", "seed004_cnn", "--epochs", "1", "--limit", "100", "--devices", devices]) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1
