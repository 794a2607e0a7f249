"""LiteRT serving (fashion_core/litert.py): same answers as TensorFlow, stale files never used."""

import numpy as np
import pytest

from fashion_core import litert, precompute, zoo

pytestmark = pytest.mark.skipif(not litert.available(), reason="ai-edge-litert is not installed")


def _model():
    return zoo.build("seed004_cnn", (28, 28, 1), 10).classifier


def test_litert_call_matches_keras_with_and_without_flip():
    model = _model()
    content = litert.flatbuffer(model)
    x = np.random.default_rng(0).random((3, 28, 28, 1), dtype=np.float32)
    expected = np.asarray(model(x, training=False))
    np.testing.assert_allclose(litert.compiled_call(content)(x), expected, atol=1e-5)
    mirrored = np.asarray(model(x[:, :, ::-1], training=False))
    call = litert.compiled_call(content, flip_tta=True)
    np.testing.assert_allclose(call(x), (expected + mirrored) / 2, atol=1e-5)
    np.testing.assert_allclose(call(x[:1]), ((expected + mirrored) / 2)[:1], atol=1e-5)  # batch size changes


def test_written_file_is_found_only_under_its_stamp(tmp_path):
    class Entry:
        path = tmp_path
        is_photo_model = True

    model = _model()
    written = litert.write(Entry, model, "aaaa")
    assert written.exists() and litert.load(Entry, "aaaa") == written.read_bytes()
    assert litert.load(Entry, "bbbb") is None  # other weights: never trusted
    litert.write(Entry, model, "bbbb")
    assert not written.exists()  # the stale file is removed
    assert litert.wanted(Entry)


def test_shipped_photo_model_is_served_through_litert_with_the_same_answer():
    from fashion_core.inference import Classifier
    from fashion_core.registry import Registry

    registry = Registry()
    names = [e.name for e in registry.list() if e.is_photo_model and litert.load(e, precompute.stamp(e))]
    if not names:
        pytest.skip("no shipped photo model with a LiteRT file")
    fast = Classifier.from_registry(names[0], registry=registry)
    assert fast._model is None and fast.embeds  # no Keras copy to answer photos; the embedding rides along
    assert fast.embedding_dims == fast.embed(np.zeros((1, *fast.image_shape), np.float32)).shape[-1]
    slow = Classifier.from_registry(names[0], registry=registry, use_litert=False)
    assert fast.runtime == "litert" and slow.runtime == "tensorflow"
    x = np.random.default_rng(1).random((2, *fast.image_shape), dtype=np.float32)
    np.testing.assert_allclose(fast.forward(x), slow.forward(x), atol=1e-4)
    from fashion_core.latent import classifier_encoder

    np.testing.assert_allclose(fast.embed(x), np.asarray(classifier_encoder(slow.model)(x)), atol=1e-4)



def test_pool_holds_at_most_its_size_and_callers_wait_their_turn():
    from concurrent.futures import ThreadPoolExecutor

    model = _model()
    pool = litert.InterpreterPool(litert.flatbuffer(model), size=2)
    batches = [np.random.default_rng(i).random((i % 3 + 1, 28, 28, 1), dtype=np.float32) for i in range(12)]
    with ThreadPoolExecutor(6) as workers:
        answers = list(workers.map(pool.run, batches))
    assert pool.made <= 2
    for batch, answer in zip(batches, answers):
        np.testing.assert_allclose(answer[0], np.asarray(model(batch, training=False)), atol=1e-5)


def test_the_embedding_rides_along_without_a_second_copy_of_the_weights():
    from fashion_core.latent import classifier_encoder

    model = _model()
    encoder = classifier_encoder(model)
    plain, both = litert.flatbuffer(model), litert.flatbuffer(model, encoder)
    assert len(both) < 1.05 * len(plain)  # the shared layers once
    call = litert.compiled_call(both, flip_tta=True)
    x = np.random.default_rng(1).random((3, 28, 28, 1), dtype=np.float32)
    np.testing.assert_allclose(call.embed(x), np.asarray(encoder(x, training=False)), atol=1e-5)
    expected = (np.asarray(model(x, training=False)) + np.asarray(model(x[:, :, ::-1], training=False))) / 2
    np.testing.assert_allclose(call(x), expected, atol=1e-5)
    assert litert.compiled_call(plain).embed is None


def test_occlusion_saliency_of_a_litert_model_needs_no_keras_copy():
    from fashion_core.inference import Classifier
    from fashion_core.saliency import saliency_maps

    model = _model()

    def refuse():
        raise AssertionError("the Keras model was loaded")

    served = Classifier(None, [str(i) for i in range(10)], (28, 28, 1), litert_model=litert.flatbuffer(model),
                        model_loader=refuse, flip_tta=True)
    x = np.random.default_rng(2).random((28, 28, 1), dtype=np.float32)
    expected = saliency_maps(model, x[None], [3], method="occlusion", flip_tta=True)[0]
    np.testing.assert_allclose(served.saliency(x, class_index=3, method="occlusion"), expected, atol=1e-4)
