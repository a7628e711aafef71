"""Batch-norm recalibration: re-estimate the moving statistics of every BN layer, with no weight update.

Why: pruning changes every activation statistic, but a BN layer normalises at test time with
moving statistics gathered on the network before pruning, and retraining only pulls them along at
its momentum's pace (~10 steps at PyTorch's 0.1, ~100 at tf_keras' default 0.99, ~1000 at
MobileNetV2's 0.999). The pruned model's accuracy — before retraining, and after a short one —
then measures stale statistics as much as weights. Recalibrating ("precise BN") fixes that.

How: each BN layer — inside nested models and tfmot wrappers too — runs in training mode (it
normalises with the batch's statistics and updates its moving ones), while every other layer runs
in inference mode: tfmot's wrappers neither count a pruning step nor recompute a mask, dropout is
off, and there is no gradient and no optimizer step, so only BN moving statistics change. Batches
go through ``model.predict_on_batch``, so a distribution strategy's replicas take part.
Averaging: by default every BN's moving mean and variance become the plain mean of the N batches'
statistics (PyTorch's ``momentum=None``, a cumulative average; the variance unbiased, as tf_keras'
fused kernel and PyTorch compute it), so each batch counts equally whatever the layer's momentum;
``cumulative=False`` keeps each layer's own momentum instead (an exponential average: what N
forward passes in training mode would give). ``docs/benchmarks.md`` compares the two.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Iterable

import numpy as np

from ._keras import keras
from .data import DataBundle

_BN_TYPES = tuple(c for c in keras.layers.BatchNormalization.__mro__
                  if c.__name__ in ("BatchNormalization", "BatchNormalizationBase"))
"""tf_keras' BatchNormalization and its base (which the synchronized and V1 variants share)."""


@dataclass
class Recalibration:
    """What a recalibration did; recorded in the stage's ``metrics.json`` as ``recalibrate_bn``."""

    ran: bool
    batches: int
    """Batches actually averaged (the request, capped at one epoch of the data)."""
    requested: int
    layers: int
    """Batch-norm layers recalibrated (0: the model has none, nothing ran)."""
    average: str
    """``cumulative`` (every batch weighs the same) or ``exponential`` (each layer's own momentum)."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def batch_norm_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """Every batch-norm layer of ``model``, inside nested models and pruning wrappers too, once each."""
    found: dict[int, keras.layers.Layer] = {}
    for module in model.submodules:
        if isinstance(module, _BN_TYPES):
            found.setdefault(id(module), module)
    return list(found.values())


def recalibrate_bn(model: keras.Model, batches: Iterable[Any], requested: int | None = None, *,
                   cumulative: bool = True) -> Recalibration:
    """Run ``batches`` (``x`` or ``(x, y, …)``) through ``model`` with only its BN layers in training mode.

    Every weight but the BN moving statistics is left as it was (masks included); each layer's
    momentum, ``trainable`` flag and ``call`` are restored afterwards. ``requested``: what the caller
    asked for (recorded; defaults to the batches given).
    """
    layers = batch_norm_layers(model)
    average = "cumulative" if cumulative else "exponential"
    if not layers:
        return Recalibration(False, 0, requested or 0, 0, average)
    saved = [(layer.momentum, layer.trainable) for layer in layers]
    sums = [[np.zeros(layer.moving_mean.shape, np.float64), np.zeros(layer.moving_variance.shape, np.float64)]
            for layer in layers]
    count = 0
    try:
        for layer in layers:
            _force_training(layer)
            layer.trainable = True  # a frozen BN ignores training=True
            if cumulative:
                layer.momentum = 0.0  # moving statistics = this batch's: averaged below
        model.predict_function = None  # trace anew with the patched layers
        for batch in batches:
            model.predict_on_batch(batch[0] if isinstance(batch, (tuple, list)) else batch)
            count += 1
            if cumulative:
                for layer, (mean, variance) in zip(layers, sums):
                    mean += layer.moving_mean.numpy()
                    variance += layer.moving_variance.numpy()
        if cumulative and count:
            for layer, (mean, variance) in zip(layers, sums):
                layer.moving_mean.assign((mean / count).astype(layer.moving_mean.dtype.as_numpy_dtype))
                layer.moving_variance.assign((variance / count).astype(layer.moving_variance.dtype.as_numpy_dtype))
    finally:
        for layer, (momentum, trainable) in zip(layers, saved):
            if "call" in vars(layer):
                object.__delattr__(layer, "call")
            layer.momentum, layer.trainable = momentum, trainable
        model.predict_function = None  # later predictions must not run the patched graph
    return Recalibration(count > 0, count, count if requested is None else requested, len(layers), average)


def _force_training(layer: keras.layers.Layer) -> None:
    """This layer instance normalises in training mode whatever ``training`` it is called with.

    Why patch the instance and not call the model with ``training=True``: that would also put
    tfmot's wrappers in training mode (a pruning step counted, masks possibly recomputed) and
    dropout on. ``object.__setattr__`` keeps Keras' attribute tracking out of it.
    """
    unpatched = type(layer).call

    def call(inputs, training=None, **kwargs):
        return unpatched(layer, inputs, training=True, **kwargs)

    object.__setattr__(layer, "call", call)


def recalibrate_on_training_data(model: keras.Model, data: DataBundle, count: int, *,
                                 cumulative: bool = True) -> Recalibration:
    """Recalibrate on the first ``count`` training batches of epoch 0 (at most one epoch).

    Why epoch 0's: shuffled and augmented as training sees them, and the same batches in every run,
    resumed or not (the input pipeline's clock is pinned for the pass, then put back as it was).
    """
    clock = data.clock
    state = None if clock is None else (bool(clock.pinned.numpy()), int(clock.epoch.numpy()))
    if clock is not None:
        clock.pin(0)
    try:
        return recalibrate_bn(model, data.train.take(count), requested=count, cumulative=cumulative)
    finally:
        if state is not None:
            clock.pin(state[1])
            if not state[0]:
                clock.unpin()


__all__ = ["Recalibration", "batch_norm_layers", "recalibrate_bn", "recalibrate_on_training_data"]
