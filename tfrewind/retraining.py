"""Retraining schedules of the paper, built from the recorded original schedule and a budget.

Definitions (budget E epochs, original training T epochs with schedule lr_orig):

* ``fine_tune`` (FT): constant LR = the last LR of the original schedule.
* ``lr_rewind`` (LRW): keep the pruned weights, replay the last E epochs: lr(e) = lr_orig(T − E + e).
* ``weight_rewind`` (WR): the same LR replay, and the surviving weights are reset to their values
  after epoch T − E of original training (see :func:`rewind_weights`).
* ``scaled_lr_restart`` (SLR): cosine warm-up from the final to the peak original LR over int(0.1·E)
  epochs, then ×0.1 at int(0.45·E) and int(0.675·E) epochs after the warm-up (50 % and 75 % of the 90 %
  left, truncated as in the paper's code, NPTM ``main_finetune.py --use_llr``).
* ``one_cycle`` (CLR): PyTorch's OneCycleLR up to the original peak LR, with momentum cycled.

Why a registry of functions: adding a schedule is adding one entry that maps the original
record, the budget and the retraining config to a :class:`~tfrewind.training.StageSchedule`
(the registry lives in :mod:`tfrewind.choices`, where ``--help`` reads the names without TensorFlow).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np

from ._keras import keras, tf
from .callbacks import kept_rewind_epochs, rewind_checkpoint_path
from .choices import RETRAIN_SCHEDULES
from .config import RetrainConfig, TrainConfig
from .errors import CheckpointError, ConfigError
from .schedule_core import OriginalSchedule, lr_rewind_offset
from .schedule_record import read_schedule_record
from .schedules import ConstantLR, OffsetLR, OneCycleLR, OneCycleMomentum, scaled_lr_restart
from .training import StageSchedule, original_schedule


class OriginalRecord(OriginalSchedule):
    """What retraining needs to know about original training (tf_keras schedules; the shared
    :class:`~tfrewind.schedule_core.OriginalSchedule`, read from a run or described by a config)."""

    @classmethod
    def from_file(cls, path: str | Path) -> "OriginalRecord":
        """The record original training wrote (:mod:`tfrewind.schedule_record`), with its schedule object."""
        record = read_schedule_record(path)
        schedule = keras.optimizers.schedules.deserialize(record["lr_schedule"])
        return cls(schedule, int(record["epochs"]), int(record["steps_per_epoch"]), float(record["momentum"]))

    @classmethod
    def from_config(cls, config: TrainConfig, steps_per_epoch: int) -> "OriginalRecord":
        """For a pretrained model: the original schedule as described by ``config.train``."""
        stage = original_schedule(config, steps_per_epoch)
        return cls(stage.lr, config.epochs, steps_per_epoch, config.momentum)


ScheduleBuilder = Callable[[OriginalRecord, int, RetrainConfig], StageSchedule]


def build_retrain_schedule(name: str, original: OriginalRecord, budget_epochs: int,
                           config: RetrainConfig | None = None) -> StageSchedule:
    """The named retraining schedule for ``budget_epochs`` epochs after ``original``."""
    stage = RETRAIN_SCHEDULES.get(name)(original, int(budget_epochs), config or RetrainConfig())
    stage.epochs = int(budget_epochs)
    if stage.rewind_weights:  # recorded in metrics.json's schedule_details, as it always was
        stage.description["rewind_weights"] = True
    stage.description.setdefault("name", name)
    return stage


@RETRAIN_SCHEDULES.register("fine_tune")
def fine_tune(original: OriginalRecord, budget: int, config: RetrainConfig) -> StageSchedule:
    lr = config.fine_tune_lr if config.fine_tune_lr is not None else original.final_lr
    return StageSchedule(ConstantLR(lr), momentum=original.momentum, description={"lr": lr})


@RETRAIN_SCHEDULES.register("lr_rewind")
def lr_rewind(original: OriginalRecord, budget: int, config: RetrainConfig) -> StageSchedule:
    try:
        offset = lr_rewind_offset(original.epochs, budget, original.steps_per_epoch)
    except ValueError as exc:
        raise ConfigError(f"retrain.budget: {exc}") from None
    return StageSchedule(OffsetLR(original.schedule, offset), momentum=original.momentum,
                         description={"rewind_to_epoch": original.epochs - budget})


@RETRAIN_SCHEDULES.register("weight_rewind")
def weight_rewind(original: OriginalRecord, budget: int, config: RetrainConfig) -> StageSchedule:
    stage = lr_rewind(original, budget, config)
    stage.rewind_weights = True
    return stage


@RETRAIN_SCHEDULES.register("scaled_lr_restart")
def scaled_lr_restart_schedule(original: OriginalRecord, budget: int, config: RetrainConfig) -> StageSchedule:
    schedule = scaled_lr_restart(budget, original.final_lr, original.peak_lr, original.steps_per_epoch)
    return StageSchedule(schedule, momentum=original.momentum,
                         description={"warmup_epochs": schedule.warmup_epochs, "milestones": schedule.milestones})


@RETRAIN_SCHEDULES.register("one_cycle")
def one_cycle(original: OriginalRecord, budget: int, config: RetrainConfig) -> StageSchedule:
    total = budget * original.steps_per_epoch
    lr = OneCycleLR(original.peak_lr, total, config.pct_start, config.div_factor, config.final_div_factor)
    momentum = OneCycleMomentum(total, config.pct_start, config.base_momentum, config.max_momentum)
    return StageSchedule(lr, momentum=config.max_momentum, momentum_schedule=momentum,
                         description={"max_lr": lr.max_lr})


def needs_weight_rewind(stage: StageSchedule) -> bool:
    """Whether the stage starts by rewinding weights (:attr:`StageSchedule.rewind_weights`)."""
    return stage.rewind_weights


# ------------------------------------------------------------------------------ weight rewinding


def rewind_epoch_checkpoint(checkpoint_dir: str | Path, epoch: int) -> Path:
    """The checkpoint of ``epoch``, or a clear error listing the epochs that were kept."""
    path = rewind_checkpoint_path(checkpoint_dir, epoch)
    if not path.exists():
        kept = kept_rewind_epochs(checkpoint_dir)
        raise CheckpointError(
            f"weight rewinding needs the weights after epoch {epoch}, which original training did not keep "
            f"(kept: {kept or 'none'}); set train.checkpoint_epochs to include {epoch}, or pick a budget that "
            "lands on a kept epoch")
    return path


def rewind_weights(pruned: keras.Model, dense_at_epoch: keras.Model,
                   kept_filters: dict[str, Any] | None = None) -> None:
    """Reset ``pruned``'s surviving weights to ``dense_at_epoch``'s, keeping the pruning mask.

    Unstructured (tfmot wrappers): each wrapped layer gets the dense weights and its mask is
    re-applied (``weight_mask_op``), so pruned weights stay exactly zero. Physically smaller
    (filter-pruned) models: pass ``kept_filters`` (layer → kept output-channel indices) so that the
    dense weights are sliced to the smaller shapes by :mod:`tfrewind.pruning`'s surgery.
    """
    if kept_filters:
        from .pruning import rewind_structured  # the surgery knows how to slice

        rewind_structured(pruned, dense_at_epoch, kept_filters)
        return
    # Nested models (a backbone) hold wrapped layers: walk every layer, not just the top level.
    from .pruning.wrappers import all_layers

    dense_layers = {layer.name: layer for layer in all_layers(dense_at_epoch)}
    for layer in all_layers(pruned):
        inner = getattr(layer, "layer", None) if hasattr(layer, "pruning_obj") else None
        source = dense_layers.get((inner or layer).name)
        if source is None or not source.weights:
            continue
        (inner or layer).set_weights(source.get_weights())
        if inner is not None:
            layer.pruning_obj.weight_mask_op()


def schedule_table(stage: StageSchedule, steps_per_epoch: int, per_step: bool = False) -> list[tuple[int, float, float]]:
    """(epoch or step, lr, momentum) rows: at each epoch's first step, or at every step."""
    total = stage.epochs * steps_per_epoch
    points = np.arange(total) if per_step else np.arange(stage.epochs) * steps_per_epoch
    steps = tf.constant(points, tf.float32)
    lrs = stage.lr(steps).numpy() if points.size else np.array([])
    if stage.momentum_schedule is not None:
        momenta = stage.momentum_schedule(steps).numpy()
    else:
        momenta = np.full(points.shape, stage.momentum)
    index = points if per_step else np.arange(stage.epochs)
    return [(int(i), float(lr), float(m)) for i, lr, m in zip(index, lrs, momenta)]
