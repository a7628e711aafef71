"""Momentum cycling and PyTorch's SGD step, written once for both Keras APIs.

Why without TensorFlow or Keras (as :mod:`tfrewind.schedule_core`): tf_keras'
:class:`~tfrewind.callbacks.MomentumScheduler` and :class:`~tfrewind.optim.PaperSGD` and their
Keras 3 twins in :mod:`tfrewind.keras3` are adapters over this code; nothing is written twice.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np


class MomentumSchedulerCore:
    """Set SGD momentum from ``schedule(step)`` before every batch (1-cycle momentum cycling).

    The callback's logic; an adapter mixes it into its API's ``Callback`` and supplies
    :meth:`set_momentum`, which must reach the traced train step (or raise: never a silent no-op).
    ``schedule`` maps the optimizer's step count to a momentum, e.g. ``OneCycleMomentum``.
    """

    def __init__(self, schedule: Callable[[Any], Any]):
        super().__init__()
        self.schedule = schedule
        self._values: np.ndarray | None = None
        self._first_step = 0

    def set_momentum(self, value: float) -> None:
        raise NotImplementedError

    def on_train_begin(self, logs=None):
        self.set_momentum(self._at(self._iterations()))  # fails early on an unusable optimizer

    def on_epoch_begin(self, epoch, logs=None):
        # One vectorised evaluation per epoch keeps the per-batch cost to a variable assignment.
        self._first_step = self._iterations()
        steps = (self.params or {}).get("steps") or 1
        try:
            values = self.schedule(np.arange(self._first_step, self._first_step + steps, dtype=np.float32))
            self._values = np.asarray(values, dtype=np.float32).reshape(-1)
        except (TypeError, ValueError):  # a plain Python callable of one step
            self._values = None

    def on_train_batch_begin(self, batch, logs=None):
        if self._values is not None and batch < len(self._values):
            self.set_momentum(float(self._values[batch]))
        else:
            self.set_momentum(self._at(self._first_step + batch))

    def _iterations(self) -> int:
        return int(np.asarray(self.model.optimizer.iterations))

    def _at(self, step: int) -> float:
        return float(self.schedule(step))


def paper_sgd_step(gradient, variable, buffer, momentum, weight_decay, nesterov: bool) -> tuple[Any, Any]:
    """PyTorch's SGD: ``b ← m·b + (g + wd·w)``; returns ``(b, d)`` for the update ``w ← w − lr·d``.

    Keras keeps ``v ← m·v − lr·g`` instead (the LR inside the buffer); the two differ whenever the LR
    changes, which every retraining schedule does. Arguments are tensors of the variable's dtype.
    """
    if weight_decay is not None:
        gradient = gradient + weight_decay * variable
    buffer = momentum * buffer + gradient
    return buffer, (gradient + momentum * buffer if nesterov else buffer)
