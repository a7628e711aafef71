"""Parameter and FLOPs counts, for reports before and after pruning.

FLOPs here are **multiply-accumulates (MACs)** of the layers that dominate a CNN's cost:

* Conv1D/2D/3D, DepthwiseConv2D: ``output positions × kernel size``, i.e. for Conv2D
  ``H_out·W_out · k_h·k_w · C_in/groups · C_out`` and for DepthwiseConv2D
  ``H_out·W_out · k_h·k_w · C_in·multiplier``;
* SeparableConv2D: its depthwise and pointwise parts, both at the output resolution;
* Conv2DTranspose: ``input positions × kernel size``;
* Dense: ``leading positions × C_in·C_out`` (1 position for a 2-D input).

Biases, batch norm, activations, pooling and additions are not counted (as in Li et al. 2017
and most pruning papers); multiply by 2 for "FLOPs" counted as separate multiplies and adds.
Counts are dense: zeros inside a kernel still cost MACs on ordinary hardware, so unstructured
pruning leaves them unchanged. :func:`sparse_macs` gives the idealised count that skips zeros.
A layer shared by several calls is counted once.
"""

from __future__ import annotations

import numpy as np

from .._keras import keras
from . import wrappers as W


def _positions(shape) -> int:
    dims = [d for d in list(shape)[1:-1]]
    return int(np.prod(dims)) if dims else 1


def layer_macs(layer: keras.layers.Layer) -> int:
    """Dense MACs of one Conv/Dense layer (a wrapper counts as its inner layer); 0 for others."""
    inner = layer.layer if W.is_wrapper(layer) else layer
    if not W.has_macs(inner):
        return 0
    weights = [w for w in inner.weights if w is not getattr(inner, "bias", None)]
    kernel_size = sum(int(np.prod(w.shape)) for w in weights)
    if isinstance(inner, keras.layers.Conv2DTranspose):
        return _positions(layer.input_shape) * kernel_size
    return _positions(layer.output_shape if not isinstance(inner, keras.layers.Dense)
                      else layer.input_shape) * kernel_size


def macs_per_layer(model: keras.Model) -> dict[str, int]:
    """Original layer name → dense MACs, for every Conv/Dense layer."""
    out = {}
    for layer in W.all_layers(model):
        inner = layer.layer if W.is_wrapper(layer) else layer
        if W.has_macs(inner):
            out[inner.name] = layer_macs(layer)
    return out


def total_macs(model: keras.Model) -> int:
    return int(sum(macs_per_layer(model).values()))


def sparse_macs(model: keras.Model) -> int:
    """MACs if multiplications by zero kernel entries were skipped (a lower bound, not a latency)."""
    dense = macs_per_layer(model)
    kernels = W.effective_kernels(model)
    total = 0
    for name, macs in dense.items():
        k = kernels.get(name)
        total += macs if k is None or not k.size else int(round(macs * np.count_nonzero(k) / k.size))
    return total


def _plain_layers(model: keras.Model) -> list[keras.layers.Layer]:
    return [layer.layer if W.is_wrapper(layer) else layer for layer in W.all_layers(model)]


def count_params(model: keras.Model) -> int:
    """All weights (trainable and not, e.g. BN statistics), excluding tfmot's mask bookkeeping.

    Matches Keras' "Total params" of the stripped model.
    """
    return int(sum(int(np.prod(w.shape)) for layer in _plain_layers(model) for w in layer.weights))


def count_nonzero(model: keras.Model) -> int:
    """Non-zero weight entries as the model computes with them (masked kernels for wrappers)."""
    kernels = W.effective_kernels(model)
    total = 0
    for layer in _plain_layers(model):
        masked = kernels.get(layer.name) if W.is_prunable(layer) else None
        kernel_var = W.kernel(layer) if masked is not None else None
        for w in layer.weights:
            value = masked if w is kernel_var else w.numpy()
            total += int(np.count_nonzero(value))
    return total
