"""SGD exactly as PyTorch (and so the paper's code) computes it.

Why not plain ``tf_keras.optimizers.SGD``:

* **Momentum form.** Keras keeps ``v ← m·v − lr·g`` (the LR inside the buffer); PyTorch keeps
  ``b ← m·b + g`` and steps ``w ← w − lr·b``. The two differ whenever the LR changes — which is
  what every retraining schedule does — so LR rewinding and 1-cycle would not match the paper.
* **Weight decay.** PyTorch adds ``wd·w`` to the gradient *before* momentum (coupled), on every
  parameter including batch norm; Keras' ``weight_decay`` is decoupled. We couple it here instead of
  adding L2 losses, so it works for any model, wrapped by tfmot or not.
* **Momentum you can change.** ``momentum`` is a ``tf.Variable``, so a callback can cycle it
  (1-cycle) after the train step is traced; assigning a float to ``SGD.momentum`` silently does
  nothing once traced.
"""

from __future__ import annotations

from typing import Any

from ._keras import keras, tf
from .sgd_core import paper_sgd_step


@keras.utils.register_keras_serializable(package="tfrewind")
class PaperSGD(keras.optimizers.SGD):
    """PyTorch-style SGD: ``b ← m·b + (g + wd·w)``, ``w ← w − lr·b`` (Nesterov optional)."""

    def __init__(self, learning_rate=0.1, momentum: float = 0.9, weight_decay: float = 0.0,
                 nesterov: bool = False, name: str = "PaperSGD", **kwargs):
        kwargs.pop("jit_compile", None)
        # XLA made training ~2.6× slower on CPU here; the update is cheap without it.
        super().__init__(learning_rate=learning_rate, momentum=0.0, nesterov=nesterov,
                         jit_compile=False, name=name, **kwargs)
        self.momentum = tf.Variable(float(momentum), trainable=False, dtype=tf.float32, name="momentum")
        self.coupled_weight_decay = float(weight_decay)

    def update_step(self, gradient, variable):
        if isinstance(gradient, tf.IndexedSlices):
            gradient = tf.convert_to_tensor(gradient)
        dtype = variable.dtype
        decay = tf.cast(self.coupled_weight_decay, dtype) if self.coupled_weight_decay else None
        buffer = self.momentums[self._index_dict[self._var_key(variable)]]
        new_buffer, direction = paper_sgd_step(gradient, variable, buffer, tf.cast(self.momentum, dtype), decay,
                                               self.nesterov)
        buffer.assign(new_buffer)
        variable.assign_sub(tf.cast(self.learning_rate, dtype) * direction)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update({"momentum": float(self.momentum.numpy()), "weight_decay": self.coupled_weight_decay})
        return config


def set_momentum(optimizer: keras.optimizers.Optimizer, value: float) -> None:
    """Change an optimizer's momentum in a way that reaches the traced train step.

    Works for :class:`PaperSGD`, any optimizer built with ``momentum=tf.Variable(...)`` and the
    legacy optimizers; refuses (rather than silently ignoring) a plain float momentum.
    """
    momentum = getattr(optimizer, "momentum", None)
    if isinstance(momentum, tf.Variable):
        momentum.assign(value)
    elif isinstance(optimizer, keras.optimizers.legacy.Optimizer) and "momentum" in optimizer._hyper:
        optimizer._set_hyper("momentum", value)
    else:
        raise TypeError(
            f"{type(optimizer).__name__}.momentum is a plain number, which cannot be changed after the "
            "train step is traced; build the optimizer with momentum=tf.Variable(0.9) or use tfrewind.PaperSGD"
        )


def get_momentum(optimizer: keras.optimizers.Optimizer) -> float | None:
    momentum = getattr(optimizer, "momentum", None)
    if momentum is None and isinstance(optimizer, keras.optimizers.legacy.Optimizer):
        momentum = optimizer._get_hyper("momentum") if "momentum" in optimizer._hyper else None
    if momentum is None:
        return None
    return float(keras.backend.get_value(momentum)) if not isinstance(momentum, (int, float)) else float(momentum)
