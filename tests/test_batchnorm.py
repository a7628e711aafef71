"""Batch norm as in the paper's code (PyTorch's BatchNorm2d), and BN recalibration after pruning.

The reference is PyTorch's documented update, written out in NumPy (PyTorch's ``momentum`` m is
tf_keras' 1 − m): ``running_mean = (1 − m)·running_mean + m·batch_mean`` and
``running_var = (1 − m)·running_var + m·unbiased_batch_var``; training normalises with the biased
batch variance, inference with the running statistics, epsilon inside the square root.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from clirun import run_ok
from tfrewind._keras import keras, tf, tfmot
from tfrewind.batchnorm import batch_norm_layers, recalibrate_bn
from tfrewind.config import PruneConfig
from tfrewind.models import BatchNorm, build_model, load_model_file
from tfrewind.pruning import prune

TORCH_MOMENTUM, TORCH_EPS = 0.1, 1e-5


def torch_running_stats(batches: list[np.ndarray], momentum: float = TORCH_MOMENTUM, unbiased: bool = True):
    """PyTorch's BatchNorm running statistics after ``batches`` (channels last), from mean 0 / var 1."""
    channels = batches[0].shape[-1]
    mean, var = np.zeros(channels), np.ones(channels)
    for batch in batches:
        flat = batch.reshape(-1, channels).astype(np.float64)
        batch_var = flat.var(axis=0, ddof=1 if unbiased else 0)
        mean = (1 - momentum) * mean + momentum * flat.mean(axis=0)
        var = (1 - momentum) * var + momentum * batch_var
    return mean, var


def torch_average_stats(batches: list[np.ndarray]):
    """PyTorch's ``momentum=None`` (cumulative average): the plain mean of the batches' statistics."""
    channels = batches[0].shape[-1]
    flats = [b.reshape(-1, channels).astype(np.float64) for b in batches]
    return np.mean([f.mean(axis=0) for f in flats], axis=0), np.mean([f.var(axis=0, ddof=1) for f in flats], axis=0)


def random_batches(count: int, shape=(4, 8, 8, 1), seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.normal(1.0, 2.0, size=shape).astype("float32") for _ in range(count)]


def test_the_paper_models_use_pytorch_batch_norm_and_applications_keep_theirs():
    for name, shape in (("small_cnn", (8, 8, 1)), ("resnet20", (8, 8, 3)), ("vgg16", (8, 8, 3))):
        layers = batch_norm_layers(build_model(name, shape, 10))
        assert layers and {(bn.momentum, bn.epsilon) for bn in layers} == {(0.9, 1e-5)}, name
    custom = batch_norm_layers(build_model("small_cnn", (8, 8, 1), 10, bn=BatchNorm(momentum=0.99, epsilon=1e-3)))
    assert {(bn.momentum, bn.epsilon) for bn in custom} == {(0.99, 1e-3)}
    mobilenet = build_model("mobilenet_v2", (32, 32, 3), 10, bn=BatchNorm(momentum=0.5, epsilon=0.1))
    assert {bn.momentum for bn in batch_norm_layers(mobilenet)} == {0.999}  # Keras' own MobileNetV2 setting


def test_training_updates_the_moving_statistics_as_pytorch_does():
    """``fit`` with lr 0 (the convolution stays fixed) on 3 known batches: bn1's statistics and outputs."""
    model = build_model("small_cnn", (8, 8, 1), 10)
    model.compile(optimizer=keras.optimizers.SGD(0.0), loss=keras.losses.SparseCategoricalCrossentropy(True))
    batches = random_batches(3)
    model.fit(np.concatenate(batches), np.zeros(12, "int64"), batch_size=4, epochs=1, shuffle=False, verbose=0)
    conv1, bn1 = model.get_layer("conv1"), model.get_layer("bn1")
    features = [conv1(b).numpy() for b in batches]
    mean, var = torch_running_stats(features)
    np.testing.assert_allclose(bn1.moving_mean.numpy(), mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(bn1.moving_variance.numpy(), var, rtol=1e-5)
    _, biased = torch_running_stats(features, unbiased=False)  # the check tells the two apart
    assert np.max(np.abs(bn1.moving_variance.numpy() - biased) / biased) > 1e-4
    x = features[0]
    expected = (x - mean) / np.sqrt(var + TORCH_EPS)  # gamma 1, beta 0: lr 0 kept them
    np.testing.assert_allclose(bn1(x, training=False).numpy(), expected, rtol=1e-4, atol=1e-4)
    flat = x.reshape(-1, x.shape[-1])
    in_training = (x - flat.mean(0)) / np.sqrt(flat.var(0) + TORCH_EPS)
    np.testing.assert_allclose(bn1(x, training=True).numpy(), in_training, rtol=1e-4, atol=1e-4)


def test_a_batch_norm_on_dense_features_updates_with_the_biased_variance_as_documented():
    """VGG's ``fc1_bn`` (2-D inputs) runs tf_keras' non-fused path: (n − 1)/n of PyTorch's variance update."""
    layer = BatchNorm().layer("fc1_bn")
    step = tf.function(lambda x: layer(x, training=True))
    batches = random_batches(3, shape=(8, 16))
    for batch in batches:
        step(batch)
    _, biased = torch_running_stats(batches, unbiased=False)
    _, unbiased = torch_running_stats(batches)
    np.testing.assert_allclose(layer.moving_variance.numpy(), biased, rtol=1e-5)
    assert np.min(np.abs(layer.moving_variance.numpy() - unbiased)) > 1e-3


def test_a_model_saved_with_keras_batch_norm_defaults_loads_with_them(tmp_path):
    path = tmp_path / "old.keras"
    build_model("small_cnn", (8, 8, 1), 10, bn=BatchNorm(momentum=0.99, epsilon=1e-3)).save(path)
    assert {(bn.momentum, bn.epsilon) for bn in batch_norm_layers(load_model_file(path))} == {(0.99, 1e-3)}


def _features(model: keras.Model, layer: str, batches: list[np.ndarray]) -> list[np.ndarray]:
    """What ``layer`` outputs when every earlier BN normalises with batch statistics (training mode)."""
    upto = keras.Model(model.input, model.get_layer(layer).output)
    return [upto(b, training=True).numpy() for b in batches]


def test_recalibration_averages_the_batches_like_pytorch_momentum_none_inside_a_nested_frozen_model():
    inner = build_model("small_cnn", (8, 8, 1), 10)
    batches = random_batches(3)
    expected = {name: torch_average_stats(_features(inner, conv, batches))
                for name, conv in (("bn1", "conv1"), ("bn4", "conv4"))}
    inner.trainable = False  # a frozen backbone: its BN must still be recalibrated, then stay frozen
    outer = keras.Sequential([keras.Input((8, 8, 1)), inner, keras.layers.Dense(3)])
    outer.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    weights = [w.numpy().copy() for w in outer.weights if "moving" not in w.name]
    result = recalibrate_bn(outer, batches)
    assert (result.ran, result.batches, result.layers, result.average) == (True, 3, 4, "cumulative")
    for name, (mean, var) in expected.items():
        bn = inner.get_layer(name)
        np.testing.assert_allclose(bn.moving_mean.numpy(), mean, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(bn.moving_variance.numpy(), var, rtol=1e-4)
        assert (bn.momentum, bn.trainable, "call" in vars(bn)) == (0.9, False, False)  # all put back
    assert all(np.array_equal(a, w.numpy()) for a, w in zip(weights, [w for w in outer.weights
                                                                    if "moving" not in w.name]))
    assert int(outer.optimizer.iterations.numpy()) == 0
    stats = inner.get_layer("bn4").moving_mean.numpy().copy()
    outer.predict(batches[0], verbose=0)  # predictions are inference again: statistics stay
    np.testing.assert_array_equal(inner.get_layer("bn4").moving_mean.numpy(), stats)


def test_exponential_recalibration_keeps_the_layers_momentum():
    model = build_model("small_cnn", (8, 8, 1), 10)
    batches = random_batches(2)
    features = _features(model, "conv1", batches)
    recalibrate_bn(model, batches, cumulative=False)
    mean, var = torch_running_stats(features)
    np.testing.assert_allclose(model.get_layer("bn1").moving_mean.numpy(), mean, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(model.get_layer("bn1").moving_variance.numpy(), var, rtol=1e-4)


def test_recalibration_keeps_pruning_masks_and_counts_no_pruning_step():
    pruned = prune(build_model("small_cnn", (8, 8, 1), 10), PruneConfig(method="global_magnitude", sparsity=0.6),
                   seed=0).model
    whole = tfmot.sparsity.keras.prune_low_magnitude(  # a user's model: tfmot wraps the BN layers too
        build_model("small_cnn", (8, 8, 1), 10), pruning_schedule=tfmot.sparsity.keras.ConstantSparsity(0.5, 0))
    for model in (pruned, whole):
        frozen = {w.name: w.numpy().copy() for w in model.weights if "moving" not in w.name}
        before = {bn.name: bn.moving_mean.numpy().copy() for bn in batch_norm_layers(model)}
        assert recalibrate_bn(model, random_batches(2)).layers == 4
        after = {w.name: w.numpy() for w in model.weights if w.name in frozen}
        assert all(np.array_equal(frozen[name], after[name]) for name in frozen)  # kernels, masks, pruning steps
        assert all(not np.allclose(bn.moving_mean.numpy(), before[bn.name]) for bn in batch_norm_layers(model))


def test_a_model_without_batch_norm_is_left_alone():
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(10)])
    result = recalibrate_bn(model, random_batches(2), requested=5)
    assert (result.ran, result.layers, result.requested) == (False, 0, 5)


def test_train_recalibrates_after_pruning_and_after_retraining_and_records_it(tmp_path):
    out = tmp_path / "run"
    run_ok(["train", "--epochs", "1", "--prune", "l1_filter", "--sparsity", "0.5", "--schedule", "fine_tune",
            "--budget", "2", "--recalibrate-bn", "3", "--set", "retrain.recalibrate_bn=50",
            "--bn-momentum", "0.99", "--bn-epsilon", "0.001", "--export", "none", "--quiet", "--out", str(out)])
    original = load_model_file(out / "original" / "model.keras")
    assert {(bn.momentum, bn.epsilon) for bn in batch_norm_layers(original)} == {(0.99, 1e-3)}
    pruned = json.loads((out / "prune" / "metrics.json").read_text())
    assert pruned["recalibrate_bn"] == {"ran": True, "batches": 3, "requested": 3, "layers": 4,
                                        "average": "cumulative"}
    retrained = json.loads((out / "retrain" / "metrics.json").read_text())
    steps = retrained["steps_per_epoch"]
    assert retrained["recalibrate_bn"]["ran"] and retrained["recalibrate_bn"]["batches"] == min(50, steps)
    per_epoch = retrained["history"]["test_accuracy"]
    assert len(per_epoch) == 2 and per_epoch[-1] == retrained["test_accuracy_before_recalibration"]
