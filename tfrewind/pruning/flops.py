"""Parameter and FLOPs counts, for reports before and after pruning — the one MAC counter.

FLOPs here are **multiply-accumulates (MACs)** of the layers that dominate a CNN's cost. Each
kernel weight of a Conv/Dense layer takes part in one MAC per position it is applied at:

* Conv1D/2D/3D (grouped too: the kernel already holds ``C_in/groups`` input channels),
  DepthwiseConv1D/2D: every **output** position, e.g. Conv2D ``H_out·W_out · k_h·k_w · C_in/groups · C_out``,
  DepthwiseConv2D ``H_out·W_out · k_h·k_w · C_in·multiplier``;
* SeparableConv1D/2D: its depthwise and pointwise kernels, both at the output resolution;
* Conv1D/2D/3DTranspose: every **input** position (each input value scatters through the whole
  kernel): ``H_in·W_in · k_h·k_w · C_out · C_in``;
* Dense: every leading position of its input (1 for a 2-D input): ``positions · C_in · C_out``.

Biases, batch norm, activations, pooling and additions are not counted (as in Li et al. 2017
and most pruning papers); multiply by 2 for "FLOPs" counted as separate multiplies and adds.
Unknown (``None``) spatial sizes count as 1. Counts are dense: zeros inside a kernel still cost
MACs on ordinary hardware, so unstructured pruning leaves them unchanged. :func:`sparse_macs` gives
the idealised count that skips zeros. A layer shared by several calls is counted once.
"""

from __future__ import annotations

import numpy as np

from .._keras import keras, tf
from . import wrappers as W

_TRANSPOSED = (keras.layers.Conv1DTranspose, keras.layers.Conv2DTranspose, keras.layers.Conv3DTranspose)
KERNEL_NAMES = ("depthwise_kernel", "pointwise_kernel", "kernel")
"""Attributes that hold a Conv/Dense layer's multiplying weights."""


def mac_weights(layer: keras.layers.Layer) -> list[tf.Variable]:
    """The weights a Conv/Dense layer (or wrapper) multiplies with: its kernel(s), bias excluded."""
    inner = W.unwrap(layer)
    if not W.is_conv_or_dense(inner):
        return []
    return [getattr(inner, name) for name in KERNEL_NAMES if getattr(inner, name, None) is not None]


def uses_per_weight(layer: keras.layers.Layer) -> int:
    """How many MACs one kernel weight takes part in: output positions (input for transposed convs)."""
    shape = layer.input_shape if isinstance(W.unwrap(layer), _TRANSPOSED) else layer.output_shape
    return int(np.prod([d for d in list(shape)[1:-1] if d is not None], dtype=np.int64))


def layer_macs(layer: keras.layers.Layer) -> int:
    """Dense MACs of one Conv/Dense layer (a wrapper counts as its inner layer); 0 for others."""
    weights = mac_weights(layer)
    return uses_per_weight(layer) * sum(int(np.prod(w.shape)) for w in weights) if weights else 0


def layer_nonzero_macs(layer: keras.layers.Layer) -> int:
    """MACs on non-zero kernel entries (as the model computes with them: masks applied)."""
    wanted = {w.ref() for w in mac_weights(layer)}
    if not wanted:
        return 0
    nonzero = sum(int(np.count_nonzero(v)) for w, v in W.effective_weights(layer) if w.ref() in wanted)
    return uses_per_weight(layer) * nonzero


def macs_per_layer(model: keras.Model) -> dict[str, int]:
    """Original layer name → dense MACs, for every Conv/Dense layer."""
    return {W.unwrap(layer).name: layer_macs(layer) for layer in W.all_layers(model) if W.is_conv_or_dense(layer)}


def total_macs(model: keras.Model) -> int:
    return int(sum(macs_per_layer(model).values()))


def sparse_macs(model: keras.Model) -> int:
    """MACs if multiplications by zero kernel entries were skipped (a lower bound, not a latency)."""
    return int(sum(layer_nonzero_macs(layer) for layer in W.all_layers(model) if W.is_conv_or_dense(layer)))


def count_params(model: keras.Model) -> int:
    """All weights (trainable and not, e.g. BN statistics), excluding tfmot's mask bookkeeping.

    Matches Keras' "Total params" of the stripped model.
    """
    return int(sum(int(np.prod(w.shape)) for layer in W.all_layers(model) for w in W.unwrap(layer).weights))


def count_nonzero(model: keras.Model) -> int:
    """Non-zero weight entries as the model computes with them (masked kernels for wrappers)."""
    return int(sum(np.count_nonzero(value) for layer in W.all_layers(model)
                   for _, value in W.effective_weights(layer)))
