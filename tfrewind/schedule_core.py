"""The paper's schedules, written once for both Keras APIs (momentum and SGD: :mod:`tfrewind.sgd_core`).

Why a module without TensorFlow or Keras: the same mathematics serves tf_keras
(:mod:`tfrewind.schedules`, :mod:`tfrewind.callbacks`, :mod:`tfrewind.optim`) and Keras 3
(:mod:`tfrewind.keras3`). Each API's adapter is a class that inherits the shape from here and the
API's own base class (``LearningRateSchedule``, ``Callback``) and names its tensor functions
(:class:`Ops`): no formula is written twice, and importing the Keras 3 side never loads tf_keras.

All schedules count optimizer steps from 0, like PyTorch's schedulers (step ``i`` uses ``lr(i)``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np


@dataclass(frozen=True)
class Ops:
    """The tensor functions one Keras API evaluates schedules with (``tf.*`` or ``keras.ops.*``)."""

    to_float: Callable[[Any], Any]
    cos: Callable[[Any], Any]
    clip: Callable[[Any, float, float], Any]
    where: Callable[[Any, Any, Any], Any]
    floor: Callable[[Any], Any]
    power: Callable[[Any, Any], Any]
    ones_like: Callable[[Any], Any]
    serialize: Callable[[Any], dict]
    deserialize: Callable[[dict], Any]


def cosine_anneal(ops: Ops, start: float, end: float, fraction) -> Any:
    """Half a cosine from ``start`` (fraction 0) to ``end`` (fraction 1), as in PyTorch.

    Our own: 1-cycle's two phases and SLR's warm-up anneal *up* and join other pieces, which
    Keras' ``CosineDecay`` (one decay, optionally after a linear warm-up) does not express.
    """
    fraction = ops.clip(ops.to_float(fraction), 0.0, 1.0)
    return end + (start - end) / 2.0 * (ops.cos(math.pi * fraction) + 1.0)


def step_decay_value(ops: Ops, step, initial_lr: float, milestones: Sequence[int], gamma: float,
                     steps_per_epoch: int) -> Any:
    """``initial_lr × gamma^k``, k = the milestone epochs already reached (vectorised over ``step``)."""
    epoch = ops.floor(ops.to_float(step) / float(steps_per_epoch))
    passed = epoch * 0.0
    for milestone in milestones:
        passed += ops.to_float(epoch >= float(milestone))
    return initial_lr * ops.power(gamma, passed)


def one_cycle_value(ops: Ops, step, total_steps: int, pct_start: float, start: float, peak: float,
                    end: float) -> Any:
    """PyTorch ``OneCycleLR`` (cosine, two phases): start → peak by step ``pct·total − 1``, → end at ``total − 1``."""
    step = ops.to_float(step)
    warm_end = float(pct_start * total_steps) - 1.0
    last = float(total_steps) - 1.0
    rising = cosine_anneal(ops, start, peak, step / max(warm_end, 1e-8))
    falling = cosine_anneal(ops, peak, end, (step - warm_end) / max(last - warm_end, 1e-8))
    return ops.where(step <= warm_end, rising, falling)


def slr_epochs(budget_epochs: int) -> tuple[int, list[int]]:
    """SLR's proportions in the paper's code: warm-up int(0.1·E) epochs, then ×0.1 at int(0.45·E) and
    int(0.675·E) epochs after it (50 % and 75 % of the 90 % left, NPTM's ``main_finetune.py``)."""
    warmup = int(0.1 * budget_epochs)
    return warmup, [warmup + int(0.45 * budget_epochs), warmup + int(0.675 * budget_epochs)]


def lr_rewind_offset(original_epochs: int, budget_epochs: int, steps_per_epoch: int) -> int:
    """LR rewinding replays the last E of T original epochs: the schedule starts at step (T − E)·steps."""
    if budget_epochs > original_epochs:
        raise ValueError(f"LR rewinding replays the last E epochs of original training, so the budget "
                         f"({budget_epochs}) cannot exceed the original epochs ({original_epochs})")
    return (original_epochs - budget_epochs) * steps_per_epoch


@dataclass
class OriginalSchedule:
    """What retraining needs to know about original training: its LR schedule, epochs, steps, momentum."""

    schedule: Any
    epochs: int
    steps_per_epoch: int
    momentum: float = 0.9

    @property
    def total_steps(self) -> int:
        return self.epochs * self.steps_per_epoch

    @property
    def final_lr(self) -> float:
        return float(self.schedule(self.total_steps - 1))

    @property
    def peak_lr(self) -> float:
        """The largest LR of the schedule over original training."""
        return float(np.max(np.asarray(self.schedule(np.arange(self.total_steps, dtype=np.float32)))))


# ----------------------------------------------------------------------------- schedule shapes
# Mixins: an adapter is ``class X(XShape, <API>.LearningRateSchedule)`` with ``ops`` set.


class ScheduleShape:
    ops: Ops


class ConstantShape(ScheduleShape):
    """A constant learning rate (fine-tuning)."""

    def __init__(self, lr: float):
        self.lr = float(lr)

    def __call__(self, step):
        return self.ops.ones_like(self.ops.to_float(step)) * self.lr

    def get_config(self) -> dict[str, Any]:
        return {"lr": self.lr}


class StepDecayShape(ScheduleShape):
    """``initial_lr × gamma^k`` where k counts the milestone epochs already reached.

    The paper's original schedule: 0.1, ×0.1 at epochs 80 and 120 of 160. Our own code, not Keras'
    ``PiecewiseConstantDecay``: that one picks its value with ``tf.case``, so it takes one scalar step
    only, while schedule tables, ``peak_lr`` and the plots evaluate a vector of steps.
    """

    def __init__(self, initial_lr: float, milestones: Sequence[int], gamma: float, steps_per_epoch: int):
        self.initial_lr = float(initial_lr)
        self.milestones = [int(m) for m in milestones]
        self.gamma = float(gamma)
        self.steps_per_epoch = int(steps_per_epoch)

    def __call__(self, step):
        return step_decay_value(self.ops, step, self.initial_lr, self.milestones, self.gamma, self.steps_per_epoch)

    def get_config(self) -> dict[str, Any]:
        return {"initial_lr": self.initial_lr, "milestones": self.milestones, "gamma": self.gamma,
                "steps_per_epoch": self.steps_per_epoch}


class CosineShape:
    """Cosine annealing from ``initial_lr`` to ``final_lr`` over ``total_steps``, then ``final_lr``.

    The API's own ``CosineDecay`` with ``alpha = final_lr / initial_lr`` (mix in before it); this
    keeps the name and config (``initial_lr``, ``total_steps``, ``final_lr``) recorded schedules hold.
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


class OneCycleShape(ScheduleShape):
    """1-cycle (Smith & Topin), counted like PyTorch's ``OneCycleLR`` with ``anneal_strategy='cos'``.

    Starts at ``max_lr / div_factor``, rises to ``max_lr`` over ``pct_start`` of the steps, then
    anneals to ``max_lr / div_factor / final_div_factor``. Pair with a ``MomentumScheduler`` and
    ``OneCycleMomentum`` for SGD momentum.
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
        return one_cycle_value(self.ops, step, self.total_steps, self.pct_start, self.initial_lr, self.max_lr,
                               self.final_lr)

    def get_config(self) -> dict[str, Any]:
        return {"max_lr": self.max_lr, "total_steps": self.total_steps, "pct_start": self.pct_start,
                "div_factor": self.div_factor, "final_div_factor": self.final_div_factor}


class OneCycleMomentumShape(ScheduleShape):
    """The momentum half of 1-cycle: ``max_momentum → base_momentum → max_momentum``."""

    def __init__(self, total_steps: int, pct_start: float = 0.1, base_momentum: float = 0.85,
                 max_momentum: float = 0.95):
        self.total_steps = int(total_steps)
        self.pct_start = float(pct_start)
        self.base_momentum = float(base_momentum)
        self.max_momentum = float(max_momentum)

    def __call__(self, step):
        return one_cycle_value(self.ops, step, self.total_steps, self.pct_start, self.max_momentum,
                               self.base_momentum, self.max_momentum)

    def get_config(self) -> dict[str, Any]:
        return {"total_steps": self.total_steps, "pct_start": self.pct_start,
                "base_momentum": self.base_momentum, "max_momentum": self.max_momentum}


class OffsetShape(ScheduleShape):
    """``base(step + offset_steps)``: replays a recorded schedule from a later point.

    Learning-rate rewinding is ``OffsetLR(original, (T − E) · steps_per_epoch)``: the last E epochs
    of the original schedule, whatever its shape (step, cosine, 1-cycle).
    """

    def __init__(self, base, offset_steps: int):
        self.base = self.ops.deserialize(base) if isinstance(base, dict) else base
        self.offset_steps = int(offset_steps)

    def __call__(self, step):
        return self.base(self.ops.to_float(step) + float(self.offset_steps))

    def get_config(self) -> dict[str, Any]:
        return {"base": self.ops.serialize(self.base), "offset_steps": self.offset_steps}


class ScaledLRRestartShape(ScheduleShape):
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

    @classmethod
    def for_budget(cls, budget_epochs: int, start_lr: float, peak_lr: float, steps_per_epoch: int):
        """SLR with the paper's proportions (:func:`slr_epochs`) for a budget of E epochs."""
        warmup, milestones = slr_epochs(budget_epochs)
        return cls(start_lr, peak_lr, warmup, milestones, steps_per_epoch)

    def __call__(self, step):
        step = self.ops.to_float(step)
        warm_steps = float(self.warmup_epochs * self.steps_per_epoch)
        warming = cosine_anneal(self.ops, self.start_lr, self.peak_lr, step / max(warm_steps, 1e-8))
        decayed = step_decay_value(self.ops, step, self.peak_lr, self.milestones, self.gamma, self.steps_per_epoch)
        return self.ops.where(step < warm_steps, warming, decayed)

    def get_config(self) -> dict[str, Any]:
        return {"start_lr": self.start_lr, "peak_lr": self.peak_lr, "warmup_epochs": self.warmup_epochs,
                "milestones": self.milestones, "steps_per_epoch": self.steps_per_epoch, "gamma": self.gamma}



ADAPTED = {"ConstantLR": ConstantShape, "StepDecayLR": StepDecayShape, "CosineLR": CosineShape,
           "OneCycleLR": OneCycleShape, "OneCycleMomentum": OneCycleMomentumShape, "OffsetLR": OffsetShape,
           "ScaledLRRestart": ScaledLRRestartShape}
"""The schedule classes each Keras API gets, by name (the names saved models and records hold)."""


def adapters(base: type, cosine_base: type, ops: Ops, register: Callable[[type], type], module: str) -> list[type]:
    """One API's schedule classes, in :data:`ADAPTED`'s order: each shape joined to ``base`` (its
    ``LearningRateSchedule``; ``CosineLR`` to ``cosine_base``, its ``CosineDecay``) and ``ops``, then
    registered with ``register`` (``tfrewind>Name``) so saved models and records reload."""
    made = []
    for name, shape in ADAPTED.items():
        parent = cosine_base if shape is CosineShape else base
        made.append(register(type(name, (shape, parent), {"ops": ops, "__module__": module, "__doc__": shape.__doc__})))
    return made
