"""One rule per layer kind: how channels flow through it, and how its weights and config shrink.

The channel analysis (:mod:`.channels`) gives every tensor a *channel map*: one unit id per
position of its last axis. A rule says what a layer does with the maps of its inputs:

* a **source** (Conv, Dense, SeparableConv, Conv…Transpose) makes new units, one per filter, and
  *consumes* its inputs: their channels can be dropped by slicing its kernel's input axis;
* a **per-channel** layer (BN, element-wise activations, pooling, padding, dropout, depthwise conv)
  passes the map on — ``DepthwiseConv2D`` repeats each unit ``depth_multiplier`` times;
* a **merge** (``Add``/``Subtract``/``Multiply``/``Average``/``Maximum``/``Minimum``) couples its
  inputs position by position (the units are unioned); ``Concatenate`` on the channel axis joins
  the maps (index offsets for free); ``Flatten`` tiles the map once per spatial position;
* a **grouped** ``Conv2D`` couples the channels of each group: whole groups go, with their inputs;
* anything else **blocks**: its input units can never be removed and its outputs are fixed. A rule
  refuses what it does not understand (data_format, axis, non-scalar constants, non element-wise
  activations) rather than guessing; the reason is kept for the report.

``slice`` cuts a layer's weights to the kept input positions (``in_keep``) and kept output
positions (``out_keep``); ``None`` means "all kept". ``edit`` writes the new sizes into the
layer's config entry. ``consumes`` names the kernels whose *input* axis is cut, which is what
:func:`.surgery.zero_removed` zeroes to show that a rebuild is exact.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

ELEMENTWISE = {
    "linear", "relu", "relu6", "leaky_relu", "elu", "selu", "gelu", "sigmoid", "hard_sigmoid", "tanh",
    "softplus", "softsign", "swish", "silu", "mish", "exponential", "hard_swish", "hard_silu",
}
"""tf_keras activations computed value by value. ``softmax``/``log_softmax`` normalise over the
channels (removing one changes all others); custom or unknown functions are not assumed safe."""

ELEMENTWISE_OPS = {
    "__operators__.add", "math.add", "math.multiply", "math.subtract", "math.truediv", "math.divide",
    "__operators__.truediv", "math.scalar_mul", "nn.relu", "nn.relu6", "nn.silu", "nn.swish", "nn.gelu",
    "math.sigmoid", "nn.sigmoid", "math.tanh", "nn.tanh", "math.exp", "math.abs", "math.negative",
    "math.square", "math.sqrt", "math.pow", "math.maximum", "math.minimum", "nn.elu", "nn.selu",
    "nn.softplus", "math.softplus", "nn.leaky_relu",
}
"""``TFOpLambda`` functions (``x + 3.0`` in MobileNetV3's hard-swish) that act value by value;
followed only when every other argument is a Python scalar."""

PASS_THROUGH = {
    "ReLU", "LeakyReLU", "ELU", "ThresholdedReLU", "Dropout", "SpatialDropout1D",
    "SpatialDropout2D", "SpatialDropout3D", "GaussianNoise", "GaussianDropout", "AlphaDropout",
    "ActivityRegularization", "MaxPooling1D", "MaxPooling2D", "MaxPooling3D", "AveragePooling1D",
    "AveragePooling2D", "AveragePooling3D", "GlobalAveragePooling1D", "GlobalAveragePooling2D",
    "GlobalAveragePooling3D", "GlobalMaxPooling1D", "GlobalMaxPooling2D", "GlobalMaxPooling3D",
    "ZeroPadding1D", "ZeroPadding2D", "ZeroPadding3D", "Cropping1D", "Cropping2D", "Cropping3D",
    "UpSampling1D", "UpSampling2D", "UpSampling3D",
}
"""Layers without weights that treat each channel alone (channels_last)."""

MERGES = {"Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum"}
SOURCES = {"Conv1D", "Conv2D", "Conv3D", "Dense", "SeparableConv1D", "SeparableConv2D",
           "Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose"}
DEPTHWISE = {"DepthwiseConv1D", "DepthwiseConv2D"}
TRANSPOSED = {"Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose"}

Keep = np.ndarray | None


class Blocked(Exception):
    """This layer stops channel pruning here; the message says why (for the report)."""


def elementwise(activation: Any) -> bool:
    """Whether a serialized activation acts on each value alone (see :data:`ELEMENTWISE`)."""
    return activation is None or (isinstance(activation, str) and activation in ELEMENTWISE)


def _channels_last(config: dict) -> None:
    if config.get("data_format") not in (None, "channels_last"):
        raise Blocked(f"data_format {config['data_format']!r} (only channels_last is followed)")


def _cut(array: np.ndarray, axis: int, keep: Keep) -> np.ndarray:
    return array if keep is None else np.take(array, keep, axis=axis)


def _expanded(keep: Keep, times: int) -> Keep:
    """Positions of a map whose every unit is repeated ``times`` in a row (depth multiplier)."""
    return None if keep is None else (np.asarray(keep)[:, None] * times + np.arange(times)).ravel()


@dataclass(frozen=True)
class Rule:
    """How one layer kind maps channels (see the module docstring)."""

    check: Callable[[dict, list], None]
    """Raises :class:`Blocked` for a config (and input shapes) the rule does not follow."""
    flow: str
    """``source``, ``same`` (map passed on), ``depthwise``, ``merge``, ``concat``, ``flatten``,
    ``grouped`` or ``reshape``."""
    slice: Callable[[str, list[np.ndarray], list[Keep], Keep], list[np.ndarray]] | None = None
    edit: Callable[[dict, int, int], None] | None = None
    """(config, old output width, new output width) → config edited in place."""


def _no_check(config: dict, shapes: list) -> None:
    """Layers without options that matter to channels."""


def _check_source(config: dict, shapes: list) -> None:
    _channels_last(config)
    if not elementwise(config.get("activation")):
        raise Blocked(f"activation {config.get('activation')!r} does not act on each channel alone")


def _check_conv(config: dict, shapes: list) -> None:
    _check_source(config, shapes)
    if config.get("groups", 1) != 1:
        raise Blocked("grouped")  # routed to the grouped rule by rule_for


def _slice_conv(kind: str, weights: list[np.ndarray], in_keep: list[Keep], out_keep: Keep) -> list[np.ndarray]:
    """Conv/Dense kernels are (..., C_in, C_out); transposed convs (..., C_out, C_in)."""
    kernel, rest = weights[0], weights[1:]
    in_axis, out_axis = (-1, -2) if kind in TRANSPOSED else (-2, -1)
    kernel = _cut(_cut(kernel, in_axis, in_keep[0]), out_axis, out_keep)
    return [kernel, *[_cut(b, 0, out_keep) for b in rest]]


def _slice_separable(kind: str, weights: list[np.ndarray], in_keep: list[Keep], out_keep: Keep) -> list[np.ndarray]:
    depthwise, pointwise, rest = weights[0], weights[1], weights[2:]
    multiplier = depthwise.shape[-1]
    depthwise = _cut(depthwise, -2, in_keep[0])
    pointwise = _cut(_cut(pointwise, -2, _expanded(in_keep[0], multiplier)), -1, out_keep)
    return [depthwise, pointwise, *[_cut(b, 0, out_keep) for b in rest]]


def _slice_depthwise(kind: str, weights: list[np.ndarray], in_keep: list[Keep], out_keep: Keep) -> list[np.ndarray]:
    kernel, rest = weights[0], weights[1:]
    return [_cut(kernel, -2, in_keep[0]), *[_cut(b, 0, out_keep) for b in rest]]


def _slice_grouped(kind: str, weights: list[np.ndarray], in_keep: list[Keep], out_keep: Keep) -> list[np.ndarray]:
    """Whole groups go: the kernel's input axis holds one group's channels and stays as it is."""
    kernel, rest = weights[0], weights[1:]
    return [_cut(kernel, -1, out_keep), *[_cut(b, 0, out_keep) for b in rest]]


def _slice_vectors(kind: str, weights: list[np.ndarray], in_keep: list[Keep], out_keep: Keep) -> list[np.ndarray]:
    """Per-channel vectors (BN's gamma, beta, moving mean and variance)."""
    return [_cut(w, 0, out_keep) for w in weights]


def _edit_filters(config: dict, old: int, new: int) -> None:
    config["filters"] = new


def _edit_units(config: dict, old: int, new: int) -> None:
    config["units"] = new


def _edit_grouped(config: dict, old: int, new: int) -> None:
    config["groups"] = config["groups"] * new // old
    config["filters"] = new


def _edit_reshape(config: dict, old: int, new: int) -> None:
    config["target_shape"] = [*config["target_shape"][:-1], new]


def _check_bn(config: dict, shapes: list) -> None:
    axis = config.get("axis", -1)
    axes = axis if isinstance(axis, (list, tuple)) else [axis]
    rank = len(shapes[0]) if shapes and shapes[0] is not None else None
    if len(axes) != 1 or axes[0] not in (-1, None if rank is None else rank - 1):
        raise Blocked(f"normalises over axis {axis!r}, not only the channel axis")


def _check_activation(config: dict, shapes: list) -> None:
    if not elementwise(config.get("activation")):
        raise Blocked(f"activation {config.get('activation')!r} does not act on each channel alone")


def _check_pooling(config: dict, shapes: list) -> None:
    _channels_last(config)


def _check_concat(config: dict, shapes: list) -> None:
    if len({len(s) for s in shapes if s is not None}) > 1:
        raise Blocked("inputs of different ranks")


def _check_rescaling(config: dict, shapes: list) -> None:
    for key in ("scale", "offset"):
        if not isinstance(config.get(key, 0.0), (int, float)):
            raise Blocked(f"a per-channel {key}")


def _check_lambda_op(config: dict, shapes: list) -> None:
    if config.get("function") not in ELEMENTWISE_OPS:
        raise Blocked(f"TensorFlow op {config.get('function')!r} is not known to act on each value alone")


RULES: dict[str, Rule] = {
    **{kind: Rule(_check_conv, "source", _slice_conv, _edit_filters)
       for kind in ("Conv1D", "Conv2D", "Conv3D", *TRANSPOSED)},
    "Dense": Rule(_check_source, "source", _slice_conv, _edit_units),
    "SeparableConv1D": Rule(_check_source, "source", _slice_separable, _edit_filters),
    "SeparableConv2D": Rule(_check_source, "source", _slice_separable, _edit_filters),
    **{kind: Rule(_check_source, "depthwise", _slice_depthwise) for kind in DEPTHWISE},
    "BatchNormalization": Rule(_check_bn, "same", _slice_vectors),
    "Activation": Rule(_check_activation, "same"),
    "Rescaling": Rule(_check_rescaling, "same"),
    "TFOpLambda": Rule(_check_lambda_op, "same"),
    **{kind: Rule(_check_pooling, "same") for kind in PASS_THROUGH},
    **{kind: Rule(_no_check, "merge") for kind in MERGES},
    "Concatenate": Rule(_check_concat, "concat"),
    "Flatten": Rule(_check_pooling, "flatten"),
    "Reshape": Rule(_no_check, "reshape", edit=_edit_reshape),
}
"""Layer class name → rule. A class not here blocks (see :func:`rule_for`)."""

GROUPED = Rule(_check_source, "grouped", _slice_grouped, _edit_grouped)
MERGE = RULES["Add"]
"""An element-wise TensorFlow op on several tensors (``x * se``, ``x + shortcut``) couples them like ``Add``."""

REFUSED = {
    "LayerNormalization": "normalises over the channels: removing one changes every other (not exact)",
    "GroupNormalization": "normalises over groups of channels",
    "UnitNormalization": "normalises over the channels",
    "Softmax": "normalises over the channels",
    "Lambda": "runs Python code tfrewind cannot read",
    "Normalization": "holds per-channel statistics of the input data",
    "ZeroPadChannels": "pads the residual stream with zero channels (option-A shortcut): the stream stays "
                       "whole, as in Li et al.'s CIFAR ResNets",
}
"""Known layers that block, with the reason (better than "unknown" in a report)."""


def rule_for(kind: str, config: dict, shapes: list) -> Rule:
    """The rule of a layer, or :class:`Blocked` with the reason."""
    if kind in REFUSED:
        raise Blocked(REFUSED[kind])
    rule = RULES.get(kind)
    if rule is None:
        raise Blocked("a layer kind the channel analysis does not know (custom or unsupported)")
    if kind in ("Conv1D", "Conv2D", "Conv3D") and config.get("groups", 1) != 1:
        rule = GROUPED
    rule.check(config, shapes)
    return rule
