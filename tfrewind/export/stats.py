"""Model facts for the report: strip pruning wrappers, count parameters, zeros and MACs.

Why no counting of our own here: the MACs come from :mod:`tfrewind.pruning.flops` (the one
counter) and a layer's sparsity is that of the weight tfmot prunes in it
(:func:`tfrewind.pruning.wrappers.prunable_weights`: the pointwise kernel of a separable conv,
for instance), so the export check reads exactly what pruning wrote and the retrain check counted.
Every Conv (1D/2D/3D, transposed, depthwise, separable) and Dense layer is reported.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from .._keras import keras
from ..pruning import flops
from ..pruning.wrappers import all_layers, effective_weights, is_wrapped, prunable_weights, unwrap

__all__ = ["LayerStats", "fingerprint", "is_wrapped", "layer_stats", "parameter_counts", "weight_layers",
           "weight_sparsity"]


@dataclass
class LayerStats:
    name: str
    kind: str
    params: int
    """Kernel weights, every kernel of the layer (biases excluded: never pruned)."""
    nonzero: int
    macs: int
    """Multiply-accumulates for one image, dense."""
    nonzero_macs: int
    """MACs on non-zero weights only."""
    weight: str
    """The kernel whose zeros :attr:`sparsity` counts: the one tfmot prunes (``pointwise_kernel`` of a
    separable conv), else the layer's only kernel (``depthwise_kernel`` of a depthwise conv)."""
    weight_size: int
    weight_nonzero: int

    @property
    def sparsity(self) -> float:
        return 1.0 - self.weight_nonzero / self.weight_size if self.weight_size else 0.0


def weight_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """Conv (every kind) and Dense layers in model order, nested models flattened."""
    return [layer for layer in all_layers(model) if flops.mac_weights(layer)]


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
    inner = unwrap(layer)
    kernels = flops.mac_weights(layer)
    values = {weight.ref(): value for weight, value in effective_weights(layer)}
    counted = (prunable_weights(inner) or kernels)[0]
    weight = next((name for name in flops.KERNEL_NAMES if getattr(inner, name, None) is counted),
                  counted.name.rsplit("/", 1)[-1].split(":")[0])  # a PrunableLayer's own weight
    return LayerStats(inner.name, type(inner).__name__,
                      params=sum(int(values[k.ref()].size) for k in kernels),
                      nonzero=sum(int(np.count_nonzero(values[k.ref()])) for k in kernels),
                      macs=flops.layer_macs(layer), nonzero_macs=flops.layer_nonzero_macs(layer),
                      weight=weight, weight_size=int(values[counted.ref()].size),
                      weight_nonzero=int(np.count_nonzero(values[counted.ref()])))
