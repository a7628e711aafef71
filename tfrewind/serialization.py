"""What a saved tfrewind model may reference, in one place below both models and pruning.

Why a module of its own: loading a model file (``models/files.py``) needs the classes pruning saves
inside pruned models (:class:`FixedMask`, tfmot's wrapper), and pruning needs the loader's object
table to clone models. Defining the saved classes here, where both import them, registers them
whenever a model is loaded — without the loader importing pruning (an import cycle).
"""

from __future__ import annotations

from ._keras import keras, tf, tfmot


@keras.utils.register_keras_serializable(package="tfrewind")
class FixedMask(tfmot.sparsity.keras.PruningSchedule):
    """A tfmot pruning schedule that never prunes: the masks written into the wrappers stay as they are.

    Why: tfmot recomputes masks by per-layer magnitude whenever its schedule says so; masks we
    choose ourselves (global magnitude, random, a one-shot mask computed before training) must
    never be overwritten. ``sparsity`` is informational only (the target the masks were made for);
    tfmot reads it only when the first element of ``__call__`` is true, which never happens.
    ``get_config`` returns ``{"class_name", "config"}`` (what ``PruneLowMagnitude.from_config``
    deserializes), so saved pruned models reload.
    """

    def __init__(self, sparsity: float = 0.0):
        self.sparsity = float(sparsity)

    def __call__(self, step):
        return tf.constant(False), tf.constant(self.sparsity, dtype=tf.float32)

    def get_config(self) -> dict:
        return {
            "class_name": keras.utils.get_registered_name(type(self)),
            "config": {"sparsity": self.sparsity},
        }


def custom_objects() -> dict:
    """Every registered Keras object plus tfmot's ``PruneLowMagnitude`` wrapper (and :class:`FixedMask`)."""
    objects = dict(keras.utils.get_custom_objects())
    objects[keras.utils.get_registered_name(FixedMask)] = FixedMask
    # prune_scope's objects are thread-local: get_custom_objects() does not list them.
    with tfmot.sparsity.keras.prune_scope():
        objects["PruneLowMagnitude"] = keras.utils.get_registered_object("PruneLowMagnitude")
    return objects


__all__ = ["FixedMask", "custom_objects"]
