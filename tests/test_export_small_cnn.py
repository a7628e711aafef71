"""Export of the small CNN on digits: float, sparse, quantized, Keras/SavedModel, errors, XNNPack.

Every check a user would make is done here independently of the library: the shipped file is
loaded in a fresh LiteRT interpreter and compared with the Keras model, and sizes are read from disk.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from litert_run import litert_logits
from tfrewind._keras import keras, tf, tfmot
from tfrewind.export import (REPORT_FILE, ExportError, UnsupportedOpError, check_xnnpack_sparse, export_model,
                             format_table, resolve_model_path)
from tfrewind.models import MODELS, save_model_atomic

FAST = dict(latency_runs=3, calibration_images=32)


def _test_arrays(bundle, limit=256):
    xs, ys = zip(*[(x.numpy(), y.numpy()) for x, y in bundle.test])
    return np.concatenate(xs)[:limit], np.concatenate(ys)[:limit]


def _agreement(a, b):
    return float(np.mean(a.argmax(-1) == b.argmax(-1)))


@pytest.fixture(scope="module")
def trained(digits_bundle):
    keras.utils.set_random_seed(1)
    model = MODELS.get("small_cnn")(digits_bundle.input_shape, digits_bundle.num_classes)
    model.compile(keras.optimizers.Adam(3e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(digits_bundle.train, epochs=3, verbose=0)
    return model


@pytest.fixture(scope="module")
def pruned_wrapped(digits_bundle, trained):
    """80 % magnitude pruning with tfmot wrappers on Conv/Dense, one epoch of retraining."""
    schedule = tfmot.sparsity.keras.ConstantSparsity(0.8, begin_step=0, frequency=1)

    def wrap(layer):
        if isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense)):
            return tfmot.sparsity.keras.prune_low_magnitude(layer, pruning_schedule=schedule)
        return layer.__class__.from_config(layer.get_config())

    model = keras.models.clone_model(trained, clone_function=wrap)
    for layer in model.layers:
        source = trained.get_layer(layer.layer.name if hasattr(layer, "layer") else layer.name)
        target = layer.layer if hasattr(layer, "layer") else layer
        target.set_weights(source.get_weights())
    model.compile(keras.optimizers.Adam(1e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(digits_bundle.train, epochs=1, verbose=0, callbacks=[tfmot.sparsity.keras.UpdatePruningStep()])
    return model


@pytest.fixture(scope="module")
def stripped(pruned_wrapped):
    return tfmot.sparsity.keras.strip_pruning(pruned_wrapped)


def test_dense_float_export_runs_and_matches_keras(trained, digits_bundle, tmp_path):
    report = export_model(trained, tmp_path, data=digits_bundle, **FAST)
    path = tmp_path / "model.tflite"
    assert path.is_file() and report.main_file == path
    images, labels = _test_arrays(digits_bundle)
    ours, theirs = litert_logits(path, images), trained.predict(images, verbose=0)
    assert np.max(np.abs(ours - theirs)) <= 1e-3 * np.max(np.abs(theirs))
    assert _agreement(ours, theirs) >= 0.99
    assert "sparse" not in report.encoding.split(",")[1]  # a dense model gets no sparse encoding
    assert report.accuracy == pytest.approx(report.keras_accuracy, abs=0.01)
    assert report.accuracy > 0.5  # a trained model, evaluated on real test images
    assert set(report.latency_ms) == {"1", "2"} and all(ms > 0 for ms in report.latency_ms.values())
    saved = json.loads((tmp_path / REPORT_FILE).read_text())
    assert saved["files"][0]["bytes"] == path.stat().st_size
    assert saved["macs"] > saved["params"] > 0
    assert str(path) in format_table(report)


def test_pruned_model_is_stripped_sparse_encoded_and_smaller(pruned_wrapped, stripped, digits_bundle, tmp_path):
    report = export_model(pruned_wrapped, tmp_path, data=digits_bundle, **FAST)
    path = report.main_file
    assert report.stripped_pruning_wrappers
    assert "sparse encoding" in report.encoding
    dense = export_model(stripped, tmp_path / "dense", sparse=False, data=digits_bundle, latency_runs=0)
    assert path.stat().st_size < 0.5 * dense.main_file.stat().st_size
    assert report.files[0].gzip_bytes < dense.files[0].gzip_bytes
    images, _ = _test_arrays(digits_bundle)
    ours, theirs = litert_logits(path, images), stripped.predict(images, verbose=0)
    assert np.max(np.abs(ours - theirs)) <= 1e-3 * np.max(np.abs(theirs))
    for layer in report.layers:  # every Conv/Dense kept its ~80 % zeros in the file
        assert layer.file_sparsity is not None and layer.file_sparsity >= 0.79, layer


def test_sparse_encoding_can_be_turned_off(stripped, digits_bundle, tmp_path):
    report = export_model(stripped, tmp_path, sparse=False, data=digits_bundle, latency_runs=0)
    assert "dense encoding" in report.encoding
    assert report.main_file.stat().st_size >= 0.95 * report.reference.bytes


@pytest.mark.parametrize("quantize", ["dynamic", "int8", "float16"])
def test_quantized_sparse_model_ships_a_file_that_runs(quantize, stripped, digits_bundle, tmp_path):
    report = export_model(stripped, tmp_path, quantize=quantize, data=digits_bundle, **FAST)
    path = tmp_path / f"model_{quantize}.tflite"
    assert report.main_file == path
    images, _ = _test_arrays(digits_bundle)
    ours, theirs = litert_logits(path, images), stripped.predict(images, verbose=0)
    assert _agreement(ours, theirs) >= 0.9
    assert path.stat().st_size < 0.5 * report.reference.bytes
    assert report.files[0].gzip_bytes < report.reference.gzip_bytes
    for layer in report.layers:  # quantization may round more weights to zero, never fewer
        assert layer.file_sparsity is None or layer.file_sparsity >= 0.79
    if quantize in ("dynamic", "int8"):  # sparse + quantized does not run under LiteRT's XNNPack: fallback
        assert "dense encoding" in report.encoding
        assert "fallback" in report.encoding_reason
        assert "does not run" in report.attempts[0]["outcome"]


def test_keras_and_saved_model_formats_reload(stripped, digits_bundle, tmp_path):
    images, _ = _test_arrays(digits_bundle, limit=64)
    expected = stripped.predict(images, verbose=0)
    keras_report = export_model(stripped, tmp_path / "k", format="keras", data=digits_bundle)
    reloaded = keras.models.load_model(tmp_path / "k" / "model.keras", compile=False)
    assert not any("prune" in layer.name for layer in reloaded.layers)
    np.testing.assert_allclose(reloaded.predict(images, verbose=0), expected, atol=1e-5)
    assert keras_report.accuracy == pytest.approx(keras_report.keras_accuracy)
    export_model(stripped, tmp_path / "s", format="saved_model", data=digits_bundle)
    serve = tf.saved_model.load(str(tmp_path / "s" / "saved_model")).signatures["serving_default"]
    (name,) = serve.structured_input_signature[1].keys()
    out = next(iter(serve(**{name: tf.constant(images)}).values())).numpy()
    np.testing.assert_allclose(out, expected, atol=1e-5)


def test_model_path_and_run_directory_inputs(trained, digits_bundle, tmp_path):
    stage = tmp_path / "run" / "original"
    save_model_atomic(trained, stage / "model.keras")
    (stage / "metrics.json").write_text("{}")
    report = export_model(tmp_path / "run", tmp_path / "run" / "export", format="keras", data=digits_bundle)
    assert report.model == str(stage / "model.keras") and report.main_file.is_file()
    (tmp_path / "run" / "export" / "metrics.json").write_text("{}")  # as the pipeline's export stage does
    assert resolve_model_path(tmp_path / "run") == stage / "model.keras"  # an export is not a result


class ExtractPatches(keras.layers.Layer):
    """ExtractImagePatches has no TFLite builtin kernel."""

    def call(self, x):
        return tf.image.extract_patches(x, sizes=[1, 2, 2, 1], strides=[1, 1, 1, 1], rates=[1, 1, 1, 1],
                                        padding="SAME")


def test_unsupported_op_names_the_op_and_the_option(tmp_path):
    inputs = keras.Input((8, 8, 1))
    outputs = keras.layers.Dense(3)(keras.layers.Flatten()(ExtractPatches()(inputs)))
    with pytest.raises(UnsupportedOpError) as info:
        export_model(keras.Model(inputs, outputs), tmp_path, latency_runs=0)
    message = str(info.value)
    assert "ExtractImagePatches" in message and "--allow-select-tf-ops" in message
    assert len(message.splitlines()) == 1
    assert not list(tmp_path.glob("*.tflite"))


def test_bad_options_are_user_errors(trained, tmp_path):
    with pytest.raises(ExportError, match="calibration"):
        export_model(trained, tmp_path, quantize="int8")
    with pytest.raises(ExportError, match="tflite only"):
        export_model(trained, tmp_path, format="keras", quantize="dynamic")
    with pytest.raises(ExportError, match="choose one of"):
        export_model(trained, tmp_path, quantize="int4")


def test_xnnpack_check_names_the_layer_that_breaks_the_rules(trained, digits_bundle, tmp_path):
    report = export_model(trained, tmp_path, data=digits_bundle, xnnpack_sparse=True, latency_runs=0)
    check = report.xnnpack_sparse
    assert not check["compatible"] and check["layer"] == "conv1" and "conv1" in check["problem"]
    assert "XNNPack sparse" in format_table(report)

    def net(middle):
        inputs = keras.Input((16, 16, 3))
        x = keras.layers.ZeroPadding2D(1)(inputs)
        x = keras.layers.Conv2D(8, 3, strides=2, padding="valid")(x)
        x = keras.layers.ReLU()(x)
        x = middle(x)
        x = keras.layers.GlobalAveragePooling2D(keepdims=True)(x)
        return keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Flatten()(x)))

    good = check_xnnpack_sparse(net(keras.layers.Conv2D(16, 1, name="pointwise")))
    assert good.compatible and good.eligible_layers == ["pointwise"]
    bad = check_xnnpack_sparse(net(keras.layers.Conv2D(16, 3, padding="same", name="full3x3")))
    assert not bad.compatible and bad.layer == "full3x3" and "full3x3" in bad.problem
