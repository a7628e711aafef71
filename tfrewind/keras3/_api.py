"""``import keras``, insisting on Keras 3 — and importing nothing of tf_keras or tfmot.

Why apart: the Keras 3 schedules, callbacks and optimizer of :mod:`tfrewind.keras3` must work in a
process that never loads tf_keras (importing :mod:`tfrewind._keras` would also set
``TF_USE_LEGACY_KERAS``, turning the user's ``tf.keras`` into tf_keras).
"""

from __future__ import annotations

from types import ModuleType

from ..errors import TranslationError


def import_keras3() -> ModuleType:
    """``import keras``, insisting that it is Keras 3."""
    import keras

    if not str(keras.__version__).startswith("3."):
        raise TranslationError(f"`import keras` gives Keras {keras.__version__}; this needs Keras 3 "
                               "(pip install 'keras>=3')")
    return keras


__all__ = ["import_keras3"]
