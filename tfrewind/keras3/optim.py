"""PyTorch-style SGD for Keras 3, with a momentum a callback can change.

Why not ``keras.optimizers.SGD``: like tf_keras' SGD it keeps momentum as a Python float, read once
when the train step is traced — assigning ``optimizer.momentum = 0.85`` afterwards raises nothing
and changes nothing (checked with Keras 3.15), and it refuses a variable. Here ``momentum`` is a
``keras.Variable`` that :class:`tfrewind.keras3.MomentumScheduler` assigns before each step, and
the update is PyTorch's (the paper's code), computed by the same function as tf_keras'
:class:`tfrewind.optim.PaperSGD` (:func:`tfrewind.sgd_core.paper_sgd_step`).
"""

from __future__ import annotations

from typing import Any

from ..sgd_core import paper_sgd_step
from ._api import import_keras3

keras = import_keras3()
ops = keras.ops


@keras.saving.register_keras_serializable(package="tfrewind")
class PaperSGD(keras.optimizers.Optimizer):
    """PyTorch-style SGD: ``b ← m·b + (g + wd·w)``, ``w ← w − lr·b`` (Nesterov optional).

    ``weight_decay`` is coupled (added to the gradient, on every weight), as in PyTorch; the base
    optimizer's decoupled weight decay is not used.
    """

    def __init__(self, learning_rate=0.1, momentum: float = 0.9, weight_decay: float = 0.0,
                 nesterov: bool = False, name: str = "PaperSGD", **kwargs):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self.momentum = keras.Variable(float(momentum), trainable=False, dtype="float32", name="momentum")
        self.coupled_weight_decay = float(weight_decay or 0.0)
        self.nesterov = bool(nesterov)

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        self.momentums = self.add_optimizer_variables(variables, "momentum")

    def update_step(self, gradient, variable, learning_rate):
        dtype = variable.dtype
        decay = ops.cast(self.coupled_weight_decay, dtype) if self.coupled_weight_decay else None
        buffer = self.momentums[self._get_variable_index(variable)]
        new_buffer, direction = paper_sgd_step(ops.cast(gradient, dtype), variable, buffer,
                                               ops.cast(self.momentum, dtype), decay, self.nesterov)
        self.assign(buffer, new_buffer)
        self.assign_sub(variable, ops.multiply(ops.cast(learning_rate, dtype), direction))

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update({"momentum": float(ops.convert_to_numpy(self.momentum)),
                       "weight_decay": self.coupled_weight_decay, "nesterov": self.nesterov})
        return config


def set_momentum(optimizer, value: float) -> None:
    """Assign a Keras 3 optimizer's momentum variable; refuse a float momentum a traced step would ignore."""
    momentum = getattr(optimizer, "momentum", None)
    if isinstance(momentum, keras.Variable):
        momentum.assign(value)
        return
    raise TypeError(f"{type(optimizer).__name__}.momentum is a plain number, read once when the train step is "
                    "traced, so changing it would do nothing; use tfrewind.keras3.PaperSGD (momentum is a "
                    "keras.Variable)")


__all__ = ["PaperSGD", "set_momentum"]
