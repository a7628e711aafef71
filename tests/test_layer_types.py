"""Every Conv/Dense layer type: the weights tfmot prunes are the weights every check counts, and MACs.

tfmot prunes one weight per layer type (its ``PruneRegistry``): ``kernel`` of Conv1D/2D/3D, the
transposed convs and Dense, only ``pointwise_kernel`` of SeparableConv1D/2D, nothing of
DepthwiseConv2D. The prune report, the retrain check, the sparsity monitor and the export stats
must all count that weight, or a correctly pruned model fails its own checks (issue 11, item 2).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from clirun import run_cli
from tbreader import read_scalars
from tfrewind._keras import keras
from tfrewind.config import PruneConfig
from tfrewind.export.stats import layer_stats
from tfrewind.pruning.wrappers import strip
from tfrewind.monitor import SparsityMonitor
from tfrewind.targets import check_retrained_sparsity
from tfrewind.pruning import macs_per_layer, prune, pruning_callbacks

L = keras.layers
TARGET = 0.75

# (layer, input shape without batch, the attribute tfmot prunes)
PRUNABLE = {
    "conv1d": (lambda: L.Conv1D(8, 3, name="target"), (10, 4), "kernel"),
    "conv2d": (lambda: L.Conv2D(8, 3, name="target"), (6, 6, 4), "kernel"),
    "conv3d": (lambda: L.Conv3D(8, 3, name="target"), (4, 4, 4, 4), "kernel"),
    "conv2d_transpose": (lambda: L.Conv2DTranspose(8, 3, strides=2, name="target"), (4, 4, 4), "kernel"),
    "conv3d_transpose": (lambda: L.Conv3DTranspose(8, 3, name="target"), (3, 3, 3, 4), "kernel"),
    "separable_conv1d": (lambda: L.SeparableConv1D(8, 3, depth_multiplier=2, name="target"), (10, 4),
                         "pointwise_kernel"),
    "separable_conv2d": (lambda: L.SeparableConv2D(8, 3, depth_multiplier=2, name="target"), (6, 6, 4),
                         "pointwise_kernel"),
    "dense": (lambda: L.Dense(16, name="target"), (12,), "kernel"),
}


def single_layer_model(make, shape) -> keras.Model:
    inputs = keras.Input(shape)
    x = make()(inputs)
    outputs = L.Dense(3, name="head")(L.Flatten()(x))
    return keras.Model(inputs, outputs)


def zeros_share(value) -> float:
    value = np.asarray(value)
    return 1.0 - np.count_nonzero(value) / value.size


@pytest.mark.parametrize("kind", list(PRUNABLE))
def test_every_check_counts_exactly_the_weight_tfmot_pruned(kind, tmp_path):
    make, shape, attribute = PRUNABLE[kind]
    model = single_layer_model(make, shape)
    expected_size = int(np.prod(getattr(model.get_layer("target"), attribute).shape))
    result = prune(model, PruneConfig(method="magnitude", sparsity=TARGET), seed=0)
    row = {r["layer"]: r for r in result.report["layers"]}["target"]
    assert row["wrapped"] and row["size"] == expected_size
    assert row["sparsity"] == pytest.approx(TARGET, abs=1 / expected_size)

    pruned = result.model
    pruned.compile(keras.optimizers.SGD(0.01), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(16, *shape)).astype("float32"), rng.integers(0, 3, size=16)
    pruned.fit(x, y, batch_size=8, epochs=1, verbose=0,
               callbacks=[*pruning_callbacks(pruned), SparsityMonitor(tmp_path)])
    logged = read_scalars(tmp_path)["sparsity/target"][-1][1]
    assert logged == pytest.approx(TARGET, abs=1 / expected_size)
    check_retrained_sparsity(pruned, {"target": (row["sparsity"], row["size"])}, "retrain")

    stripped = strip(pruned)
    pruned_weight = getattr(stripped.get_layer("target"), attribute)
    assert zeros_share(pruned_weight) == pytest.approx(TARGET, abs=1 / expected_size)  # what tfmot really pruned
    exported = {s.name: s for s in layer_stats(stripped)}["target"]
    assert exported.sparsity == pytest.approx(zeros_share(pruned_weight))


def test_depthwise_conv_is_left_dense_and_the_rest_still_prunes():
    """tfmot's registry lists no prunable weight for DepthwiseConv2D: no check may expect zeros there."""
    inputs = keras.Input((6, 6, 4))
    x = L.DepthwiseConv2D(3, depth_multiplier=2, name="dw")(inputs)
    outputs = L.Dense(3, name="head")(L.Flatten()(x))
    result = prune(keras.Model(inputs, outputs), PruneConfig(method="magnitude", sparsity=TARGET), seed=0)
    rows = {r["layer"]: r for r in result.report["layers"]}
    assert set(rows) == {"head"} and rows["head"]["sparsity"] == pytest.approx(TARGET, abs=1e-3)
    stats = {s.name: s for s in layer_stats(strip(result.model))}
    assert stats["dw"].sparsity == 0.0 and stats["head"].sparsity == pytest.approx(TARGET, abs=1e-3)


def test_layers_tfmot_cannot_prune_are_left_dense_not_an_error():
    """Conv1DTranspose and DepthwiseConv1D are not in tfmot's registry: prune the others."""
    inputs = keras.Input((10, 4))
    x = L.Conv1DTranspose(6, 3, name="up")(inputs)
    x = L.DepthwiseConv1D(3, name="dw1d")(x)
    outputs = L.Dense(3, name="head")(L.Flatten()(x))
    result = prune(keras.Model(inputs, outputs), PruneConfig(method="magnitude", sparsity=TARGET), seed=0)
    assert [r["layer"] for r in result.report["layers"]] == ["head"]


def test_the_exported_file_is_read_at_the_weight_that_was_pruned(tmp_path):
    """A separable conv is two weight tensors in a .tflite, both named after the layer (here even of
    one size: 3·3·8 = 8·9): the file's sparsity must be read from the pointwise one."""
    from tfrewind.export import export_model

    inputs = keras.Input((6, 6, 8))
    x = L.SeparableConv2D(9, 3, name="separable")(inputs)
    outputs = L.Dense(3, name="head")(L.Flatten()(x))
    pruned = prune(keras.Model(inputs, outputs), PruneConfig(method="magnitude", sparsity=TARGET), seed=0).model
    report = export_model(pruned, tmp_path, latency_runs=0)
    layers = {layer.name: layer for layer in report.layers}
    assert report.verification["passed"]
    for name in ("separable", "head"):
        assert layers[name].keras_sparsity == pytest.approx(TARGET, abs=1e-2), name
        assert layers[name].file_sparsity == pytest.approx(TARGET, abs=1e-2), name
    assert layers["separable"].weight == "pointwise_kernel"  # and the report says which kernel


# ----------------------------------------------------------------------------- MACs, one counter


def _macs_cases():
    """(layer, input shape, MACs per image by hand)."""
    return {
        "conv2d": (L.Conv2D(5, 3, strides=2, padding="same"), (8, 8, 3), 4 * 4 * 3 * 3 * 3 * 5),
        "grouped_conv2d": (L.Conv2D(6, 3, groups=2), (6, 6, 4), 4 * 4 * 3 * 3 * (4 // 2) * 6),
        "conv1d": (L.Conv1D(5, 3), (10, 3), 8 * 3 * 3 * 5),
        "conv3d": (L.Conv3D(5, 3), (4, 5, 6, 2), 2 * 3 * 4 * 3 * 3 * 3 * 2 * 5),
        "depthwise_conv2d": (L.DepthwiseConv2D(3, depth_multiplier=2), (6, 6, 4), 4 * 4 * 3 * 3 * 4 * 2),
        "depthwise_conv1d": (L.DepthwiseConv1D(3, depth_multiplier=2), (10, 4), 8 * 3 * 4 * 2),
        "separable_conv1d": (L.SeparableConv1D(5, 3, depth_multiplier=2), (10, 4),
                             8 * (3 * 4 * 2) + 8 * (4 * 2 * 5)),
        "separable_conv2d": (L.SeparableConv2D(5, 3, strides=2, depth_multiplier=2, padding="same"), (8, 8, 4),
                             4 * 4 * (3 * 3 * 4 * 2) + 4 * 4 * (4 * 2 * 5)),
        # every input position is multiplied by the whole kernel: H_in·W_in·k·k·C_in·C_out
        "conv2d_transpose": (L.Conv2DTranspose(5, 3, strides=2), (4, 4, 3), 4 * 4 * 3 * 3 * 3 * 5),
        "conv3d_transpose": (L.Conv3DTranspose(5, 2, strides=2), (2, 3, 2, 3), 2 * 3 * 2 * 2 * 2 * 2 * 3 * 5),
        "dense_2d": (L.Dense(7), (12,), 12 * 7),
        "dense_3d": (L.Dense(7), (5, 12), 5 * 12 * 7),
    }


@pytest.mark.parametrize("kind", list(_macs_cases()))
def test_macs_of_each_layer_type_match_the_formula_in_every_report(kind):
    layer, shape, expected = _macs_cases()[kind]
    inputs = keras.Input(shape)
    model = keras.Model(inputs, layer(inputs))
    assert macs_per_layer(model) == {layer.name: expected}
    assert [(s.name, s.macs) for s in layer_stats(model)] == [(layer.name, expected)]


# ----------------------------------------------------------------------------- the user model of item 2


def separable_user_model() -> keras.Model:
    """The model of the report: Conv→BN→ReLU, a depthwise + 1×1 branch added back, a separable conv,
    Concatenate, pooling, Dropout, Dense — on digits' 8×8×1 images."""
    inputs = keras.Input((8, 8, 1))
    x = L.ReLU()(L.BatchNormalization()(L.Conv2D(16, 3, padding="same", use_bias=False)(inputs)))
    branch = L.Conv2D(16, 1)(L.DepthwiseConv2D(3, padding="same")(x))
    x = L.Add()([x, branch])
    separable = L.SeparableConv2D(32, 3, padding="same", activation="relu", name="separable_conv2d")(x)
    x = L.Concatenate()([x, separable])
    x = L.Dropout(0.2)(L.MaxPooling2D()(x))
    outputs = L.Dense(10)(L.GlobalAveragePooling2D()(x))
    return keras.Model(inputs, outputs)


def test_train_prunes_retrains_and_exports_a_model_with_separable_convs(tmp_path, capsys):
    model_path = tmp_path / "user.keras"
    separable_user_model().save(model_path)
    out = tmp_path / "run"
    code, _, err = run_cli(["train", "--model", model_path, "--dataset", "digits", "--epochs", "2",
                            "--prune", "magnitude", "--sparsity", "0.75", "--schedule", "one_cycle",
                            "--budget", "2", "--out", out, "--quiet"], capsys)
    assert code == 0, err
    report = json.loads((out / "export" / "export.json").read_text())
    assert report["verification"]["passed"] and report["quantize"] == "none"
    assert (out / "export" / "model.tflite").exists()
    layers = {row["name"]: row for row in report["layers"]}
    for name, row in layers.items():  # every pruned layer, in the Keras model and in the file
        expected = 0.0 if row["kind"] == "DepthwiseConv2D" else TARGET
        assert row["keras_sparsity"] == pytest.approx(expected, abs=1e-3), name
        assert row["file_sparsity"] == pytest.approx(expected, abs=1e-3), name
    assert layers["separable_conv2d"]["weight"] == "pointwise_kernel"
    pointwise = keras.models.load_model(out / "retrain" / "model_stripped.keras").get_layer("separable_conv2d")
    assert zeros_share(pointwise.pointwise_kernel) == pytest.approx(TARGET, abs=1e-3)
    assert zeros_share(pointwise.depthwise_kernel) == 0.0  # tfmot does not prune the depthwise half
