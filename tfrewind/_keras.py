"""The one place that imports TensorFlow and selects the Keras 2 API (``tf_keras``).

Why: tensorflow-model-optimization only understands ``tf_keras`` models; a Keras 3 model handed
to ``prune_low_magnitude`` fails. ``TF_USE_LEGACY_KERAS`` must be set *before* TensorFlow is first
imported for ``tf.keras`` to mean ``tf_keras`` too, so every module of tfrewind imports ``tf`` and
``keras`` from here and never from ``tensorflow`` directly.
"""

from __future__ import annotations

import os

os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402
import tf_keras as keras  # noqa: E402


def _import_tfmot():
    import tensorflow_model_optimization as tfmot

    return tfmot


tfmot = _import_tfmot()

__all__ = ["tf", "keras", "tfmot"]
