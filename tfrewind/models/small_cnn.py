"""A small conv net for ``digits`` (8×8 grey images): fast enough to run the whole study on a laptop."""

from __future__ import annotations

from typing import Sequence

from .._keras import keras
from .layers import PYTORCH_BN, BatchNorm
from .registry import MODELS

L = keras.layers


@MODELS.register("small_cnn")
def small_cnn(input_shape: Sequence[int], num_classes: int, bn: BatchNorm = PYTORCH_BN) -> keras.Model:
    inputs = keras.Input(shape=tuple(input_shape), name="image")
    x = inputs
    for index, (filters, pool) in enumerate([(32, False), (32, True), (64, False), (64, False)], start=1):
        x = L.Conv2D(filters, 3, padding="same", use_bias=False, kernel_initializer="he_normal",
                     name=f"conv{index}")(x)
        x = bn.layer(f"bn{index}")(x)
        x = L.ReLU(name=f"relu{index}")(x)
        if pool:
            x = L.MaxPooling2D(2, padding="same", name=f"pool{index}")(x)
    x = L.GlobalAveragePooling2D(name="gap")(x)
    outputs = L.Dense(num_classes, name="fc")(x)
    return keras.Model(inputs, outputs, name="small_cnn")
