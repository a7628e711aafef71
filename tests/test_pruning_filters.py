"""Filter pruning with surgery: smaller shapes, fewer params and FLOPs, and exactly the outputs of
the original model with the removed channels switched off."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tfrewind._keras import keras
from tfrewind.config import PruneConfig
from tfrewind.errors import ConfigError
from tfrewind.models import MODELS, load_model_file
from tfrewind.pruning import (PRESETS, compose_kept, iterative_plan, kept_filters, macs_per_layer,
                              prunable_convs, prune, rewind_structured, total_macs)
from tfrewind.pruning.wrappers import all_layers

L = keras.layers


def randomise_bn(model: keras.Model, seed: int = 0) -> keras.Model:
    """Non-trivial BN statistics, so that a wrongly kept or dropped channel changes the output."""
    rng = np.random.default_rng(seed)
    for layer in all_layers(model):
        if isinstance(layer, L.BatchNormalization):  # gamma/beta are absent with scale/center=False
            shape = layer.moving_mean.shape
            if layer.scale:
                layer.gamma.assign(rng.uniform(0.5, 1.5, shape))
            if layer.center:
                layer.beta.assign(rng.normal(0, 0.5, shape))
            layer.moving_mean.assign(rng.normal(0, 0.2, shape))
            layer.moving_variance.assign(rng.uniform(0.5, 2.0, shape))
    return model


def find_layer(model: keras.Model, name: str) -> keras.layers.Layer:
    """A layer by name, inside nested models too."""
    return next(layer for layer in all_layers(model) if layer.name == name)


def switched_off(model: keras.Model, removed: dict[str, np.ndarray], bn_of: dict[str, str]) -> keras.Model:
    """The original model with each removed filter's channel forced to zero after its BN.

    Zeroing only the conv filter would leave BN's beta (and −mean·γ/σ) alive in that channel; the
    channel disappears entirely in the pruned model, so γ = β = 0 as well.
    """
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    for conv, channels in removed.items():
        layer = find_layer(copy, conv)
        weights = layer.get_weights()
        weights[0][..., channels] = 0.0
        if len(weights) > 1:
            weights[1][channels] = 0.0
        layer.set_weights(weights)
        if conv in bn_of:
            bn = find_layer(copy, bn_of[conv])
            gamma, beta, mean, var = bn.get_weights()
            gamma[channels], beta[channels] = 0.0, 0.0
            bn.set_weights([gamma, beta, mean, var])
    return copy


def removed_channels(report) -> dict[str, np.ndarray]:
    """Every source layer of every group → its removed output channels (one channel per group index)."""
    return {member: np.setdiff1d(np.arange(row["filters_before"]), row["kept_filters"])
            for row in report["layers"] for member in row.get("members", [row["layer"]])}


def assert_same_outputs(a: keras.Model, b: keras.Model, shape):
    x = np.random.default_rng(5).normal(size=(4, *shape)).astype("float32")
    np.testing.assert_allclose(a.predict(x, verbose=0), b.predict(x, verbose=0), atol=2e-5, rtol=1e-5)


def test_vgg16_l1_filter_removes_the_weakest_filters_and_computes_the_same_function():
    shape = (8, 8, 3)
    model = randomise_bn(MODELS.get("vgg16")(shape, 10))
    result = prune(model, PruneConfig(method="l1_filter", sparsity=0.5), seed=0)
    small = result.model
    assert result.structured and not any("prune_low_magnitude" in l.name for l in small.layers)
    for i in range(1, 14):
        before = model.get_layer(f"conv{i}").filters
        assert small.get_layer(f"conv{i}").filters == before // 2
        norms = np.abs(model.get_layer(f"conv{i}").get_weights()[0]).sum(axis=(0, 1, 2))
        kept = result.report["layers"][i - 1]["kept_filters"]
        dropped = np.setdiff1d(np.arange(before), kept)
        assert norms[kept].min() >= norms[dropped].max(), f"conv{i} kept a weaker filter"
    assert small.get_layer("fc1").get_weights()[0].shape == (256, 256)  # a Dense layer is a group too
    assert result.report["params_after"] < result.report["params_before"]
    assert result.report["flops_after"] < 0.3 * result.report["flops_before"]  # both sides of a conv halve
    assert total_macs(small) == result.report["flops_after"]
    json.loads(json.dumps(result.report))  # goes into metrics.json as is
    bn_of = {f"conv{i}": f"bn{i}" for i in range(1, 14)} | {"fc1": "fc1_bn"}
    assert_same_outputs(small, switched_off(model, removed_channels(result.report), bn_of), shape)


def test_resnet20_prunes_only_each_blocks_first_conv_and_keeps_its_function():
    shape = (8, 8, 3)
    model = randomise_bn(MODELS.get("resnet20")(shape, 10))
    names = prunable_convs(model)
    assert names == [f"s{s}b{b}_conv1" for s in (1, 2, 3) for b in (1, 2, 3)]
    result = prune(model, PruneConfig(method="l1_filter", sparsity=0.5), seed=0)
    small = result.model
    for name in names:
        block = name[: -len("_conv1")]
        width = model.get_layer(name).filters
        assert small.get_layer(name).filters == width // 2
        assert small.get_layer(f"{block}_conv2").get_weights()[0].shape[2] == width // 2
        assert small.get_layer(f"{block}_conv2").filters == width  # the residual stream is untouched
    assert result.report["params_after"] < result.report["params_before"]
    assert result.report["flops_after"] < result.report["flops_before"]
    bn_of = {n: n.replace("_conv1", "_bn1") for n in names}
    assert_same_outputs(small, switched_off(model, removed_channels(result.report), bn_of), shape)
    with pytest.raises(AssertionError):  # the comparison can tell: the dense model differs
        assert_same_outputs(small, model, shape)


def test_random_filter_uses_the_same_ratios_with_seeded_random_choices():
    shape = (8, 8, 1)
    model = randomise_bn(MODELS.get("small_cnn")(shape, 10))
    ratios = [0.25, 0.5, 0.0, 0.75]
    l1 = prune(model, PruneConfig(method="l1_filter", ratios=ratios), seed=0)
    a, b, a2 = (prune(model, PruneConfig(method="random_filter", ratios=ratios), seed=s) for s in (1, 2, 1))
    counts = [[r["filters_after"] for r in res.report["layers"]] for res in (l1, a, b)]
    assert counts[0] == counts[1] == counts[2] == [24, 16, 64, 16]
    kept = lambda res: [r["kept_filters"] for r in res.report["layers"]]  # noqa: E731
    assert kept(a) == kept(a2) and kept(a) != kept(b) and kept(a) != kept(l1)
    bn_of = {f"conv{i}": f"bn{i}" for i in range(1, 5)}
    assert_same_outputs(a.model, switched_off(model, removed_channels(a.report), bn_of), shape)


def user_model() -> keras.Model:
    """A user's functional model: conv feeding two convs, a bias conv without BN, Flatten → Dense."""
    inputs = keras.Input((6, 6, 2))
    x = L.Conv2D(8, 3, padding="same", name="c1")(inputs)
    x = L.BatchNormalization(name="n1")(x)
    x = L.Activation("relu", name="a1")(x)
    left = L.Conv2D(6, 3, padding="same", activation="relu", name="left")(x)
    right = L.Conv2D(6, 1, name="right")(x)
    y = L.Add(name="join")([left, right])
    y = L.Conv2D(10, 3, strides=2, padding="same", activation="relu", name="c2")(y)
    y = L.MaxPooling2D(padding="same", name="pool")(y)
    y = L.Flatten(name="flat")(y)
    y = L.Dropout(0.5, name="drop")(y)
    outputs = L.Dense(4, name="head")(y)
    return keras.Model(inputs, outputs, name="user")


def test_generic_functional_model_branches_and_flatten_dense():
    shape = (6, 6, 2)
    model = randomise_bn(user_model())
    for layer in model.layers:  # non-zero biases, so a dropped bias would show
        if isinstance(layer, L.Conv2D) and layer.use_bias:
            k, b = layer.get_weights()
            layer.set_weights([k, np.linspace(-0.5, 0.5, b.size).astype("float32")])
    assert prunable_convs(model) == ["c1", "left", "c2"]  # left and right feed an Add: one group
    result = prune(model, PruneConfig(method="l1_filter", ratios=[0.5, 0.5, 0.3]), seed=0)
    small = result.model
    assert small.get_layer("c1").filters == 4 and small.get_layer("c2").filters == 7
    assert small.get_layer("left").filters == small.get_layer("right").filters == 3
    assert small.get_layer("c2").get_weights()[0].shape[2] == 3
    assert small.get_layer("head").get_weights()[0].shape == (2 * 2 * 7, 4)
    assert small.get_layer("left").get_weights()[0].shape[2] == 4
    partial = prune(model, PruneConfig(method="l1_filter"), seed=0, layer_ratios={"c2": 0.5}).model
    assert partial.get_layer("c1").filters == 8 and partial.get_layer("c2").filters == 5
    removed = removed_channels(result.report)
    assert_same_outputs(small, switched_off(model, removed, {"c1": "n1"}), shape)


def test_filter_pruned_model_saves_and_reloads(tmp_path):
    shape = (8, 8, 3)
    small = prune(MODELS.get("resnet20")(shape, 10), PruneConfig(method="l1_filter", sparsity=0.5), seed=0).model
    small.save(tmp_path / "small.keras")
    loaded = load_model_file(tmp_path / "small.keras")
    assert loaded.count_params() == small.count_params()
    assert_same_outputs(loaded, small, shape)


def test_presets_follow_li_et_al():
    a, b = PRESETS["resnet56-A"], PRESETS["resnet56-B"]
    assert len(a) == len(b) == 27 and all(n.endswith("_conv1") for n in a)
    assert a["s1b1_conv1"] == 0.1 and a["s1b8_conv1"] == 0.0 and a["s2b1_conv1"] == 0.0
    assert b["s1b1_conv1"] == 0.6 and b["s2b2_conv1"] == 0.3 and b["s3b2_conv1"] == 0.1
    assert b["s1b9_conv1"] == 0.0 and b["s2b8_conv1"] == 0.0 and b["s3b9_conv1"] == 0.0
    vgg = PRESETS["vgg16-A"]
    assert [n for n, r in vgg.items() if r == 0.5] == ["conv1", *(f"conv{i}" for i in range(8, 14))]


def test_vgg16_a_preset_gives_the_papers_widths():
    model = MODELS.get("vgg16")((8, 8, 3), 10)
    small = prune(model, PruneConfig(method="l1_filter"), seed=0, preset="vgg16-A").model
    widths = [small.get_layer(f"conv{i}").filters for i in range(1, 14)]
    assert widths == [32, 64, 128, 128, 256, 256, 256, 256, 256, 256, 256, 256, 256]


def test_flops_are_multiply_accumulates():
    inputs = keras.Input((8, 8, 2))
    x = L.Conv2D(4, 3, padding="same", name="conv")(inputs)
    x = L.DepthwiseConv2D(3, strides=2, padding="same", depth_multiplier=2, name="dw")(x)
    x = L.GlobalAveragePooling2D()(x)
    outputs = L.Dense(3, name="fc")(x)
    macs = macs_per_layer(keras.Model(inputs, outputs))
    assert macs == {"conv": 8 * 8 * 3 * 3 * 2 * 4, "dw": 4 * 4 * 3 * 3 * 4 * 2, "fc": 8 * 3}


def test_iterative_filter_rounds_compound_to_the_target_and_rewind_to_dense_weights():
    shape = (8, 8, 1)
    dense = randomise_bn(MODELS.get("small_cnn")(shape, 10))
    model, kept = dense, {}
    for plan in iterative_plan(PruneConfig(method="random_filter", sparsity=0.75, rounds=2), structured=True):
        result = prune(model, plan, seed=0)
        model, kept = result.model, compose_kept(kept, kept_filters(result.report))
    assert [model.get_layer(f"conv{i}").filters for i in range(1, 5)] == [8, 8, 16, 16]
    earlier = randomise_bn(MODELS.get("small_cnn")(shape, 10), seed=1)  # "weights at epoch k"
    rewind_structured(model, earlier, kept)
    removed = {n: np.setdiff1d(np.arange(earlier.get_layer(n).filters), idx) for n, idx in kept.items()}
    bn_of = {f"conv{i}": f"bn{i}" for i in range(1, 5)}
    assert_same_outputs(model, switched_off(earlier, removed, bn_of), shape)


def test_wrong_ratio_lists_and_unprunable_layers_are_config_errors():
    model = MODELS.get("resnet20")((8, 8, 3), 10)
    with pytest.raises(ConfigError, match=r"got 2 ratios.*9 prunable channel groups: s1b1_conv1, s1b2_conv1"):
        prune(model, PruneConfig(method="l1_filter", ratios=[0.5, 0.5]), seed=0)
    with pytest.raises(ConfigError, match=r"ratios\[1\]"):
        prune(model, PruneConfig(method="l1_filter", ratios=[0.5, 1.0] + [0.1] * 7), seed=0)
    with pytest.raises(ConfigError, match="s1b1_conv2.*s2b1_shortcut_pad"):  # the stream meets option A
        prune(model, PruneConfig(method="l1_filter"), seed=0, layer_ratios={"s1b1_conv2": 0.5})
    with pytest.raises(ConfigError, match="no conv or dense layer 'conv9'"):
        prune(model, PruneConfig(method="l1_filter"), seed=0, layer_ratios={"conv9": 0.5})
    with pytest.raises(ConfigError, match="prune.preset"):
        prune(model, PruneConfig(method="l1_filter"), seed=0, preset="resnet99-Z")
    with pytest.raises(ConfigError, match="sparsity"):
        prune(model, PruneConfig(method="random_filter", sparsity=1.0), seed=0)

