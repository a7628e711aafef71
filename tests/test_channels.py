"""The channel dependency graph on small hand-made graphs, one per coupling pattern: every rebuild is
exact (the smaller model computes what the dense model computes with the removed channels cut where
they are read), the coupled layers lose the same channels, and what cannot be followed is refused
with the layer named."""

from __future__ import annotations

import numpy as np
import pytest

from test_pruning_filters import randomise_bn
from tfrewind._keras import keras
from tfrewind.config import PruneConfig
from tfrewind.errors import ConfigError
from tfrewind.pruning import kept_filters, prune, rewind_structured, total_macs
from tfrewind.pruning.channels import analyse
from tfrewind.pruning.surgery import rebuild, removed_units, zero_removed
from tfrewind.pruning.wrappers import all_layers

L = keras.layers
SHAPE = (8, 8, 4)


def with_biases(model: keras.Model) -> keras.Model:
    """Non-zero biases and BN statistics, so a wrongly kept or dropped slice shows (kernels keep their
    initialisation: outputs stay near 1, where an absolute 1e-5 is a strict bound)."""
    rng = np.random.default_rng(3)
    for layer in all_layers(model):
        if not isinstance(layer, L.BatchNormalization) and len(layer.get_weights()) == 2:
            kernel, bias = layer.get_weights()
            layer.set_weights([kernel, rng.normal(0, 0.2, bias.shape).astype("float32")])
    return randomise_bn(model)


def check_exact(model: keras.Model, result) -> None:
    x = np.random.default_rng(5).normal(size=(3, *model.input_shape[1:])).astype("float32")
    cg = analyse(model)
    reference = zero_removed(cg, removed_units(cg, kept_filters(result.report)))
    got = result.model(x, training=False).numpy()
    assert np.max(np.abs(got - reference(x, training=False).numpy())) <= 1e-5
    assert np.max(np.abs(got - model(x, training=False).numpy())) > 1e-3  # the comparison can tell
    assert result.report["rebuild_max_abs_diff"] <= 1e-5


def build(body) -> keras.Model:
    inputs = keras.Input(SHAPE)
    x = body(inputs)
    outputs = L.Dense(3, name="head")(L.GlobalAveragePooling2D(name="gap")(x))
    return with_biases(keras.Model(inputs, outputs))


def conv(filters, name, **kw):
    return L.Conv2D(filters, 3, padding="same", name=name, **kw)


def residual(x):
    a = L.ReLU()(L.BatchNormalization(name="bn_a")(conv(8, "a")(x)))
    b = conv(8, "b")(L.ReLU()(conv(6, "inner")(a)))
    y = L.Add(name="add")([a, b])
    for merge in (L.Subtract, L.Multiply, L.Average, L.Maximum):
        y = merge()([y, conv(8, f"m_{merge.__name__}")(y)])
    return y


def concat(x):
    a, b = conv(6, "a")(x), conv(4, "b")(x)
    y = L.Concatenate(name="cat")([a, L.ReLU()(b)])
    return conv(5, "after")(L.BatchNormalization(name="bn_cat")(y))


def depthwise(x):
    y = L.ReLU()(conv(6, "expand")(x))
    y = L.DepthwiseConv2D(3, padding="same", depth_multiplier=2, name="dw")(y)
    y = L.BatchNormalization(name="bn_dw")(y)
    return L.SeparableConv2D(5, 3, padding="same", depth_multiplier=3, name="sep")(L.ReLU()(y))


def grouped(x):
    y = conv(8, "pre")(x)
    y = L.Conv2D(12, 3, padding="same", groups=4, name="grouped")(y)
    return conv(5, "post")(L.ReLU()(y))


def squeeze_excite(x):
    y = L.ReLU()(conv(8, "c")(x))
    s = L.Reshape((1, 1, 8), name="se_reshape")(L.GlobalAveragePooling2D(name="se_gap")(y))
    s = L.Conv2D(3, 1, activation="relu", name="se_reduce")(s)
    s = L.Conv2D(8, 1, activation="sigmoid", name="se_expand")(s)
    return conv(5, "post")(L.Multiply(name="se_scale")([y, s]))


def tf_ops(x):
    y = conv(6, "c")(x)
    y = L.Multiply()([y, L.ReLU(6.0)(y + 3.0) * (1.0 / 6.0)])  # MobileNetV3's hard-swish
    return conv(5, "post")(y)


PATTERNS = {"residual": residual, "concat": concat, "depthwise": depthwise, "grouped": grouped,
            "squeeze_excite": squeeze_excite, "tf_ops": tf_ops}


@pytest.mark.parametrize("pattern", list(PATTERNS))
def test_every_coupling_pattern_is_rebuilt_exactly(pattern):
    model = build(PATTERNS[pattern])
    result = prune(model, PruneConfig(method="l1_filter", sparsity=0.5), seed=0)
    check_exact(model, result)
    assert result.report["flops_after"] < result.report["flops_before"]
    assert result.report["flops_after"] == total_macs(result.model)


def test_coupled_layers_lose_the_same_channels():
    model = build(residual)
    result = prune(model, PruneConfig(method="l1_filter", sparsity=0.5), seed=0)
    stream = next(row for row in result.report["layers"] if row["layer"] == "a")
    assert {"a", "b", "m_Subtract", "m_Maximum"} <= set(stream["members"])
    for name in stream["members"]:
        assert result.model.get_layer(name).filters == 4
    assert result.model.get_layer("head").get_weights()[0].shape == (4, 3)


def test_concatenate_offsets_and_flatten_rows():
    model = build(concat)
    result = prune(model, PruneConfig(method="l1_filter"), seed=0, layer_ratios={"b": 0.5})
    assert result.model.get_layer("a").filters == 6 and result.model.get_layer("b").filters == 2
    assert result.model.get_layer("after").get_weights()[0].shape[2] == 8  # 6 + 2 channels read
    assert result.model.get_layer("bn_cat").get_weights()[0].shape == (8,)
    check_exact(model, result)
    inputs = keras.Input((4, 4, 2))
    flat = L.Flatten()(conv(6, "c")(inputs))
    dense = keras.Model(inputs, L.Dense(3, name="out")(L.Dense(5, activation="relu", name="hidden")(flat)))
    dense = with_biases(dense)
    result = prune(dense, PruneConfig(method="l1_filter", sparsity=0.5), seed=0)
    assert [row["layer"] for row in result.report["layers"]] == ["c", "hidden"]  # Dense is a root too
    assert result.model.get_layer("hidden").get_weights()[0].shape == (4 * 4 * 3, 2)
    check_exact(dense, result)


def test_grouped_conv_loses_whole_groups_with_their_inputs():
    model = build(grouped)
    result = prune(model, PruneConfig(method="l1_filter", sparsity=0.5), seed=0)
    layer = result.model.get_layer("grouped")
    assert (layer.groups, layer.filters) == (2, 6) and result.model.get_layer("pre").filters == 4


def test_macs_target_round_to_and_ignored_layers():
    model = build(residual)
    dense_macs = total_macs(model)
    for allocation in ("uniform", "global"):
        result = prune(model, PruneConfig(method="l1_filter", macs=0.5, allocation=allocation), seed=0)
        assert total_macs(result.model) <= 0.5 * dense_macs
        assert result.report["macs_ratio"] <= 0.5
    rounded = prune(model, PruneConfig(method="l1_filter", sparsity=0.6, round_to=4), seed=0)
    assert all(row["filters_after"] % 4 == 0 for row in rounded.report["layers"])
    kept = prune(model, PruneConfig(method="l1_filter", sparsity=0.5, ignored_layers=["add"]), seed=0)
    assert kept.model.get_layer("a").filters == 8 and kept.model.get_layer("inner").filters == 3
    with pytest.raises(ConfigError, match="ignored_layers.*'nope'"):
        prune(model, PruneConfig(method="l1_filter", ignored_layers=["nope"]), seed=0)
    with pytest.raises(ConfigError, match=r"prune.macs 0.01.*at best"):
        prune(model, PruneConfig(method="l1_filter", macs=0.01), seed=0)


@pytest.mark.parametrize("blocker, reason", [
    (lambda: L.Lambda(lambda t: t * 2.0, name="blk"), "Python code"),
    (lambda: L.LayerNormalization(name="blk"), "normalises over the channels"),
    (lambda: L.Activation("softmax", name="blk"), "does not act on each channel"),
])
def test_what_cannot_be_followed_blocks_its_group_with_the_layer_named(blocker, reason):
    inputs = keras.Input(SHAPE)
    x = blocker()(conv(6, "c")(inputs))
    model = keras.Model(inputs, L.Dense(3)(L.GlobalAveragePooling2D()(conv(4, "d")(x))))
    with pytest.raises(ConfigError, match=f"'blk'.*{reason}") as info:
        prune(model, PruneConfig(method="l1_filter"), seed=0, layer_ratios={"c": 0.5})
    assert "\n" not in str(info.value)
    result = prune(model, PruneConfig(method="l1_filter", sparsity=0.5), seed=0)  # the rest still prunes
    assert "c" in result.report["unprunable"] and result.model.get_layer("d").filters == 2


@pytest.mark.parametrize("criterion", ["l2", "fpgm", "bn_scale", "random"])
def test_every_criterion_prunes_exactly(criterion):
    model = build(residual)
    result = prune(model, PruneConfig(method=f"{criterion}_filter", sparsity=0.5), seed=0)
    check_exact(model, result)
    assert result.report["criterion"] == criterion


def test_bn_scale_keeps_the_channels_with_the_largest_gamma():
    model = build(residual)
    bn = model.get_layer("bn_a")
    gamma = np.array([0.1, 2.0, 0.2, 3.0, 0.3, 4.0, 0.4, 5.0], dtype="float32")
    bn.set_weights([gamma, *bn.get_weights()[1:]])
    result = prune(model, PruneConfig(method="bn_scale_filter"), seed=0, layer_ratios={"a": 0.5})
    assert next(r for r in result.report["layers"] if r["layer"] == "a")["kept_filters"] == [1, 3, 5, 7]


def test_weight_rewinding_slices_an_earlier_checkpoint_like_the_surgery():
    model = build(concat)
    early = keras.models.clone_model(model)
    early.set_weights([w * 0.5 for w in model.get_weights()])
    result = prune(model, PruneConfig(method="l1_filter", sparsity=0.5), seed=0)
    rewind_structured(result.model, early, kept_filters(result.report))
    # The channels chosen on `model`, the weights of `early`: what the surgery makes of `early`.
    cg = analyse(early)
    reference = rebuild(cg, removed_units(cg, kept_filters(result.report)))
    for a, b in zip(result.model.get_weights(), reference.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert any(np.any(a != b) for a, b in zip(result.model.get_weights(),
                                              prune(model, PruneConfig(method="l1_filter", sparsity=0.5),
                                                    seed=0).model.get_weights()))
