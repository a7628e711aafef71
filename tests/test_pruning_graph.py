"""What filter pruning can see and must refuse: nested models (transfer learning), activations that
mix channels, and the graph formats of tf_keras.applications models."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from clirun import run_ok
from test_pruning_filters import find_layer, randomise_bn, removed_channels, switched_off
from tfrewind._keras import keras
from tfrewind.config import PruneConfig
from tfrewind.errors import ConfigError
from tfrewind.models import load_model_file, save_model_atomic
from tfrewind.pruning import macs_per_layer, prunable_convs, prune, sparsity_report, total_macs
from tfrewind.pruning.wrappers import all_layers

L = keras.layers
APPS = keras.applications


def max_abs_diff(a: keras.Model, b: keras.Model, shape) -> float:
    """Inference-mode outputs on the same random batch (eager calls: no tracing of big graphs)."""
    x = np.random.default_rng(5).normal(size=(4, *shape)).astype("float32")
    return float(np.max(np.abs(a(x, training=False).numpy() - b(x, training=False).numpy())))


def nested_mobilenet() -> keras.Model:
    """The commonest transfer-learning model: an application backbone inside a Sequential."""
    base = APPS.MobileNetV2(input_shape=(32, 32, 3), include_top=False, weights=None)
    return keras.Sequential([base, L.GlobalAveragePooling2D(name="gap"), L.Dense(10, name="head")])


def mobilenet_bn(conv: str) -> str:
    return "Conv_1_bn" if conv == "Conv_1" else f"{conv}_BN"


def test_l1_filter_removes_filters_inside_a_nested_application_and_keeps_its_function(tmp_path):
    shape = (32, 32, 3)
    model = randomise_bn(nested_mobilenet())
    backbone = {layer.name for layer in all_layers(model.layers[0])}
    names = prunable_convs(model)
    assert names and set(names) <= backbone
    # Conv_1's channels leave the backbone through its output into the outer GAP → Dense.
    assert "Conv_1" in names
    result = prune(model, PruneConfig(method="l1_filter", sparsity=0.5), seed=0)
    small = result.model
    assert isinstance(small.layers[0], keras.Model)  # the backbone stays a nested model
    for name in names:
        assert find_layer(small, name).filters == find_layer(model, name).filters // 2
    assert small.get_layer("head").get_weights()[0].shape == (640, 10)  # rows of the removed channels gone
    removed = removed_channels(result.report)
    reference = switched_off(model, removed, {n: mobilenet_bn(n) for n in names})
    assert max_abs_diff(small, reference, shape) <= 1e-5
    assert max_abs_diff(small, model, shape) > 1e-3  # the comparison can tell
    # FLOPs and sparsity reports count the nested layers.
    assert macs_per_layer(model)["Conv1"] == 16 * 16 * 3 * 3 * 3 * 32  # stride-2 stem conv of the backbone
    assert result.report["flops_before"] == total_macs(model) > macs_per_layer(model)["head"]
    assert result.report["flops_after"] == total_macs(small) < result.report["flops_before"]
    assert {"Conv1", "Conv_1", "head"} <= {row["layer"] for row in sparsity_report(small)["layers"]}
    small.save(tmp_path / "small.keras")
    assert max_abs_diff(load_model_file(tmp_path / "small.keras"), small, shape) == 0.0


def small_nested() -> keras.Model:
    """A backbone (with a nested Sequential block) inside a Sequential, for 8×8×1 digits."""
    block = keras.Sequential([L.Conv2D(6, 3, padding="same", name="b_conv"), L.BatchNormalization(name="b_bn"),
                              L.ReLU(name="b_relu")], name="block")
    inputs = keras.Input((8, 8, 1), name="img")
    x = L.Conv2D(8, 3, padding="same", name="stem")(inputs)
    backbone = keras.Model(inputs, block(x), name="backbone")
    return keras.Sequential([backbone, L.Flatten(name="flat"), L.Dense(10, name="head")], name="net")


def test_channels_are_followed_across_two_levels_of_nesting():
    shape = (8, 8, 1)
    model = randomise_bn(small_nested())
    for layer in all_layers(model):  # non-zero biases, so a dropped bias would show
        if isinstance(layer, L.Conv2D):
            kernel, bias = layer.get_weights()
            layer.set_weights([kernel, np.linspace(-0.5, 0.5, bias.size).astype("float32")])
    assert prunable_convs(model) == ["stem", "b_conv"]
    result = prune(model, PruneConfig(method="l1_filter", sparsity=0.5), seed=0)
    small = result.model
    assert find_layer(small, "b_conv").get_weights()[0].shape == (3, 3, 4, 3)  # input sliced across the boundary
    assert small.get_layer("head").get_weights()[0].shape == (8 * 8 * 3, 10)
    reference = switched_off(model, removed_channels(result.report), {"b_conv": "b_bn"})
    assert max_abs_diff(small, reference, shape) <= 1e-5
    assert max_abs_diff(small, model, shape) > 1e-3  # the comparison can tell


def test_a_nested_conv_that_reaches_the_model_output_is_not_prunable():
    inputs = keras.Input((8, 8, 1))
    backbone = keras.Model(inputs, L.Conv2D(4, 3, name="last")(L.Conv2D(4, 3, name="first")(inputs)), name="bb")
    outer_in = keras.Input((8, 8, 1))
    model = keras.Model(outer_in, backbone(outer_in))
    assert prunable_convs(model) == ["first"]


def test_a_layer_name_used_twice_across_nesting_is_refused_in_one_line():
    inputs = keras.Input((8, 8, 1))
    inner = keras.Model(inputs, L.Conv2D(4, 3, name="conv")(inputs), name="inner")
    outer_in = keras.Input((8, 8, 1))
    x = L.Conv2D(4, 3, name="conv")(inner(outer_in))
    model = keras.Model(outer_in, L.Dense(2)(L.Flatten()(x)))
    with pytest.raises(ConfigError, match="'conv'") as info:
        prune(model, PruneConfig(method="l1_filter", sparsity=0.5), seed=0)
    assert "\n" not in str(info.value)


def test_train_runs_filter_pruning_inside_a_nested_model(tmp_path):
    model_path = save_model_atomic(small_nested(), tmp_path / "nested.keras")
    out = tmp_path / "run"
    run_ok(["train", "--model", model_path, "--dataset", "digits", "--epochs", "1", "--prune", "l1_filter",
            "--sparsity", "0.5", "--schedule", "one_cycle", "--budget", "1", "--export", "none", "--out", out,
            "--quiet"])
    report = json.loads((out / "prune" / "metrics.json").read_text())["report"]
    assert {row["layer"]: row["filters_after"] for row in report["layers"]} == {"stem": 4, "b_conv": 3}
    retrained = load_model_file(out / "retrain" / "model.keras")
    assert find_layer(retrained, "b_conv").filters == 3


def conv_then(activation_layer: L.Layer | None, fused: str | None = None) -> keras.Model:
    inputs = keras.Input((6, 6, 2))
    x = L.Conv2D(4, 3, activation=fused, name="c1")(inputs)
    if activation_layer is not None:
        x = activation_layer(x)
    x = L.Conv2D(3, 1, name="c2")(x)
    return keras.Model(inputs, L.Dense(2, name="head")(L.GlobalAveragePooling2D()(x)))


@pytest.mark.parametrize("model, blocker", [
    (lambda: conv_then(L.Activation("softmax", name="soft")), "soft"),
    (lambda: conv_then(L.Activation("log_softmax", name="logsoft")), "logsoft"),
    (lambda: conv_then(None, fused="softmax"), "c1"),
])
def test_an_activation_that_mixes_channels_blocks_filter_pruning(model, blocker):
    """Softmax over channels: removing one channel changes every other, so c1 must keep its filters."""
    model = model()
    assert "c1" not in prunable_convs(model)
    with pytest.raises(ConfigError, match=f"'{blocker}'"):
        prune(model, PruneConfig(method="l1_filter"), seed=0, layer_ratios={"c1": 0.5})


@pytest.mark.parametrize("activation", ["relu", "swish", "gelu", "hard_sigmoid", "tanh"])
def test_elementwise_activations_still_pass_channels(activation):
    assert prunable_convs(conv_then(L.Activation(activation, name="act"))) == ["c1", "c2"]


def test_mobilenet_v3_and_regnet_graph_formats_are_understood():
    """Their TFOpLambda nodes are stored as one flat reference, with tensors among the call arguments."""
    shape = (32, 32, 3)
    v3 = randomise_bn(APPS.MobileNetV3Small(input_shape=shape, weights=None, classes=10))
    result = prune(v3, PruneConfig(method="l1_filter", sparsity=0.5), seed=0)
    names = [row["layer"] for row in result.report["layers"]]
    assert "expanded_conv/project" in names  # → BN → the next block's 1×1 expand conv
    assert "Conv" not in names  # the stem feeds hard-swish, a TFOpLambda add: refused, named
    assert re.search(r"tf\.__operators__\.add|multiply", result.report["unprunable"]["Conv"])
    assert "expanded_conv/squeeze_excite/Conv" in names  # → ReLU → the excitation conv
    bn_of = {n: f"{n}/BatchNorm" for n in names if "squeeze_excite" not in n}  # the SE convs have no BN
    reference = switched_off(v3, removed_channels(result.report), bn_of)
    assert max_abs_diff(result.model, reference, shape) <= 1e-5
    keras.backend.clear_session()
    regnet = APPS.RegNetX002(input_shape=shape, weights=None, classes=10)
    # The skip branch reaches the residual add as its `y=` argument: that edge must be seen.
    skip = "regnetx002_Stage_0_XBlock_0_skip_1x1"
    with pytest.raises(ConfigError, match=f"{skip}.*tf.__operators__.add"):
        prune(regnet, PruneConfig(method="l1_filter"), seed=0, layer_ratios={skip: 0.5})
