"""Momentum cycling for Keras 3's ``model.fit``: the shared logic on Keras 3's ``Callback``.

The logic (one vectorised schedule evaluation per epoch, one assignment per batch) is
:class:`tfrewind.sgd_core.MomentumSchedulerCore`, the same as tf_keras'
:class:`tfrewind.callbacks.MomentumScheduler`.
"""

from __future__ import annotations

from ..sgd_core import MomentumSchedulerCore
from ._api import import_keras3
from .optim import set_momentum

keras = import_keras3()


class MomentumScheduler(MomentumSchedulerCore, keras.callbacks.Callback):
    """Set the optimizer's momentum from ``schedule(step)`` before every batch (e.g. ``OneCycleMomentum``).

    Needs an optimizer whose momentum is a variable (:class:`tfrewind.keras3.PaperSGD`): with Keras
    3's ``SGD`` it raises at the start of training instead of silently doing nothing.
    """

    def set_momentum(self, value: float) -> None:
        set_momentum(self.model.optimizer, value)


__all__ = ["MomentumScheduler"]
