"""Copy weights between the two APIs' twins of a model, then prove they compute the same thing.

Why by layer name and weight order, with every shape checked: both APIs keep a layer's weights in
the same order (kernel, bias; gamma, beta, moving mean, moving variance; …), and layer names are
carried over, so pairing is exact; a mismatch means the architectures are not twins, which is an
error, never a partial copy. The copy is bit for bit, so pruned zeros stay exactly zero.
"""

from __future__ import annotations

import numpy as np

from ..errors import TranslationError
from .sides import Side

TOLERANCE = 1e-5
"""Largest output difference accepted between a model and its translation: absolute for outputs up
to 1 (probabilities), relative to the largest |output| beyond (:func:`allowed`)."""
SAMPLE_IMAGES = 4


def copy_weights(source_model, target_model, source: Side, target: Side) -> None:
    """Set every weight of ``target_model`` from the layer of the same name in ``source_model``."""
    by_name = {layer.name: layer for layer in source_model.layers}
    copied = set()
    for layer in target_model.layers:
        twin = by_name.get(layer.name)
        if twin is None:
            if layer.weights:
                raise TranslationError(f"layer {layer.name!r} has weights but no twin in the {source.label} model")
            continue
        copied.add(layer.name)
        if source.is_model(twin):
            copy_weights(twin, layer, source, target)
            continue
        _copy_layer(twin, layer, source, target)
    missed = [layer.name for layer in source_model.layers if layer.weights and layer.name not in copied]
    if missed:
        raise TranslationError(f"the weights of {missed[:5]} were not carried over to {target.label}")


def _copy_layer(source_layer, target_layer, source: Side, target: Side) -> None:
    values = source_layer.get_weights()
    names = [_short(w) for w in source_layer.weights]
    wanted = [(_short(w), tuple(w.shape)) for w in target_layer.weights]
    got = [(n, tuple(v.shape)) for n, v in zip(names, values)]
    if [shape for _, shape in got] != [shape for _, shape in wanted]:
        raise TranslationError(f"layer {target_layer.name!r}: {source.label} weights {got} do not fit the "
                               f"{target.label} layer's {wanted}")
    if values:
        target_layer.set_weights(values)


def _short(weight) -> str:
    """``conv/kernel:0`` (tf_keras) and ``kernel`` (Keras 3) → ``kernel``."""
    return str(getattr(weight, "path", None) or weight.name).split("/")[-1].split(":")[0]


def sample_inputs(model, count: int = SAMPLE_IMAGES, seed: int = 0) -> list[np.ndarray]:
    """Seeded inputs that fit ``model``: N(0, 1) floats (unknown sizes become 32), small integers for int inputs."""
    rng = np.random.default_rng(seed)
    samples = []
    for tensor in model.inputs:
        shape = [count] + [32 if d is None else int(d) for d in tuple(tensor.shape)[1:]]
        dtype = np.dtype(str(getattr(tensor.dtype, "name", tensor.dtype)))
        if np.issubdtype(dtype, np.integer):
            samples.append(rng.integers(0, 2, shape).astype(dtype))
        else:
            samples.append(rng.standard_normal(shape).astype(dtype))
    return samples


def allowed(reference: np.ndarray | float) -> float:
    """:data:`TOLERANCE`, scaled by the largest |output| when that exceeds 1.

    Why relative beyond 1: the two APIs run the same maths through different kernels (fused or
    unfused batch norm, …), which round differently: up to 1.2e-6 of a layer's largest value in a
    trained MobileNetV2 (measured), and 3.9e-5 on the logits of a 2-epoch-trained one — float
    rounding, which a fixed 1e-5 would have refused.
    """
    scale = float(np.max(np.abs(reference), initial=0.0)) if not np.isscalar(reference) else float(reference)
    return TOLERANCE * max(1.0, scale)


def max_output_difference(model_a, model_b, inputs: list[np.ndarray]) -> tuple[float, float]:
    """(largest absolute difference between the two models' outputs, largest |output| of ``model_a``)."""
    feed = inputs[0] if len(inputs) == 1 else inputs
    outputs_a, outputs_b = _flat(_predict(model_a, feed)), _flat(_predict(model_b, feed))
    if len(outputs_a) != len(outputs_b):
        raise TranslationError(f"the translated model has {len(outputs_b)} outputs, the original {len(outputs_a)}")
    pairs = [(np.asarray(a, np.float64), np.asarray(b, np.float64)) for a, b in zip(outputs_a, outputs_b)]
    difference = max((float(np.max(np.abs(a - b), initial=0.0)) for a, b in pairs), default=0.0)
    return difference, max((float(np.max(np.abs(a), initial=0.0)) for a, _ in pairs), default=0.0)


def check_same_outputs(source_model, target_model, source: Side, target: Side) -> float:
    """Compare on :func:`sample_inputs`; a difference above :func:`allowed` refuses the translation."""
    difference, scale = max_output_difference(source_model, target_model, sample_inputs(source_model))
    if not difference <= allowed(scale):
        raise TranslationError(f"the {target.label} translation of {source_model.name!r} differs from the "
                               f"{source.label} model by {difference:.3g} on sample inputs (allowed "
                               f"{allowed(scale):.3g}); a layer computes differently in the two APIs")
    return difference


def _predict(model, feed):
    """``model(x)``; ``predict`` for a model trained under a MirroredStrategy, which cannot be called
    eagerly outside its scope (DESIGN.md) — ``predict`` computes the same outputs."""
    try:
        return model(feed, training=False)
    except (TypeError, ValueError):
        return model.predict(feed, verbose=0)


def _flat(outputs) -> list:
    if isinstance(outputs, dict):
        return [outputs[k] for k in sorted(outputs)]
    if isinstance(outputs, (list, tuple)):
        return list(outputs)
    return [outputs]


__all__ = ["TOLERANCE", "allowed", "check_same_outputs", "copy_weights", "max_output_difference", "sample_inputs"]
