"""Learning-rate shapes as ``tf_keras.optimizers.schedules.LearningRateSchedule`` objects.

Why schedules and not callbacks: a schedule is evaluated inside the traced train step from the
optimizer's own ``iterations`` counter, so it is exact per step, survives checkpoint/resume with
the optimizer, is logged by TensorBoard as ``epoch_learning_rate``, and works in any user's
``model.fit`` with no extra callback. All of them count optimizer steps from 0, like PyTorch's
schedulers (step ``i`` uses ``lr(i)``), so curves compare with the paper's code one to one.

Example, in a plain ``model.fit``::

    from tfrewind.schedules import OneCycleLR
    schedule = OneCycleLR(max_lr=0.1, total_steps=epochs * steps_per_epoch)
    model.compile(optimizer=tf_keras.optimizers.SGD(schedule, momentum=0.9), ...)
"""

from __future__ import annotations

import math
from typing import Any, Sequence

from ._keras import keras, tf

Schedule = keras.optimizers.schedules.LearningRateSchedule
_register = keras.utils.register_keras_serializable(package="tfrewind")


def _as_float(step) -> tf.Tensor:
    return tf.cast(step, tf.float32)


def cosine_anneal(start: float, end: float, fraction) -> tf.Tensor:
    """Half a cosine from ``start`` (fraction 0) to ``end`` (fraction 1), as in PyTorch.

    Our own: 1-cycle's two phases and SLR's warm-up anneal *up* and join other pieces, which
    tf_keras' ``CosineDecay`` (one decay, optionally after a linear warm-up) does not express.
    """
    fraction = tf.clip_by_value(_as_float(fraction), 0.0, 1.0)
    return end + (start - end) / 2.0 * (tf.cos(math.pi * fraction) + 1.0)


@_register
class ConstantLR(Schedule):
    """A constant learning rate (fine-tuning)."""

    def __init__(self, lr: float):
        self.lr = float(lr)

    def __call__(self, step):
        return tf.ones_like(_as_float(step)) * self.lr

    def get_config(self) -> dict[str, Any]:
        return {"lr": self.lr}


@_register
class StepDecayLR(Schedule):
    """``initial_lr × gamma^k`` where k counts the milestone epochs already reached.

    The paper's original schedule: 0.1, ×0.1 at epochs 80 and 120 of 160. Our own code, not
    tf_keras' ``PiecewiseConstantDecay``: that one picks its value with ``tf.case``, so it takes one
    scalar step only, while schedule tables, ``peak_lr`` and the plots evaluate a vector of steps.
    """

    def __init__(self, initial_lr: float, milestones: Sequence[int], gamma: float, steps_per_epoch: int):
        self.initial_lr = float(initial_lr)
        self.milestones = [int(m) for m in milestones]
        self.gamma = float(gamma)
        self.steps_per_epoch = int(steps_per_epoch)

    def __call__(self, step):
        epoch = tf.floor(_as_float(step) / float(self.steps_per_epoch))
        passed = tf.zeros([], tf.float32)
        for milestone in self.milestones:
            passed += tf.cast(epoch >= float(milestone), tf.float32)
        return self.initial_lr * tf.pow(self.gamma, passed)

    def get_config(self) -> dict[str, Any]:
        return {"initial_lr": self.initial_lr, "milestones": self.milestones, "gamma": self.gamma,
                "steps_per_epoch": self.steps_per_epoch}


@_register
class CosineLR(keras.optimizers.schedules.CosineDecay):
    """Cosine annealing from ``initial_lr`` to ``final_lr`` over ``total_steps``, then ``final_lr``.

    tf_keras' ``CosineDecay`` with ``alpha = final_lr / initial_lr``; this subclass only keeps the
    name and config (``initial_lr``, ``total_steps``, ``final_lr``) that recorded schedules and
    saved optimizers already hold, so runs saved before and after load alike.
    """

    def __init__(self, initial_lr: float, total_steps: int, final_lr: float = 0.0):
        if initial_lr == 0 and final_lr != 0:
            raise ValueError("CosineLR: initial_lr must be non-zero (final_lr is kept as a multiple of it)")
        self.initial_lr = float(initial_lr)
        self.total_steps = int(total_steps)
        self.final_lr = float(final_lr)
        alpha = self.final_lr / self.initial_lr if initial_lr else 0.0
        super().__init__(self.initial_lr, self.total_steps, alpha=alpha)

    def get_config(self) -> dict[str, Any]:
        return {"initial_lr": self.initial_lr, "total_steps": self.total_steps, "final_lr": self.final_lr}


def one_cycle_value(step, total_steps: int, pct_start: float, start: float, peak: float, end: float) -> tf.Tensor:
    """PyTorch ``OneCycleLR`` (cosine, two phases): start → peak by step ``pct·total − 1``, → end at ``total − 1``."""
    step = _as_float(step)
    warm_end = float(pct_start * total_steps) - 1.0
    last = float(total_steps) - 1.0
    rising = cosine_anneal(start, peak, step / max(warm_end, 1e-8))
    falling = cosine_anneal(peak, end, (step - warm_end) / max(last - warm_end, 1e-8))
    return tf.where(step <= warm_end, rising, falling)


@_register
class OneCycleLR(Schedule):
    """1-cycle (Smith & Topin), counted like PyTorch's ``OneCycleLR`` with ``anneal_strategy='cos'``.

    Starts at ``max_lr / div_factor``, rises to ``max_lr`` over ``pct_start`` of the steps, then
    anneals to ``max_lr / div_factor / final_div_factor``. Pair with
    :class:`tfrewind.callbacks.MomentumScheduler` and :class:`OneCycleMomentum` for SGD momentum.
    """

    def __init__(self, max_lr: float, total_steps: int, pct_start: float = 0.1,
                 div_factor: float = 100.0, final_div_factor: float = 100.0):
        self.max_lr = float(max_lr)
        self.total_steps = int(total_steps)
        self.pct_start = float(pct_start)
        self.div_factor = float(div_factor)
        self.final_div_factor = float(final_div_factor)

    @property
    def initial_lr(self) -> float:
        return self.max_lr / self.div_factor

    @property
    def final_lr(self) -> float:
        return self.initial_lr / self.final_div_factor

    def __call__(self, step):
        return one_cycle_value(step, self.total_steps, self.pct_start, self.initial_lr, self.max_lr, self.final_lr)

    def get_config(self) -> dict[str, Any]:
        return {"max_lr": self.max_lr, "total_steps": self.total_steps, "pct_start": self.pct_start,
                "div_factor": self.div_factor, "final_div_factor": self.final_div_factor}


@_register
class OneCycleMomentum(Schedule):
    """The momentum half of 1-cycle: ``max_momentum → base_momentum → max_momentum``."""

    def __init__(self, total_steps: int, pct_start: float = 0.1, base_momentum: float = 0.85,
                 max_momentum: float = 0.95):
        self.total_steps = int(total_steps)
        self.pct_start = float(pct_start)
        self.base_momentum = float(base_momentum)
        self.max_momentum = float(max_momentum)

    def __call__(self, step):
        return one_cycle_value(step, self.total_steps, self.pct_start, self.max_momentum,
                               self.base_momentum, self.max_momentum)

    def get_config(self) -> dict[str, Any]:
        return {"total_steps": self.total_steps, "pct_start": self.pct_start,
                "base_momentum": self.base_momentum, "max_momentum": self.max_momentum}


@_register
class OffsetLR(Schedule):
    """``base(step + offset_steps)``: replays a recorded schedule from a later point.

    Learning-rate rewinding is ``OffsetLR(original, (T − E) · steps_per_epoch)``: the last E epochs
    of the original schedule, whatever its shape (step, cosine, 1-cycle).
    """

    def __init__(self, base: Schedule | dict, offset_steps: int):
        self.base = base if isinstance(base, Schedule) else keras.optimizers.schedules.deserialize(base)
        self.offset_steps = int(offset_steps)

    def __call__(self, step):
        return self.base(_as_float(step) + float(self.offset_steps))

    def get_config(self) -> dict[str, Any]:
        return {"base": keras.optimizers.schedules.serialize(self.base), "offset_steps": self.offset_steps}


@_register
class ScaledLRRestart(Schedule):
    """Scaled learning-rate restarting (SLR, Le & Hua 2021).

    Warm up (cosine) from ``start_lr`` (the final original LR) to ``peak_lr`` (the original peak)
    over ``warmup_epochs``, then ×``gamma`` at each epoch of ``milestones``.
    """

    def __init__(self, start_lr: float, peak_lr: float, warmup_epochs: int, milestones: Sequence[int],
                 steps_per_epoch: int, gamma: float = 0.1):
        self.start_lr = float(start_lr)
        self.peak_lr = float(peak_lr)
        self.warmup_epochs = int(warmup_epochs)
        self.milestones = [int(m) for m in milestones]
        self.steps_per_epoch = int(steps_per_epoch)
        self.gamma = float(gamma)

    def __call__(self, step):
        step = _as_float(step)
        warm_steps = float(self.warmup_epochs * self.steps_per_epoch)
        warming = cosine_anneal(self.start_lr, self.peak_lr, step / max(warm_steps, 1e-8))
        decayed = StepDecayLR(self.peak_lr, self.milestones, self.gamma, self.steps_per_epoch)(step)
        return tf.where(step < warm_steps, warming, decayed)

    def get_config(self) -> dict[str, Any]:
        return {"start_lr": self.start_lr, "peak_lr": self.peak_lr, "warmup_epochs": self.warmup_epochs,
                "milestones": self.milestones, "steps_per_epoch": self.steps_per_epoch, "gamma": self.gamma}


def scaled_lr_restart(budget_epochs: int, start_lr: float, peak_lr: float, steps_per_epoch: int) -> ScaledLRRestart:
    """SLR with the paper's proportions: warm-up int(0.1·E) epochs, then ×0.1 at int(0.45·E) and
    int(0.675·E) epochs after it (50 % and 75 % of the 90 % left, as NPTM's ``main_finetune.py`` does)."""
    warmup = int(0.1 * budget_epochs)
    milestones = [warmup + int(0.45 * budget_epochs), warmup + int(0.675 * budget_epochs)]
    return ScaledLRRestart(start_lr, peak_lr, warmup, milestones, steps_per_epoch)


def peak_lr(schedule: Schedule, total_steps: int) -> float:
    """The largest LR a schedule reaches in its first ``total_steps`` steps."""
    values = schedule(tf.range(total_steps, dtype=tf.float32))
    return float(tf.reduce_max(values))
