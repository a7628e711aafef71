"""Model registry: name → builder ``(input_shape, num_classes) -> tf_keras.Model``.

Why: input shape and class count come from the dataset, so a builder is a function of both;
adding an architecture is adding one ``@MODELS.register("name")`` entry. A builder that also takes
``bn`` (a :class:`~tfrewind.models.layers.BatchNorm`, defaulting to PyTorch's) builds its batch
norm from ``model.bn_momentum``/``model.bn_epsilon``: the paper's models do.
"""

from __future__ import annotations

from typing import Callable

from .._keras import keras
from ..registry import Registry

ModelBuilder = Callable[..., keras.Model]
"""``(input_shape, num_classes[, bn]) -> model``."""

MODELS: Registry[ModelBuilder] = Registry("model")
