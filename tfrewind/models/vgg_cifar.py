"""CIFAR VGG-16/19 with batch norm, as in Li et al.'s L1-norm pruning code used by the paper.

Pools use ``padding="same"`` so that small inputs (8×8 digits) still work: a 1×1 map stays 1×1.
"""

from __future__ import annotations

from typing import Sequence

from .._keras import keras
from .layers import PYTORCH_BN, BatchNorm
from .registry import MODELS

L = keras.layers

CONFIGS = {
    16: [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    19: [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"],
}


def vgg_cifar(depth: int, input_shape: Sequence[int], num_classes: int, bn: BatchNorm = PYTORCH_BN) -> keras.Model:
    inputs = keras.Input(shape=tuple(input_shape), name="image")
    x = inputs
    conv_index, pool_index = 0, 0
    for item in CONFIGS[depth]:
        if item == "M":
            pool_index += 1
            x = L.MaxPooling2D(2, padding="same", name=f"pool{pool_index}")(x)
            continue
        conv_index += 1
        x = L.Conv2D(int(item), 3, padding="same", use_bias=False, kernel_initializer="he_normal",
                     name=f"conv{conv_index}")(x)
        x = bn.layer(f"bn{conv_index}")(x)
        x = L.ReLU(name=f"relu{conv_index}")(x)
    x = L.GlobalAveragePooling2D(name="gap")(x)
    x = L.Dense(512, name="fc1")(x)
    x = bn.layer("fc1_bn")(x)
    x = L.ReLU(name="fc1_relu")(x)
    outputs = L.Dense(num_classes, name="fc")(x)
    return keras.Model(inputs, outputs, name=f"vgg{depth}")


for _depth in CONFIGS:
    MODELS.register(f"vgg{_depth}")(lambda shape, n, bn=PYTORCH_BN, d=_depth: vgg_cifar(d, shape, n, bn))
