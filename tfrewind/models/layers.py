"""Serializable custom layers used by the built-in architectures.

Why not a ``Lambda``: Lambda layers store Python bytecode, which ``safe_mode`` loading refuses and
TFLite converters handle poorly; a registered layer reloads safely and converts to a plain PAD.
"""

from __future__ import annotations

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


def _layer_scale():
    """ConvNeXt's ``LayerScale`` (tf_keras defines it but does not register it): a translated Keras 3
    ConvNeXt holds it, and the run's stage files must reload."""
    from tf_keras.src.applications.convnext import LayerScale

    return LayerScale


CUSTOM_OBJECTS = {"ZeroPadChannels": ZeroPadChannels, "tfrewind>ZeroPadChannels": ZeroPadChannels,
                  "LayerScale": _layer_scale()}
