"""Model facts for the report: strip pruning wrappers, count parameters, zeros and MACs.

Why count MACs ourselves: tf_keras has no FLOP counter that understands sparsity, and the two
numbers the paper's readers care about are simple — dense MACs (what filter pruning shrinks) and
MACs on non-zero weights (what unstructured sparsity could save with a sparse kernel). Only
Conv2D, DepthwiseConv2D and Dense are counted: they hold >99 % of the work in these networks.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from .._keras import keras, tfmot
from ..pruning.wrappers import all_layers



def _wrapper_class() -> type:
    """tfmot keeps its wrapper class private; its registered name is the stable handle."""
    with tfmot.sparsity.keras.prune_scope():
        return keras.utils.get_registered_object("PruneLowMagnitude")


_PruneLowMagnitude = _wrapper_class()
_WEIGHT_LAYERS = (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D, keras.layers.DepthwiseConv2D,
                  keras.layers.SeparableConv2D, keras.layers.Dense)


@dataclass
class LayerStats:
    name: str
    kind: str
    params: int
    """Kernel weights (biases excluded: never pruned)."""
    nonzero: int
    macs: int
    """Multiply-accumulates for one image, dense."""

    @property
    def sparsity(self) -> float:
        return 1.0 - self.nonzero / self.params if self.params else 0.0

    @property
    def nonzero_macs(self) -> int:
        """MACs on non-zero weights only (each weight is used the same number of times)."""
        return int(round(self.macs * (self.nonzero / self.params))) if self.params else 0


def is_wrapped(model: keras.Model) -> bool:
    return any(isinstance(layer, _PruneLowMagnitude) for layer in all_layers(model))


def strip_model(model: keras.Model) -> keras.Model:
    """The plain model an edge device runs: tfmot wrappers removed, their masks applied.

    Why apply the masks: between an optimizer step and the next forward pass a wrapper's raw
    kernel can hold non-zero "pruned" values; the wrapped model multiplies by the mask anyway,
    so the stripped model must too, or it would compute something else. This writes the masked
    values into the (shared) kernel variables — the state tfmot itself restores on every forward
    pass. Physically smaller (filter-pruned) and plain models are returned unchanged.
    """
    if not is_wrapped(model):
        return model
    for layer in all_layers(model):
        if isinstance(layer, _PruneLowMagnitude):
            for weight, mask, _threshold in layer.pruning_vars:
                weight.assign(weight * mask)
    return tfmot.sparsity.keras.strip_pruning(model)


def weight_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """Conv (1D/2D/3D, depthwise, separable) and Dense layers in model order, nested models flattened."""
    return [layer for layer in all_layers(model) if isinstance(layer, _WEIGHT_LAYERS)]


def layer_stats(model: keras.Model) -> list[LayerStats]:
    return [_one_layer(layer) for layer in weight_layers(model)]


def weight_sparsity(stats: list[LayerStats]) -> float:
    """Share of zeros over all Conv/Dense kernels together (what sparse encoding can exploit)."""
    total = sum(s.params for s in stats)
    return 1.0 - sum(s.nonzero for s in stats) / total if total else 0.0


def parameter_counts(model: keras.Model) -> tuple[int, int]:
    """(all weights, non-zero weights), batch-norm statistics and biases included."""
    values = [np.asarray(w) for w in model.get_weights()]
    return int(sum(v.size for v in values)), int(sum(np.count_nonzero(v) for v in values))


def fingerprint(model: keras.Model) -> str:
    """Architecture + weights digest: two calls on the same model state give the same key."""
    digest = hashlib.sha256(model.to_json().encode())
    for value in model.get_weights():
        digest.update(np.ascontiguousarray(value).tobytes())
    return digest.hexdigest()


def _one_layer(layer: keras.layers.Layer) -> LayerStats:
    kernels = [np.asarray(k) for k in _kernels(layer)]
    out_positions = int(np.prod([d for d in layer.output_shape[1:-1] if d is not None], dtype=np.int64))
    size = sum(k.size for k in kernels)
    # Conv (kernel already divides input channels by groups), depthwise, the two halves of a separable
    # conv and Dense (applied at every leading position of an N-D input) all use each kernel weight
    # once per output position.
    return LayerStats(layer.name, type(layer).__name__, int(size), int(sum(np.count_nonzero(k) for k in kernels)),
                      int(out_positions * size))


def _kernels(layer: keras.layers.Layer) -> list:
    if isinstance(layer, keras.layers.SeparableConv2D):
        return [layer.depthwise_kernel, layer.pointwise_kernel]
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        return [layer.depthwise_kernel]
    return [layer.kernel]
