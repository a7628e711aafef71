"""tfmot ``PruneLowMagnitude`` wrappers around Conv/Dense layers only, and access to their masks.

Why only Conv/Dense: ``prune_low_magnitude`` on a whole model wraps every layer (BN, ReLU, Add,
the final float32 Activation), which renames them (``get_layer('bn0')`` fails) and breaks mixed
precision. We clone the model and wrap just the layers with a prunable kernel; the wrapper's
inner layer keeps its original name, so :func:`wrappers` maps original names to wrappers.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from .._keras import keras, tf, tfmot
from ..errors import ConfigError
from ..models.files import custom_objects

_PRUNABLE_TYPES = (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D,
                   keras.layers.SeparableConv1D, keras.layers.SeparableConv2D, keras.layers.Dense)
"""Layers tfmot masks (its PruneRegistry lists no prunable weight for DepthwiseConv2D)."""
_DEPTHWISE = (keras.layers.DepthwiseConv2D,)


def _wrapper_class() -> type:
    with tfmot.sparsity.keras.prune_scope():
        return keras.utils.get_registered_object("PruneLowMagnitude")


PruneLowMagnitude = _wrapper_class()


def is_wrapper(layer: keras.layers.Layer) -> bool:
    return isinstance(layer, PruneLowMagnitude)


def is_prunable(layer: keras.layers.Layer) -> bool:
    """A Conv/Dense layer (not yet wrapped) whose kernel tfmot knows how to mask."""
    return (isinstance(layer, _PRUNABLE_TYPES) and not isinstance(layer, _DEPTHWISE)
            and not isinstance(layer, keras.Model))


def has_macs(layer: keras.layers.Layer) -> bool:
    """Conv/Dense layers whose multiply-accumulates :mod:`.flops` counts (depthwise included)."""
    return is_prunable(layer) or isinstance(layer, _DEPTHWISE)


def all_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """Every layer, descending into nested models (tf.keras.applications backbones)."""
    layers = []
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            layers.extend(all_layers(layer))
        else:
            layers.append(layer)
    return layers


def prunable_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """Prunable layers in model order, as their plain (unwrapped) layer objects."""
    found = []
    for layer in all_layers(model):
        inner = layer.layer if is_wrapper(layer) else layer
        if is_prunable(inner):
            found.append(inner)
    return found


def wrappers(model: keras.Model) -> dict[str, keras.layers.Layer]:
    """Original layer name → its ``PruneLowMagnitude`` wrapper (whose own name has a prefix)."""
    return {layer.layer.name: layer for layer in all_layers(model) if is_wrapper(layer)}


def is_wrapped(model: keras.Model) -> bool:
    return bool(wrappers(model))


def kernel(layer: keras.layers.Layer) -> tf.Variable:
    """The one prunable weight of a Conv/Dense layer (or of a wrapper's inner layer)."""
    if is_wrapper(layer):
        return layer.pruning_vars[0][0]
    if isinstance(layer, (keras.layers.SeparableConv1D, keras.layers.SeparableConv2D)):
        return layer.pointwise_kernel
    return layer.kernel


def copy_model(model: keras.Model) -> keras.Model:
    """A clone with copied weights, so pruning never modifies the caller's model."""
    with keras.utils.custom_object_scope(custom_objects()):
        clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    return clone


def wrap(model: keras.Model, schedule, select: Callable[[keras.layers.Layer], bool] | None = None,
         sparsity_m_by_n: tuple[int, int] | None = None) -> keras.Model:
    """Clone ``model`` (weights copied) with selected Conv/Dense layers in tfmot wrappers.

    The input must be a plain model (strip an already-pruned one first); the returned model
    shares no variables with it.
    """
    if is_wrapped(model):
        raise ValueError("wrap() needs a plain model; strip the pruning wrappers first")
    base = copy_model(model)
    select = select or (lambda layer: True)

    def clone_fn(layer):
        if isinstance(layer, keras.Model):
            return keras.models.clone_model(layer, clone_function=clone_fn)
        if is_prunable(layer) and select(layer):
            return PruneLowMagnitude(layer, pruning_schedule=schedule, sparsity_m_by_n=sparsity_m_by_n)
        return layer

    try:
        with keras.utils.custom_object_scope(custom_objects()):
            wrapped = keras.models.clone_model(base, clone_function=clone_fn)
    except ValueError as exc:
        raise ConfigError(f"prune: tfmot cannot wrap this model ({str(exc).splitlines()[0]})") from exc
    if not wrappers(wrapped):
        raise ConfigError(f"prune: model {model.name!r} has no prunable Conv/Dense layer")
    return wrapped


def masks(model: keras.Model) -> dict[str, np.ndarray]:
    """Original layer name → mask (1 kept, 0 pruned) of every wrapped layer, as float arrays."""
    return {name: w.pruning_vars[0][1].numpy().copy() for name, w in wrappers(model).items()}


def effective_kernels(model: keras.Model) -> dict[str, np.ndarray]:
    """Layer name → kernel as the model computes with it (kernel × mask for wrapped layers).

    Why multiply: between an optimizer step and the next forward pass tfmot's raw kernel holds
    non-zero values at pruned positions; they are re-masked before use.
    """
    out = {}
    wrapped = wrappers(model)
    for layer in prunable_layers(model):
        value = kernel(layer).numpy()
        if layer.name in wrapped:
            value = value * wrapped[layer.name].pruning_vars[0][1].numpy()
        out[layer.name] = value
    return out


def set_masks(model: keras.Model, new_masks: dict[str, np.ndarray],
              thresholds: dict[str, float] | None = None) -> None:
    """Write masks into the wrappers' mask variables and zero the kernels at pruned positions."""
    wrapped = wrappers(model)
    for name, mask in new_masks.items():
        weight, mask_var, threshold_var = wrapped[name].pruning_vars[0]
        mask_var.assign(np.asarray(mask, dtype=mask_var.dtype.as_numpy_dtype))
        weight.assign(weight * tf.cast(mask_var, weight.dtype))
        if thresholds and name in thresholds:
            threshold_var.assign(thresholds[name])


def apply_masks(model: keras.Model) -> None:
    """Re-multiply every wrapped kernel by its mask (what tfmot does before each forward pass)."""
    for wrapper in wrappers(model).values():
        wrapper.pruning_obj.weight_mask_op()


def strip(model: keras.Model) -> keras.Model:
    """The plain model without wrappers, pruned weights exactly zero; plain models pass through."""
    if not is_wrapped(model):
        return model
    apply_masks(model)
    return tfmot.sparsity.keras.strip_pruning(model)


def pruning_callbacks(model: keras.Model) -> list:
    """Callbacks ``fit`` needs for this model: tfmot's ``UpdatePruningStep`` when wrapped.

    Without it tfmot's wrappers fail at the first training step; it also re-masks the kernels at
    each epoch end so checkpoints hold exact zeros.
    """
    return [tfmot.sparsity.keras.UpdatePruningStep()] if is_wrapped(model) else []
