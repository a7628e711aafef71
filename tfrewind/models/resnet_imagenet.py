"""ImageNet ResNet-18/34 (He et al. 2016) in torchvision's layout, as pruned by the paper's ImageNet code.

Why our own and not ``tf_keras.applications``: Keras ships no ResNet-18/34, and the paper prunes
torchvision's ``resnet34`` (NPTM ``norm-pruning/imagenet/l1-norm-pruning/res34prune.py``). This is that
network: a 7×7/2 stem and a 3×3/2 max pool, BasicBlocks of widths 64/128/256/512 (2-2-2-2 or
3-4-6-3 blocks), projection shortcuts (1×1/2 conv + BN, "option B") where the shape changes, global
average pooling and a linear classifier. Parameters equal torchvision's (ResNet-18 11,689,512,
ResNet-34 21,797,672 with 1000 classes, batch-norm statistics not counted).

Layer names are torchvision's parameter names with ``.`` → ``_`` (``layer2_0_conv1``,
``layer2_0_downsample_0``, ``fc``): the presets of :mod:`tfrewind.pruning.presets` address the first
conv of each block, and torchvision weights map onto the layers by name. Stride-2 layers pad
explicitly, symmetrically, as PyTorch does (Keras' ``same`` pads right/bottom only, which shifts the
sampling grid). Batch norm uses PyTorch's defaults (momentum 0.1, i.e. Keras 0.9; epsilon 1e-5).
"""

from __future__ import annotations

from typing import Sequence

from .._keras import keras
from ..errors import ConfigError
from .registry import MODELS

L = keras.layers
WIDTHS = (64, 128, 256, 512)
BLOCKS = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3)}
MIN_SIZE = 32
BN_MOMENTUM = 0.9  # PyTorch's BatchNorm2d momentum 0.1 in Keras' convention
BN_EPSILON = 1e-5


def _conv(filters: int, size: int, stride: int, name: str) -> keras.layers.Layer:
    """``valid`` after an explicit pad when strided, ``same`` otherwise (symmetric for odd kernels)."""
    return L.Conv2D(filters, size, strides=stride, padding="valid" if stride > 1 else "same", use_bias=False,
                    kernel_initializer=keras.initializers.VarianceScaling(2.0, "fan_out", "untruncated_normal"),
                    name=name)


def _bn(name: str) -> keras.layers.Layer:
    return L.BatchNormalization(momentum=BN_MOMENTUM, epsilon=BN_EPSILON, name=name)


def _strided(x, filters: int, size: int, stride: int, name: str):
    if stride > 1:
        x = L.ZeroPadding2D(size // 2, name=f"{name}_pad")(x)
    return _conv(filters, size, stride, name)(x)


def basic_block(x, filters: int, stride: int, name: str):
    """conv-bn-relu-conv-bn + shortcut, relu; the first conv's filters can be removed freely."""
    y = _strided(x, filters, 3, stride, f"{name}_conv1")
    y = L.ReLU(name=f"{name}_relu1")(_bn(f"{name}_bn1")(y))
    y = _bn(f"{name}_bn2")(_conv(filters, 3, 1, f"{name}_conv2")(y))
    shortcut = x
    if stride != 1 or x.shape[-1] != filters:
        shortcut = _bn(f"{name}_downsample_1")(_conv(filters, 1, stride, f"{name}_downsample_0")(x))
    y = L.Add(name=f"{name}_add")([y, shortcut])
    return L.ReLU(name=f"{name}_relu2")(y)


def resnet_imagenet(depth: int, input_shape: Sequence[int], num_classes: int) -> keras.Model:
    if min(input_shape[0], input_shape[1]) < MIN_SIZE:
        raise ConfigError(f"model resnet{depth} needs images of at least {MIN_SIZE}×{MIN_SIZE} (it downsamples "
                          f"32×), the data gives {input_shape[0]}×{input_shape[1]}; set data.image_size")
    inputs = keras.Input(shape=tuple(input_shape), name="image")
    x = _strided(inputs, WIDTHS[0], 7, 2, "conv1")
    x = L.ReLU(name="relu")(_bn("bn1")(x))
    x = L.ZeroPadding2D(1, name="maxpool_pad")(x)  # after a ReLU, zero padding is PyTorch's −∞ padding
    x = L.MaxPooling2D(3, strides=2, name="maxpool")(x)
    for stage, (width, blocks) in enumerate(zip(WIDTHS, BLOCKS[depth]), start=1):
        for block in range(blocks):
            stride = 2 if stage > 1 and block == 0 else 1
            x = basic_block(x, width, stride, f"layer{stage}_{block}")
    x = L.GlobalAveragePooling2D(name="avgpool")(x)
    outputs = L.Dense(num_classes, name="fc")(x)
    return keras.Model(inputs, outputs, name=f"resnet{depth}")


for _depth in BLOCKS:
    MODELS.register(f"resnet{_depth}")(lambda shape, n, d=_depth: resnet_imagenet(d, shape, n))
