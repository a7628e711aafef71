"""The two Keras APIs a translation goes between: Keras 3 (``import keras``) and tf_keras.

Why both in one process: ``TF_USE_LEGACY_KERAS=1`` (set by :mod:`tfrewind._keras`) makes
``tf.keras`` mean tf_keras, while ``import keras`` stays Keras 3 (checked with Keras 3.15 and
tf_keras 2.21); a Keras 3 model's weights set into the same tf_keras architecture give identical
outputs, so a model can cross over and back exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType

from .._keras import keras as tf_keras
from ._api import import_keras3


@dataclass(frozen=True)
class Side:
    """One Keras API: its name in messages and its module (``layers``, ``initializers``, …)."""

    label: str
    api: ModuleType

    def is_model(self, obj) -> bool:
        return isinstance(obj, self.api.Model)

    def is_sequential(self, obj) -> bool:
        return isinstance(obj, self.api.Sequential)


def sides() -> tuple[Side, Side]:
    """(Keras 3, tf_keras)."""
    return Side("Keras 3", import_keras3()), Side("tf_keras", tf_keras)


__all__ = ["Side", "import_keras3", "sides"]
