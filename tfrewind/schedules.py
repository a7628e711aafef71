"""Learning-rate shapes as ``tf_keras.optimizers.schedules.LearningRateSchedule`` objects.

Why schedules and not callbacks: a schedule is evaluated inside the traced train step from the
optimizer's own ``iterations`` counter, so it is exact per step, survives checkpoint/resume with
the optimizer, is logged by TensorBoard as ``epoch_learning_rate``, and works in any user's
``model.fit`` with no extra callback. All of them count optimizer steps from 0, like PyTorch's
schedulers (step ``i`` uses ``lr(i)``), so curves compare with the paper's code one to one.

The mathematics lives in :mod:`tfrewind.schedule_core`, shared with the Keras 3 schedules of
:mod:`tfrewind.keras3`; each class here only joins a shape to tf_keras' base class and TF ops.

Example, in a plain ``model.fit``::

    from tfrewind.schedules import OneCycleLR
    schedule = OneCycleLR(max_lr=0.1, total_steps=epochs * steps_per_epoch)
    model.compile(optimizer=tf_keras.optimizers.SGD(schedule, momentum=0.9), ...)
"""

from __future__ import annotations

from . import schedule_core as core
from ._keras import keras, tf

Schedule = keras.optimizers.schedules.LearningRateSchedule
_register = keras.utils.register_keras_serializable(package="tfrewind")

OPS = core.Ops(to_float=lambda x: tf.cast(x, tf.float32), cos=tf.cos, clip=tf.clip_by_value, where=tf.where,
               floor=tf.floor, power=tf.pow, ones_like=tf.ones_like,
               serialize=keras.optimizers.schedules.serialize, deserialize=keras.optimizers.schedules.deserialize)
"""TensorFlow's functions for the shared shapes."""

ConstantLR, StepDecayLR, CosineLR, OneCycleLR, OneCycleMomentum, OffsetLR, ScaledLRRestart = core.adapters(
    Schedule, keras.optimizers.schedules.CosineDecay, OPS, _register, __name__)
"""Constant (fine-tuning), step decay (the paper's original), cosine, 1-cycle (pair with
:class:`tfrewind.callbacks.MomentumScheduler` and ``OneCycleMomentum``), offset (LR rewinding) and
SLR: each a shape of :mod:`tfrewind.schedule_core` on tf_keras' ``LearningRateSchedule``."""


def scaled_lr_restart(budget_epochs: int, start_lr: float, peak_lr: float, steps_per_epoch: int) -> ScaledLRRestart:
    """SLR with the paper's proportions (:func:`tfrewind.schedule_core.slr_epochs`)."""
    return ScaledLRRestart.for_budget(budget_epochs, start_lr, peak_lr, steps_per_epoch)

