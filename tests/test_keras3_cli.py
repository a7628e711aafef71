"""`tfrewind train --model keras3_model.keras …` as a Keras 3 user runs it: a Keras 3 file comes back.

The Keras 3 file written at the end is loaded with Keras 3 itself and compared here with the
run's tf_keras model, its verified TFLite file and the pruning target — nothing taken on trust
from the run's own reports.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from clirun import run_ok
from litert_run import litert_logits
from tfrewind.models import load_model_file

keras = pytest.importorskip("keras")


def close(a, b) -> bool:
    """The translation's bound: max |Δ| ≤ 1e-5, relative to the largest |output| beyond 1 (trained
    logits; the two APIs' kernels round differently by ~1e-6 of each layer's scale)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b))) <= 1e-5 * max(1.0, float(np.max(np.abs(b))))


def _digits_images(bundle, limit=128) -> np.ndarray:
    return np.concatenate([x.numpy() for x, _ in bundle.test])[:limit]


def _kernels(model) -> dict[str, np.ndarray]:
    """Conv/Dense kernels by layer name, nested models included."""
    out = {}
    for layer in model.layers:
        if hasattr(layer, "layers"):
            out.update(_kernels(layer))
        elif any(k in type(layer).__name__ for k in ("Conv", "Dense")) and layer.weights:
            out[layer.name] = np.asarray(layer.get_weights()[0])
    return out


def _pruned_layers(run) -> set[str]:
    """The layers the prune stage reports it pruned (wrapped for magnitude pruning)."""
    report = json.loads((run / "prune" / "metrics.json").read_text())["report"]
    return {row["layer"] for row in report["layers"] if row["wrapped"]}


def _train(tmp_path, model, name, *args):
    path = tmp_path / f"{name}.keras"
    model.save(path)
    out = tmp_path / "run"
    run_ok(["train", "--model", path, "--epochs", "2", "--budget", "1", "--schedule", "one_cycle", "--quiet",
            "--out", out, *args])
    return out


@pytest.fixture(scope="module")
def cnn_run(tmp_path_factory):
    """A Keras 3 Sequential CNN on digits, magnitude pruning to 50 %, 1-cycle, TFLite export."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((8, 8, 1)), keras.layers.Conv2D(16, 3, padding="same", activation="relu"),
        keras.layers.BatchNormalization(), keras.layers.Conv2D(32, 3, padding="same"), keras.layers.ReLU(),
        keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(10)], name="k3_cnn")
    return _train(tmp_path_factory.mktemp("k3cnn"), model, "k3_cnn", "--prune", "magnitude", "--sparsity", "0.5")


def test_the_run_ends_with_a_keras3_file_equal_to_the_tf_keras_model_and_the_tflite(cnn_run, digits_bundle):
    model = keras.saving.load_model(cnn_run / "keras3" / "model.keras")
    assert type(model).__module__.startswith("keras.")  # Keras 3 loaded it, as a Keras 3 model
    final = load_model_file(cnn_run / "retrain" / "model_stripped.keras")
    images = _digits_images(digits_bundle)
    ours = np.asarray(model.predict(images, verbose=0))
    assert close(ours, final.predict(images, verbose=0))
    tflite = litert_logits(cnn_run / "export" / "model.tflite", images)
    assert np.max(np.abs(ours - tflite)) <= 1e-4 * max(1.0, np.max(np.abs(ours)))


def test_the_keras3_file_keeps_the_target_sparsity(cnn_run):
    model = keras.saving.load_model(cnn_run / "keras3" / "model.keras")
    final = _kernels(load_model_file(cnn_run / "retrain" / "model_stripped.keras"))
    kernels = _kernels(model)
    assert kernels.keys() == final.keys()
    pruned = _pruned_layers(cnn_run)
    assert len(pruned) == 3, pruned  # two convs and the dense head
    for name, kernel in kernels.items():
        assert np.array_equal(kernel == 0, final[name] == 0), name  # the same zeros, exactly zero
        if name in pruned:
            assert np.mean(kernel == 0) >= 0.5 - 1 / kernel.size, name


def test_export_format_keras3_writes_a_keras3_file_for_any_run(cnn_run, tmp_path):
    run_ok(["export", cnn_run, "--format", "keras3", "--out", tmp_path / "k3"])
    model = keras.saving.load_model(tmp_path / "k3" / "model.keras")
    final = load_model_file(cnn_run / "retrain" / "model_stripped.keras")
    x = np.random.default_rng(3).uniform(0, 1, (6, 8, 8, 1)).astype(np.float32)
    assert close(model(x), final(x))
    report = json.loads((tmp_path / "k3" / "export.json").read_text())
    assert report["format"] == "keras3" and report["verification"]["passed"]


def test_prune_then_retrain_commands_bring_a_keras3_file_back(tmp_path):
    """`tfrewind prune k3.keras` writes a tf_keras (wrapped) model; retraining it ends in Keras 3 again."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(32, activation="relu"),
                              keras.layers.Dense(10)])
    model.save(tmp_path / "mlp.keras")
    run_ok(["prune", tmp_path / "mlp.keras", "--prune", "magnitude", "--sparsity", "0.75"])
    run_ok(["retrain", tmp_path / "mlp_pruned.keras", "--epochs", "2", "--budget", "1", "--schedule", "fine_tune",
            "--quiet", "--out", tmp_path / "run"])
    back = keras.saving.load_model(tmp_path / "run" / "keras3" / "model.keras")
    for name, kernel in _kernels(back).items():
        assert np.mean(kernel == 0) >= 0.75 - 1 / kernel.size, name


def test_export_takes_a_keras3_model_file(cnn_run, tmp_path):
    """`tfrewind export model.keras` with a file Keras 3 wrote: translated, converted, run in LiteRT."""
    run_ok(["export", cnn_run.parent / "k3_cnn.keras", "--out", tmp_path / "tflite"])
    report = json.loads((tmp_path / "tflite" / "export.json").read_text())
    assert report["verification"]["passed"] and (tmp_path / "tflite" / "model.tflite").stat().st_size > 0


def _residual_concat(shape):
    inputs = keras.Input(shape)
    x = keras.layers.Conv2D(16, 3, padding="same", name="stem")(inputs)
    x = keras.layers.ReLU()(keras.layers.BatchNormalization()(x))
    y = keras.layers.Conv2D(32, 3, padding="same", name="widen")(x)  # its filters reach only BN/ReLU/conv
    y = keras.layers.ReLU()(keras.layers.BatchNormalization()(y))
    y = keras.layers.Conv2D(16, 3, padding="same", name="narrow")(y)
    x = keras.layers.Add()([x, y])
    x = keras.layers.Concatenate()([x, inputs * 2.0])
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(10)(x), name="residual_concat")


def test_filter_pruning_a_keras3_functional_model_gives_a_smaller_keras3_model(tmp_path, digits_bundle):
    keras.utils.set_random_seed(0)
    original = _residual_concat((8, 8, 1))
    run = _train(tmp_path, original, "residual", "--prune", "l1_filter", "--sparsity", "0.5", "--export", "none")
    model = keras.saving.load_model(run / "keras3" / "model.keras")
    assert model.count_params() < original.count_params()
    assert _kernels(model)["widen"].shape[-1] < 32
    final = load_model_file(run / "retrain" / "model_stripped.keras")
    images = _digits_images(digits_bundle)
    assert close(model.predict(images, verbose=0), final.predict(images, verbose=0))


def _applied(application, **kwargs):
    """A Keras 3 application nested in a Sequential, as transfer learning builds it."""
    backbone = application(input_shape=(32, 32, 3), include_top=False, weights=None, **kwargs)
    return keras.Sequential([keras.Input((32, 32, 3)), backbone, keras.layers.GlobalAveragePooling2D(),
                             keras.layers.Dense(10)], name="transfer")


@pytest.mark.slow  # MobileNetV2 (alpha 0.35) trained, pruned and retrained on 32×32 images: ~1 min on 2 cores
def test_nested_mobilenet_v2_comes_back_as_keras3_with_its_sparsity(tmp_path):
    keras.utils.set_random_seed(0)
    model = _applied(keras.applications.MobileNetV2, alpha=0.35)
    run = _train(tmp_path, model, "mobilenet", "--dataset", "synthetic", "--prune", "magnitude", "--sparsity", "0.5",
                 "--export", "none")
    back = keras.saving.load_model(run / "keras3" / "model.keras")
    final = _kernels(load_model_file(run / "retrain" / "model_stripped.keras"))
    kernels = _kernels(back)
    pruned = _pruned_layers(run)
    assert kernels.keys() == final.keys() and len(pruned) > 30
    for name in pruned:
        assert np.mean(kernels[name] == 0) >= 0.5 - 1 / kernels[name].size, name


@pytest.mark.slow  # EfficientNetB0: translation, training and a TFLite export take minutes on 2 cores
def test_efficientnet_b0_filter_pruned_comes_back_as_keras3_and_tflite(tmp_path):
    keras.utils.set_random_seed(0)
    model = keras.applications.EfficientNetB0(input_shape=(32, 32, 3), weights=None, classes=10)
    run = _train(tmp_path, model, "effnet", "--dataset", "synthetic", "--prune", "l1_filter", "--sparsity", "0.25")
    back = keras.saving.load_model(run / "keras3" / "model.keras")
    assert back.count_params() < model.count_params()
    x = np.random.default_rng(0).uniform(0, 1, (8, 32, 32, 3)).astype(np.float32)
    final = load_model_file(run / "retrain" / "model_stripped.keras")
    ours = np.asarray(back.predict(x, verbose=0))
    assert close(ours, final.predict(x, verbose=0))
    assert np.max(np.abs(ours - litert_logits(run / "export" / "model.tflite", x))) <= 1e-4
