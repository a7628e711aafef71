"""The one place that imports TensorFlow and selects the Keras 2 API (``tf_keras``).

Why: tensorflow-model-optimization only understands ``tf_keras`` models; a Keras 3 model handed
to ``prune_low_magnitude`` fails. ``TF_USE_LEGACY_KERAS`` must be set *before* TensorFlow is first
imported for ``tf.keras`` to mean ``tf_keras`` too, so every module of tfrewind imports ``tf`` and
``keras`` from here and never from ``tensorflow`` directly.

Logging is left as TensorFlow sets it (``TF_CPP_MIN_LOG_LEVEL`` and the Python loggers are the
user's); only the ``tfrewind`` command hides TensorFlow's start-up lines (see :mod:`tfrewind._console`).
"""

from __future__ import annotations

import os

from . import _console

os.environ["TF_USE_LEGACY_KERAS"] = "1"


def _import_tfmot():
    import tensorflow_model_optimization as tfmot

    return tfmot


with _console.native_output_hidden() as hiding:
    import tensorflow as tf
    import tf_keras as keras

    tfmot = _import_tfmot()
    if hiding:  # CUDA is probed on the first device query: without a GPU it logs "failed call to cuInit"
        tf.config.list_physical_devices("GPU")

__all__ = ["tf", "keras", "tfmot"]
