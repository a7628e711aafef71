"""tfmot ``PruneLowMagnitude`` wrappers around Conv/Dense layers only, and access to their masks.

Why only Conv/Dense: ``prune_low_magnitude`` on a whole model wraps every layer (BN, ReLU, Add,
the final float32 Activation), which renames them (``get_layer('bn0')`` fails) and breaks mixed
precision. We clone the model and wrap just the layers with a prunable kernel; the wrapper's
inner layer keeps its original name, so :func:`wrappers` maps original names to wrappers.
Why our own clone loop and not ``prune_low_magnitude(model, pruning_policy=...)``: tfmot does not
descend into nested models — checked on tfmot 0.8.1 with a MobileNetV2 inside a Sequential, with
and without a policy, the backbone stays unwrapped and only the outer Dense is pruned.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from .._keras import keras, tf, tfmot
from ..errors import ConfigError
from ..models.files import custom_objects

# tfmot's public API does not export the registry; the class has not moved since tfmot 0.2.
from tensorflow_model_optimization.python.core.sparsity.keras.prune_registry import (  # noqa: E402
    PruneRegistry as _Registry)

_CONV_TYPES = (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D,
               keras.layers.SeparableConv1D, keras.layers.SeparableConv2D,
               keras.layers.DepthwiseConv1D, keras.layers.DepthwiseConv2D)
"""Every convolution (the transposed ones subclass Conv1D/2D/3D)."""


def _wrapper_class() -> type:
    with tfmot.sparsity.keras.prune_scope():
        return keras.utils.get_registered_object("PruneLowMagnitude")


PruneLowMagnitude = _wrapper_class()


def is_wrapper(layer: keras.layers.Layer) -> bool:
    return isinstance(layer, PruneLowMagnitude)


def unwrap(layer: keras.layers.Layer) -> keras.layers.Layer:
    """The layer itself, or a wrapper's inner layer (which keeps the original name)."""
    return layer.layer if is_wrapper(layer) else layer


def is_conv_or_dense(layer: keras.layers.Layer) -> bool:
    """A convolution of any kind or a Dense layer (wrapped or not): what pruning and MACs are about."""
    inner = unwrap(layer)
    return isinstance(inner, (*_CONV_TYPES, keras.layers.Dense)) and not isinstance(inner, keras.Model)


def prunable_weights(layer: keras.layers.Layer) -> list[tf.Variable]:
    """The weights tfmot masks in this Conv/Dense layer (or wrapper) — the ones every check must count.

    Why ask tfmot: it prunes one weight per layer type, not "the kernel". Its ``PruneRegistry``
    (0.8.1) lists ``kernel`` for Conv1D/2D/3D, Conv2D/3DTranspose and Dense, only
    ``pointwise_kernel`` for SeparableConv1D/2D, nothing for DepthwiseConv2D, and knows no
    Conv1DTranspose or DepthwiseConv1D; a ``PrunableLayer`` names its own. A wrapper's
    ``pruning_vars`` hold exactly these. Anything else (other layer types, unknown subclasses) → [].
    """
    if is_wrapper(layer):
        return [weight for weight, _mask, _threshold in layer.pruning_vars]
    if not is_conv_or_dense(layer):
        return []
    if isinstance(layer, tfmot.sparsity.keras.PrunableLayer):
        return list(layer.get_prunable_weights()) if layer.built else []
    if not _Registry.supports(layer):  # matches the exact class, as tfmot's wrapper does
        return []
    return [getattr(layer, name) for name in _Registry._weight_names(layer)]  # noqa: SLF001 (tfmot's map)


def is_prunable(layer: keras.layers.Layer) -> bool:
    """A plain Conv/Dense layer in which tfmot masks exactly one weight (the one our masks address)."""
    return not is_wrapper(layer) and len(prunable_weights(layer)) == 1


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
    return [unwrap(layer) for layer in all_layers(model) if is_prunable(unwrap(layer))]


def wrappers(model: keras.Model) -> dict[str, keras.layers.Layer]:
    """Original layer name → its ``PruneLowMagnitude`` wrapper (whose own name has a prefix)."""
    return {layer.layer.name: layer for layer in all_layers(model) if is_wrapper(layer)}


def is_wrapped(model: keras.Model) -> bool:
    return bool(wrappers(model))


def kernel(layer: keras.layers.Layer) -> tf.Variable:
    """The one weight tfmot prunes in a prunable layer or wrapper (see :func:`prunable_weights`)."""
    weights = prunable_weights(layer)
    if len(weights) != 1:
        raise ValueError(f"layer {unwrap(layer).name!r} has {len(weights)} prunable weights, not one")
    return weights[0]


def effective_weights(layer: keras.layers.Layer) -> list[tuple[tf.Variable, np.ndarray]]:
    """Every weight of a layer (or a wrapper's inner layer) with its value as the model computes.

    Why the mask: between an optimizer step and the next forward pass tfmot's raw kernel holds
    non-zero values at pruned positions; the wrapper multiplies by the mask before use.
    """
    masks_of = {weight.ref(): mask for weight, mask, _ in layer.pruning_vars} if is_wrapper(layer) else {}
    out = []
    for weight in unwrap(layer).weights:
        value = weight.numpy()
        mask = masks_of.get(weight.ref())
        out.append((weight, value if mask is None else value * mask.numpy()))
    return out


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
    for layer in all_layers(model):
        inner = unwrap(layer)
        if is_prunable(inner):
            value = kernel(inner).numpy()
            out[inner.name] = value * layer.pruning_vars[0][1].numpy() if is_wrapper(layer) else value
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
    """The plain model an edge device runs: tfmot wrappers removed, pruned weights exactly zero.

    Why apply the masks first: between an optimizer step and the next forward pass a wrapper's raw
    kernel can hold non-zero "pruned" values; the wrapped model multiplies by the mask anyway, so
    the stripped model must too, or it would compute something else. This writes the masked values
    into the (shared) kernel variables — the state tfmot itself restores on every forward pass.
    Physically smaller (filter-pruned) and plain models are returned unchanged.
    """
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
