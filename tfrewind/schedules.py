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


@_register
class ConstantLR(core.ConstantShape, Schedule):
    """A constant learning rate (fine-tuning)."""

    ops = OPS


@_register
class StepDecayLR(core.StepDecayShape, Schedule):
    """``initial_lr × gamma^k`` where k counts the milestone epochs already reached (see the shape)."""

    ops = OPS


@_register
class CosineLR(core.CosineShape, keras.optimizers.schedules.CosineDecay):
    """Cosine annealing from ``initial_lr`` to ``final_lr`` over ``total_steps``: tf_keras' ``CosineDecay``."""


@_register
class OneCycleLR(core.OneCycleShape, Schedule):
    """1-cycle, counted like PyTorch's ``OneCycleLR`` (cos). Pair with
    :class:`tfrewind.callbacks.MomentumScheduler` and :class:`OneCycleMomentum` for SGD momentum."""

    ops = OPS


@_register
class OneCycleMomentum(core.OneCycleMomentumShape, Schedule):
    """The momentum half of 1-cycle: ``max_momentum → base_momentum → max_momentum``."""

    ops = OPS


@_register
class OffsetLR(core.OffsetShape, Schedule):
    """``base(step + offset_steps)``: learning-rate rewinding replays a recorded schedule from a later point."""

    ops = OPS


@_register
class ScaledLRRestart(core.ScaledLRRestartShape, Schedule):
    """Scaled learning-rate restarting (SLR, Le & Hua 2021): cosine warm-up, then step decay."""

    ops = OPS


def scaled_lr_restart(budget_epochs: int, start_lr: float, peak_lr: float, steps_per_epoch: int) -> ScaledLRRestart:
    """SLR with the paper's proportions (:func:`tfrewind.schedule_core.slr_epochs`)."""
    return ScaledLRRestart.for_budget(budget_epochs, start_lr, peak_lr, steps_per_epoch)

