"""ImageNet-style architectures from ``tf_keras.applications``, built from scratch (weights=None).

Why no pretrained weights: these machines cannot download, and a pruning study starts from its
own original training anyway. Users with weights can pass ``--model path/to/model.keras``.
"""

from __future__ import annotations

from typing import Sequence

from .._keras import keras
from ..errors import ConfigError
from .registry import MODELS

MIN_SIZE = 32


def _application(factory, name: str, input_shape: Sequence[int], num_classes: int) -> keras.Model:
    height, width = input_shape[0], input_shape[1]
    if height < MIN_SIZE or width < MIN_SIZE:
        raise ConfigError(
            f"model {name} needs images of at least {MIN_SIZE}×{MIN_SIZE}, the data gives "
            f"{height}×{width}; set data.image_size: {MIN_SIZE} (--set data.image_size={MIN_SIZE})"
        )
    return factory(input_shape=tuple(input_shape), weights=None, classes=num_classes,
                   classifier_activation=None)


@MODELS.register("mobilenet_v2")
def mobilenet_v2(input_shape: Sequence[int], num_classes: int) -> keras.Model:
    return _application(keras.applications.MobileNetV2, "mobilenet_v2", input_shape, num_classes)


MOBILE_ALPHA = 0.35
BN_MOMENTUM = 0.9


@MODELS.register("mobilenet_v2_035")
def mobilenet_v2_035(input_shape: Sequence[int], num_classes: int) -> keras.Model:
    """MobileNetV2 at width 0.35 (``alpha``), the smallest Keras ships, with batch-norm momentum 0.9.

    Why this entry: a laptop-sized application model (0.4 M parameters at 10 classes) on which a
    pruning study of the paper's kind runs in minutes. Why the momentum: Keras' MobileNetV2 uses
    0.999, so the test-time statistics trail the weights by ~1,000 steps — longer than a whole
    study on ``digits`` (21 steps an epoch), and stale again after every pruning; 0.9 is
    PyTorch's default (the paper's code).
    """
    model = _application(lambda **kw: keras.applications.MobileNetV2(alpha=MOBILE_ALPHA, **kw),
                         "mobilenet_v2_035", input_shape, num_classes)
    for layer in model.layers:  # read at each call and saved in the config, so set before any training
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = BN_MOMENTUM
    return model


@MODELS.register("resnet50")
def resnet50(input_shape: Sequence[int], num_classes: int) -> keras.Model:
    return _application(keras.applications.ResNet50, "resnet50", input_shape, num_classes)
