"""The paper's schedules as Keras 3 ``LearningRateSchedule`` objects, for any Keras 3 ``model.fit``.

Thin adapters: the mathematics is :mod:`tfrewind.schedule_core`, the same code the tf_keras
schedules (:mod:`tfrewind.schedules`) run; here each shape only meets Keras 3's base class and
``keras.ops`` (so any Keras 3 backend evaluates it). They register under the same names as the
tf_keras ones (``tfrewind>OneCycleLR``, …), so a tfrewind run's recorded original schedule
(``RUN/original/schedule.json``) loads here for LR rewinding. No tf_keras, no tfmot::

    import keras
    from tfrewind.keras3 import MomentumScheduler, OneCycleLR, OneCycleMomentum, PaperSGD

    steps = epochs * steps_per_epoch
    model.compile(optimizer=PaperSGD(OneCycleLR(max_lr=0.1, total_steps=steps), momentum=0.95), loss=...)
    model.fit(x, y, epochs=epochs, callbacks=[MomentumScheduler(OneCycleMomentum(total_steps=steps))])
"""

from __future__ import annotations

from pathlib import Path

from .. import schedule_core as core
from ..schedule_record import read_schedule_record, record_path
from ._api import import_keras3

keras = import_keras3()
Schedule = keras.optimizers.schedules.LearningRateSchedule
_register = keras.saving.register_keras_serializable(package="tfrewind")

OPS = core.Ops(to_float=lambda x: keras.ops.cast(x, "float32"), cos=keras.ops.cos, clip=keras.ops.clip,
               where=keras.ops.where, floor=keras.ops.floor, power=keras.ops.power, ones_like=keras.ops.ones_like,
               serialize=keras.optimizers.schedules.serialize, deserialize=keras.optimizers.schedules.deserialize)
"""``keras.ops`` for the shared shapes."""

ConstantLR, StepDecayLR, CosineLR, OneCycleLR, OneCycleMomentum, OffsetLR, ScaledLRRestart = core.adapters(
    Schedule, keras.optimizers.schedules.CosineDecay, OPS, _register, __name__)
"""The shapes of :mod:`tfrewind.schedule_core` on Keras 3's ``LearningRateSchedule``, named and
registered as the tf_keras ones are."""


def read_original(run_dir_or_record: str | Path) -> core.OriginalSchedule:
    """A tfrewind run's recorded original schedule (``RUN/original/schedule.json``) as Keras 3 objects."""
    path = Path(run_dir_or_record)
    record = read_schedule_record(record_path(path) if path.is_dir() else path)
    schedule = keras.optimizers.schedules.deserialize(record["lr_schedule"])
    return core.OriginalSchedule(schedule, int(record["epochs"]), int(record["steps_per_epoch"]),
                                 float(record["momentum"]))


def retraining_schedule(name: str, original: core.OriginalSchedule, budget_epochs: int, pct_start: float = 0.1,
                        div_factor: float = 100.0, final_div_factor: float = 100.0, base_momentum: float = 0.85,
                        max_momentum: float = 0.95) -> tuple[Schedule, Schedule | None]:
    """``(lr schedule, momentum schedule or None)`` of a retraining schedule of the paper.

    ``original`` describes original training: recorded (:func:`read_original`) or described
    (``OriginalSchedule(StepDecayLR(0.1, [80, 120], 0.1, spe), epochs=160, steps_per_epoch=spe)``).
    ``fine_tune``: its last LR; ``lr_rewind``: its last ``budget_epochs`` epochs replayed;
    ``scaled_lr_restart``: SLR from its last to its peak LR; ``one_cycle``: up to its peak LR, with
    momentum cycled (give the second schedule to :class:`tfrewind.keras3.MomentumScheduler`).
    """
    spe = original.steps_per_epoch
    if name == "fine_tune":
        return ConstantLR(original.final_lr), None
    if name == "lr_rewind":
        return OffsetLR(original.schedule, core.lr_rewind_offset(original.epochs, budget_epochs, spe)), None
    if name == "scaled_lr_restart":
        return ScaledLRRestart.for_budget(budget_epochs, original.final_lr, original.peak_lr, spe), None
    if name == "one_cycle":
        total = budget_epochs * spe
        return (OneCycleLR(original.peak_lr, total, pct_start, div_factor, final_div_factor),
                OneCycleMomentum(total, pct_start, base_momentum, max_momentum))
    raise ValueError(f"retraining schedule {name!r}: choose fine_tune, lr_rewind, scaled_lr_restart or one_cycle")


__all__ = ["ConstantLR", "CosineLR", "OffsetLR", "OneCycleLR", "OneCycleMomentum", "ScaledLRRestart", "StepDecayLR",
           "read_original", "retraining_schedule"]
