"""CIFAR ResNets (He et al. 2016, §4.2) as used by the paper's code: ResNet-20/32/56/110.

BasicBlocks with widths 16/32/64 and the parameter-free shortcut (stride-2 subsampling by a
1×1 average pool, then zero-padded channels). Layer names are stable (``s2b3_conv1``) because
filter surgery and per-layer reports refer to them.
"""

from __future__ import annotations

from typing import Sequence

from .._keras import keras
from .layers import PYTORCH_BN, BatchNorm, ZeroPadChannels
from .registry import MODELS

L = keras.layers
WIDTHS = (16, 32, 64)


def conv3x3(filters: int, stride: int, name: str) -> keras.layers.Layer:
    return L.Conv2D(filters, 3, strides=stride, padding="same", use_bias=False,
                    kernel_initializer="he_normal", name=name)


def basic_block(x, filters: int, stride: int, name: str, bn: BatchNorm = PYTORCH_BN):
    """conv-bn-relu-conv-bn + shortcut, relu. The first conv can be filter-pruned freely."""
    shortcut = x
    y = conv3x3(filters, stride, f"{name}_conv1")(x)
    y = bn.layer(f"{name}_bn1")(y)
    y = L.ReLU(name=f"{name}_relu1")(y)
    y = conv3x3(filters, 1, f"{name}_conv2")(y)
    y = bn.layer(f"{name}_bn2")(y)
    in_channels = x.shape[-1]
    if stride != 1 or in_channels != filters:
        shortcut = L.AveragePooling2D(pool_size=1, strides=stride, name=f"{name}_shortcut_pool")(shortcut)
        shortcut = ZeroPadChannels(filters - in_channels, name=f"{name}_shortcut_pad")(shortcut)
    y = L.Add(name=f"{name}_add")([y, shortcut])
    return L.ReLU(name=f"{name}_relu2")(y)


def resnet_cifar(depth: int, input_shape: Sequence[int], num_classes: int, bn: BatchNorm = PYTORCH_BN) -> keras.Model:
    if (depth - 2) % 6:
        raise ValueError(f"CIFAR ResNet depth must be 6n+2, got {depth}")
    blocks_per_stage = (depth - 2) // 6
    inputs = keras.Input(shape=tuple(input_shape), name="image")
    x = conv3x3(WIDTHS[0], 1, "conv0")(inputs)
    x = bn.layer("bn0")(x)
    x = L.ReLU(name="relu0")(x)
    for stage, width in enumerate(WIDTHS, start=1):
        for block in range(1, blocks_per_stage + 1):
            stride = 2 if stage > 1 and block == 1 else 1
            x = basic_block(x, width, stride, f"s{stage}b{block}", bn)
    x = L.GlobalAveragePooling2D(name="gap")(x)
    outputs = L.Dense(num_classes, name="fc")(x)
    return keras.Model(inputs, outputs, name=f"resnet{depth}")


for _depth in (20, 32, 56, 110):
    MODELS.register(f"resnet{_depth}")(lambda shape, n, bn=PYTORCH_BN, d=_depth: resnet_cifar(d, shape, n, bn))
