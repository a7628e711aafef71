"""Model registry: name → builder ``(input_shape, num_classes) -> tf_keras.Model``.

Why: input shape and class count come from the dataset, so a builder is a function of both;
adding an architecture is adding one ``@MODELS.register("name")`` entry.
"""

from __future__ import annotations

from typing import Callable, Sequence

from .._keras import keras
from ..registry import Registry

ModelBuilder = Callable[[Sequence[int], int], keras.Model]

MODELS: Registry[ModelBuilder] = Registry("model")
