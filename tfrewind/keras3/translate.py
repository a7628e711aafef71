"""Keras 3 in, Keras 3 out: a Keras 3 model as a tf_keras model tfmot can prune, and back.

Why translate instead of loading the config directly: tfmot works only with tf_keras, and the two
APIs write configs differently (dtype policies, ``batch_shape``, the node format). Each direction is
the same three steps — rebuild the architecture (:mod:`.graph`), copy the weights bit for bit
(:mod:`.weights`), and compare both models' outputs on sample inputs (max |Δ| ≤ 1e-5, scaled by
outputs beyond 1) — and nothing is pruned or saved before the comparison passed. Anything without an exact twin (custom classes,
``Lambda``, layers new in Keras 3) is refused in one line naming the layer::

    import keras
    from tfrewind.keras3 import to_tf_keras, to_keras3

    model = keras.applications.MobileNetV2(input_shape=(32, 32, 3), alpha=0.35, weights=None, classes=10)
    legacy = to_tf_keras(model)                                   # tf_keras, checked against `model`
    pruned = tfrewind.prune(legacy, tfrewind.RunConfig().prune, seed=0).model
    back = to_keras3(tfrewind.strip(pruned))                      # Keras 3 again, checked, zeros kept
"""

from __future__ import annotations

import sys

from .._keras import keras as tf_keras
from ..errors import TranslationError
from .graph import rebuild
from .sides import Side, sides
from .weights import check_same_outputs, copy_weights


def is_keras3_model(model) -> bool:
    """Whether ``model`` is a Keras 3 ``keras.Model`` (and not a tf_keras one)."""
    if isinstance(model, tf_keras.Model):
        return False
    keras3 = sys.modules.get("keras")  # a Keras 3 model exists only once its user imported keras
    return keras3 is not None and str(getattr(keras3, "__version__", "")).startswith("3.") \
        and isinstance(model, keras3.Model)


def as_tf_keras(model):
    """A tf_keras model as it is; a Keras 3 model as its verified tf_keras twin (the API's entry points
    take either, so a Keras 3 user hands over ``keras.Model`` objects directly)."""
    if isinstance(model, tf_keras.Model) or not is_keras3_model(model):
        return model
    return to_tf_keras(model)


def to_tf_keras(model, check: bool = True):
    """The tf_keras twin of a Keras 3 model: same layers, names and weights, outputs checked."""
    keras3, legacy = sides()
    if not keras3.is_model(model):
        raise TranslationError(f"expected a Keras 3 keras.Model, got {type(model).__name__}")
    if not model.built:
        raise TranslationError(f"Keras 3 model {model.name!r} is not built (no input shape yet); start it with "
                               "keras.Input(shape) or call it on data first")
    return _translate(model, keras3, legacy, check)


def to_keras3(model, check: bool = True):
    """The Keras 3 twin of a tf_keras model (strip pruning wrappers first), outputs checked."""
    keras3, legacy = sides()
    if not legacy.is_model(model):
        raise TranslationError(f"expected a tf_keras model, got {type(model).__name__}")
    wrapped = [layer.name for layer in model.layers if hasattr(layer, "pruning_obj")]
    if wrapped:
        raise TranslationError(f"layers {wrapped[:3]} still carry tfmot pruning wrappers; strip them first "
                               "(tfrewind.strip)")
    return _translate(model, legacy, keras3, check)


def _translate(model, source: Side, target: Side, check: bool):
    translated = rebuild(model, source, target)
    copy_weights(model, translated, source, target)
    if check:
        check_same_outputs(model, translated, source, target)
    return translated


__all__ = ["as_tf_keras", "is_keras3_model", "to_keras3", "to_tf_keras"]
