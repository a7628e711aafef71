"""Serializable custom layers and the batch-norm settings used by the built-in architectures.

Why not a ``Lambda``: Lambda layers store Python bytecode, which ``safe_mode`` loading refuses and
TFLite converters handle poorly; a registered layer reloads safely and converts to a plain PAD.
"""

from __future__ import annotations

from dataclasses import dataclass

from .._keras import keras, tf


@keras.utils.register_keras_serializable(package="tfrewind")
class ZeroPadChannels(keras.layers.Layer):
    """Append ``extra`` all-zero channels (the parameter-free "option A" ResNet shortcut)."""

    def __init__(self, extra: int, **kwargs):
        super().__init__(**kwargs)
        self.extra = int(extra)

    def call(self, inputs):
        return tf.pad(inputs, [[0, 0], [0, 0], [0, 0], [0, self.extra]])

    def compute_output_shape(self, input_shape):
        shape = tf.TensorShape(input_shape).as_list()
        return tf.TensorShape(shape[:-1] + [shape[-1] + self.extra])

    def get_config(self):
        return {**super().get_config(), "extra": self.extra}


@dataclass(frozen=True)
class BatchNorm:
    """Batch-norm settings of the built-in models; the default is PyTorch's ``BatchNorm2d``, as in the paper's code.

    Why not tf_keras' defaults (momentum 0.99, epsilon 1e-3): with 0.99 the moving statistics trail
    the weights by ~100 steps, so after pruning (which changes every activation statistic) a short
    retraining is evaluated with stale statistics. Keras' ``momentum`` is PyTorch's ``1 − momentum``:
    both update ``moving = momentum·moving + (1 − momentum)·batch`` with Keras' value.

    What matches PyTorch exactly (``tests/test_models.py`` checks it against PyTorch's formula): the
    normalisation (biased batch variance, epsilon inside the square root) and, for convolutions (4-D
    inputs, tf_keras' fused kernel), the moving variance, updated with the *unbiased* batch variance.
    What does not: a BN on 2-D inputs (only VGG's ``fc1_bn``) runs tf_keras' non-fused path, which
    updates the moving variance with the *biased* one, (n − 1)/n of PyTorch's ``BatchNorm1d``'s for n
    examples per batch (−1.6 % at batch 64; ~0.8 % on the standard deviation); measured in
    ``docs/benchmarks.md`` to change no prediction, so it is documented rather than patched (a BN
    subclass would break tfmot, whose wrappers accept only the exact built-in layer classes).
    """

    momentum: float = 0.9
    epsilon: float = 1e-5

    def layer(self, name: str) -> keras.layers.BatchNormalization:
        return keras.layers.BatchNormalization(momentum=self.momentum, epsilon=self.epsilon, name=name)


PYTORCH_BN = BatchNorm()
"""PyTorch's defaults (momentum 0.1 in its convention): the default of every built-in model."""


CUSTOM_OBJECTS = {"ZeroPadChannels": ZeroPadChannels, "tfrewind>ZeroPadChannels": ZeroPadChannels}
"""Our own layers; ``models.files.custom_objects`` adds the applications' unregistered ones (ConvNeXt's
``LayerScale``, also in every translated Keras 3 ConvNeXt)."""
