import numpy as np
import pytest

from fashion_core import zoo
from fashion_core.errors import InvalidParameterError
from fashion_core.training import TrainConfig, TrainingProgress, cross_validate, sweep, train

pytestmark = pytest.mark.slow  # trains models: `-m "not slow"` skips it


@pytest.mark.parametrize("arch", ["fashion_net", "seed003_cnn", "seed004_cnn", "conv_autoencoder", "deep_autoencoder_dnn"])
@pytest.mark.parametrize("shape,classes", [((28, 28, 1), 10), ((32, 32, 3), 4)])
def test_every_architecture_builds_with_dataset_shape(arch, shape, classes):
    bundle = zoo.build(arch, shape, classes)
    x = np.random.rand(2, *shape).astype(np.float32)
    probs = np.asarray(bundle.classifier(x, training=False))
    assert probs.shape == (2, classes)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-4)
    if zoo.get_spec(arch).pretrain:
        assert np.asarray(bundle.autoencoder(x)).shape == x.shape
        assert bundle.encoder.output.shape[0] is None


def test_vgg16_transfer_builds_offline_without_weights():
    bundle = zoo.build("vgg16_transfer", (28, 28, 1), 10, weights=None)
    probs = np.asarray(bundle.classifier(np.zeros((1, 28, 28, 1), np.float32)))
    assert probs.shape == (1, 10)


def test_vgg16_transfer_from_a_local_copy_of_keras_weights_file(tmp_path):
    """Offline, VGG16 takes a local copy of Keras' ImageNet file (the legacy-HDF5 layout Keras
    downloads): a stand-in of that file, made here, lands in the frozen base; a missing file is one
    line."""
    import h5py
    import keras
    from keras.src.legacy.saving import legacy_h5_format

    base = keras.applications.VGG16(include_top=False, weights=None, input_shape=(32, 32, 3))
    base.set_weights([np.full_like(w, 0.001 * (i + 1)) for i, w in enumerate(base.get_weights())])
    stand_in = tmp_path / zoo.VGG16_WEIGHTS_FILE
    with h5py.File(stand_in, "w") as handle:
        legacy_h5_format.save_weights_to_hdf5_group(handle, base)
    model = zoo.build("vgg16_transfer", (28, 28, 1), 10, weights=str(stand_in)).classifier
    loaded = [layer for layer in model.layers if layer.name.startswith("vgg16")][0]
    assert not loaded.trainable
    for i, weight in enumerate(loaded.get_weights()):
        np.testing.assert_allclose(weight, 0.001 * (i + 1), rtol=1e-6)
    with pytest.raises(InvalidParameterError, match="weights file not found"):
        zoo.build("vgg16_transfer", (28, 28, 1), 10, weights=str(tmp_path / "missing.h5"))


def test_unknown_architecture_lists_choices():
    with pytest.raises(InvalidParameterError, match="fashion_net"):
        zoo.build("resnet9000", (28, 28, 1), 10)


@pytest.mark.parametrize("field,value", [
    ("epochs", 0), ("epochs", -3), ("epochs", 10**6), ("batch_size", 0), ("batch_size", 10**7),
    ("learning_rate", 0.0), ("learning_rate", -1.0), ("learning_rate", float("nan")), ("learning_rate", 1e6),
    ("validation_fraction", 0.9), ("optimizer", "adamax"), ("epochs", 2.5),
])
def test_invalid_parameters_rejected_before_work(field, value):
    with pytest.raises(InvalidParameterError):
        TrainConfig(arch="seed004_cnn", **{field: value}).resolve()


class Recorder(TrainingProgress):
    def __init__(self):
        self.batches, self.epochs, self.stages = 0, [], []

    def on_stage_begin(self, stage, epochs, steps_per_epoch):
        self.stages.append((stage, epochs, steps_per_epoch))

    def on_batch_end(self, stage, epoch, batch, logs):
        self.batches += 1

    def on_epoch_end(self, stage, epoch, logs):
        self.epochs.append((stage, epoch, logs))


@pytest.mark.parametrize("arch", ["fashion_net", "seed003_cnn", "deep_autoencoder_dnn"])
def test_train_one_epoch_reports_progress(small_dataset, arch):
    recorder = Recorder()
    result = train(small_dataset, TrainConfig(arch=arch, epochs=1, batch_size=128, limit=600), progress=recorder)
    assert recorder.batches > 0
    stages = [s for s, _, _ in recorder.stages]
    assert stages[-1] == "classifier"
    assert "val_accuracy" in recorder.epochs[-1][2]
    assert result.history["classifier"]["loss"]
    probs = np.asarray(result.model(small_dataset.x_test[:3].astype(np.float32) / 255))
    assert probs.shape == (3, 10)


def test_mixed_precision_model_is_saved_as_float32(small_dataset):
    result = train(small_dataset, TrainConfig(arch="seed004_cnn", epochs=1, limit=300, precision="mixed_bfloat16"))
    assert all(w.dtype == "float32" for w in result.model.weights)


def test_cancel_stops_training(small_dataset):
    class Cancel(Recorder):
        def should_stop(self):
            return self.batches >= 2

    progress = Cancel()
    result = train(small_dataset, TrainConfig(arch="seed004_cnn", epochs=3, limit=1000, batch_size=32), progress=progress)
    assert result.cancelled
    assert progress.batches < 20


def test_cross_validation_on_tiny_data(small_dataset):
    result = cross_validate(small_dataset, TrainConfig(arch="seed004_cnn", epochs=1, limit=400, validation_fraction=0.0), folds=3)
    assert len(result["folds"]) == 3
    accs = [f["test_accuracy"] for f in result["folds"]]
    assert result["mean_test_accuracy"] == pytest.approx(np.mean(accs))
    assert result["std_test_accuracy"] == pytest.approx(np.std(accs))


def test_sweep_records_every_run(small_dataset):
    result = sweep(small_dataset, TrainConfig(arch="seed004_cnn", epochs=1, limit=300),
                   optimizers=("adam", "sgd"), learning_rates=(1e-3, 1e-2))
    assert len(result["runs"]) == 4
    assert {(r["optimizer"], r["learning_rate"]) for r in result["runs"]} == {
        ("adam", 1e-3), ("adam", 1e-2), ("sgd", 1e-3), ("sgd", 1e-2)}
    assert result["best"] in result["runs"]


def test_sweep_validates_all_settings_first(small_dataset):
    with pytest.raises(InvalidParameterError):
        sweep(small_dataset, TrainConfig(arch="seed004_cnn", epochs=1, limit=300), optimizers=("adam",), learning_rates=(1e-3, -1))


def test_seed004_sigmoid_head_is_the_papers_normalised_sigmoid(tmp_path):
    """output=sigmoid: probabilities are σ(z)/Σσ(z) of the last dense layer (what Keras'
    categorical cross-entropy trains on a sigmoid output), they sum to 1, and the file loads in
    safe mode."""
    import keras

    from fashion_core.registry import load_keras_file

    model = zoo.build("seed004_cnn", (28, 28, 1), 10, output="sigmoid").classifier
    x = np.random.rand(3, 28, 28, 1).astype(np.float32)
    probs = np.asarray(model(x, training=False))
    logits_model = keras.Model(model.input, model.get_layer("sigmoid_log").input)
    dense = model.get_layer("sigmoid_log")
    kernel, bias = dense.get_weights()
    z = np.asarray(logits_model(x)) @ kernel + bias
    sigmoid = 1 / (1 + np.exp(-z))
    np.testing.assert_allclose(probs, sigmoid / sigmoid.sum(axis=1, keepdims=True), atol=1e-5)
    path = tmp_path / "sigmoid.keras"
    model.save(path)
    np.testing.assert_allclose(np.asarray(load_keras_file(path)(x, training=False)), probs, atol=1e-6)


def test_build_options_are_checked_against_the_architecture():
    assert zoo.build_options_of("seed004_cnn") == {"output": "softmax"}
    TrainConfig(arch="fashion_net", build_options={"width": 16, "random_erasing": False}).resolve()
    for options in ({"nope": 1}, {"width": "wide"}, {"random_erasing": 3}):
        with pytest.raises(InvalidParameterError):
            TrainConfig(arch="fashion_net", build_options=options).resolve()
    with pytest.raises(InvalidParameterError):
        zoo.build("seed004_cnn", (28, 28, 1), 10, output="tanh")
