"""One training stage: compile with the paper's SGD, fit with logging and checkpoints, evaluate.

Why one function for every stage: original training and every retraining differ only in the
schedule, the epochs and a few callbacks; the rest (resume via ``BackupAndRestore``, TensorBoard,
LR/momentum logging, NaN guard, evaluation, ``metrics.json``) must be identical so that stages
compare fairly and behave the same when interrupted.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from ._keras import keras, tf
from .callbacks import (DataEpochSync, HistoryLog, MomentumScheduler, NonFiniteLossGuard, ScheduleLogger,
                        TensorBoard)
from .choices import ORIGINAL_SCHEDULES, STRATEGIES
from .config import TrainConfig
from .data import DataBundle
from .errors import CheckpointError, TrainingDivergedError
from .io import write_json_atomic
from .optim import PaperSGD
from .schedules import CosineLR, OneCycleLR, OneCycleMomentum, Schedule, StepDecayLR


def set_seed(seed: int, deterministic: bool = False) -> None:
    """Fix Python, NumPy and TensorFlow seeds; make TF ops deterministic or not (per run, not sticky)."""
    keras.utils.set_random_seed(seed)
    if deterministic:
        tf.config.experimental.enable_op_determinism()
    else:  # tf.config exports no "disable": the framework function behind enable_op_determinism
        from tensorflow.python.framework import config as tf_framework_config

        tf_framework_config.disable_op_determinism()


def make_strategy(name: str = "default") -> tf.distribute.Strategy:
    """The tf.distribute strategy registered as ``name`` in :data:`~tfrewind.choices.STRATEGIES`."""
    return STRATEGIES.get(name)()


STRATEGIES.register("default")(tf.distribute.get_strategy)
STRATEGIES.register("mirrored")(tf.distribute.MirroredStrategy)
STRATEGIES.register("multi_worker")(tf.distribute.MultiWorkerMirroredStrategy)


@STRATEGIES.register("tpu")
def _tpu_strategy() -> tf.distribute.Strategy:
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)


@dataclass
class StageSchedule:
    """What drives the optimizer in one stage: an LR schedule and, optionally, a momentum one."""

    lr: Schedule
    momentum: float = 0.9
    momentum_schedule: Schedule | None = None
    epochs: int = 1
    description: dict[str, Any] = field(default_factory=dict)
    """What the stage's ``metrics.json`` records about the schedule (``schedule_details``)."""
    rewind_weights: bool = False
    """Weight rewinding: before this stage, the surviving weights go back to their values after
    epoch T − E of original training (Renda et al. 2020); the pipeline acts on this flag."""


OriginalBuilder = Callable[[TrainConfig, int], StageSchedule]
"""``(config.train, steps_per_epoch) -> StageSchedule``: one entry of :data:`~tfrewind.choices.ORIGINAL_SCHEDULES`."""


def original_schedule(config: TrainConfig, steps_per_epoch: int) -> StageSchedule:
    """The original-training schedule named by ``config.schedule`` (recorded for LR rewinding)."""
    builder: OriginalBuilder = ORIGINAL_SCHEDULES.get(config.schedule)
    return builder(config, steps_per_epoch)


@ORIGINAL_SCHEDULES.register("step")
def _step(config: TrainConfig, steps_per_epoch: int) -> StageSchedule:
    lr = StepDecayLR(config.lr, config.milestone_epochs(), config.gamma, steps_per_epoch)
    return StageSchedule(lr=lr, momentum=config.momentum, epochs=config.epochs)


@ORIGINAL_SCHEDULES.register("cosine")
def _cosine(config: TrainConfig, steps_per_epoch: int) -> StageSchedule:
    lr = CosineLR(config.lr, config.epochs * steps_per_epoch)
    return StageSchedule(lr=lr, momentum=config.momentum, epochs=config.epochs)


@ORIGINAL_SCHEDULES.register("one_cycle")
def _one_cycle(config: TrainConfig, steps_per_epoch: int) -> StageSchedule:
    total = config.epochs * steps_per_epoch
    return StageSchedule(lr=OneCycleLR(config.lr, total), momentum=config.momentum,
                         momentum_schedule=OneCycleMomentum(total), epochs=config.epochs)


def compile_model(model: keras.Model, schedule: StageSchedule, weight_decay: float, jit_compile: bool = False) -> None:
    model.compile(
        optimizer=PaperSGD(schedule.lr, momentum=schedule.momentum, weight_decay=weight_decay),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=_outputs_logits(model)),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
        jit_compile=jit_compile,
    )


def set_precision(mixed: bool) -> None:
    """``mixed_float16`` compute for GPUs; tf_keras wraps the optimizer in a LossScaleOptimizer."""
    keras.mixed_precision.set_global_policy("mixed_float16" if mixed else "float32")


def _outputs_logits(model: keras.Model) -> bool:
    """Our models end in a linear layer; a user model ending in softmax gives probabilities."""
    last = model.layers[-1]
    activation = getattr(last, "activation", None)
    if activation is None and hasattr(last, "layer"):  # a pruning wrapper
        activation = getattr(last.layer, "activation", None)
    return getattr(activation, "__name__", "linear") != "softmax"


BACKUP_DIR = "backup"
HISTORY_FILE = "history.json"
DIVERGED_FILE = "diverged.json"


class EpochTestAccuracy(keras.callbacks.Callback):
    """Add ``test_loss``/``test_accuracy`` to every epoch's logs (history.json, TensorBoard, ``history``).

    Why: the paper's code (NPTM) reports the *best* epoch's test accuracy over retraining; the
    compare report shows it beside the final one, so each epoch's test accuracy must be recorded.
    Costs one pass over the test split per epoch. Place it after the callbacks that re-mask pruned
    weights at the epoch's end and before those that record the logs.
    """

    def __init__(self, test: tf.data.Dataset):
        super().__init__()
        self.test = test

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            results = self.model.evaluate(self.test, verbose=0, return_dict=True)
            logs.update({"test_loss": float(results["loss"]), "test_accuracy": float(results["accuracy"])})


def fit_stage(model: keras.Model, data: DataBundle, schedule: StageSchedule, *, stage: str, stage_dir: Path,
              log_dir: Path, callbacks: Sequence[keras.callbacks.Callback] = (), verbose: int = 1,
              test_each_epoch: bool = False) -> dict[str, Any]:
    """Fit for ``schedule.epochs`` epochs (resuming from ``stage_dir/backup`` if present); return metrics.

    ``test_each_epoch``: record each epoch's test accuracy too (:class:`EpochTestAccuracy`; retraining does).

    Resume: ``BackupAndRestore`` saves model, optimizer (slots, iterations → LR/momentum schedule
    position) and tfmot's pruning step and masks at each epoch end, *after* every other callback
    (re-masking, rewind checkpoints, invariant checks, history) has run on that epoch. The backup
    is kept after ``fit`` (the caller removes it with :func:`finish_stage` once the stage's outputs
    are on disk), so a kill between the last epoch and ``metrics.json`` loses nothing.
    """
    stage_dir.mkdir(parents=True, exist_ok=True)
    check_backup(stage_dir, stage)
    steps_per_epoch = data.steps_per_epoch
    every = max(1, steps_per_epoch // 10)
    history = HistoryLog(stage_dir / HISTORY_FILE)
    all_callbacks: list[keras.callbacks.Callback] = [NonFiniteLossGuard(stage)]
    if schedule.momentum_schedule is not None:
        all_callbacks.append(MomentumScheduler(schedule.momentum_schedule))
    all_callbacks += [
        *callbacks,
        *([EpochTestAccuracy(data.test)] if test_each_epoch else []),
        ScheduleLogger(log_dir / "schedule", every_n_steps=every),
        TensorBoard(str(log_dir), update_freq="epoch", write_graph=False, profile_batch=0),
        history,
        keras.callbacks.BackupAndRestore(str(stage_dir / BACKUP_DIR), delete_checkpoint=False),
    ]
    if data.clock is not None:  # after BackupAndRestore: sees the restored step
        all_callbacks.append(DataEpochSync(data.clock, steps_per_epoch))
    started = time.perf_counter()
    try:
        model.fit(data.train, validation_data=data.validation, epochs=schedule.epochs,
                  callbacks=all_callbacks, verbose=verbose)
    except TrainingDivergedError as exc:
        write_json_atomic(stage_dir / DIVERGED_FILE, {"stage": stage, "error": str(exc)})
        raise
    seconds = time.perf_counter() - started
    metrics = {"stage": stage, "epochs": schedule.epochs, "steps_per_epoch": steps_per_epoch,
               "seconds": round(seconds, 3), "history": history.history()}
    metrics.update(evaluate(model, data))
    return metrics


def has_backup(stage_dir: Path) -> bool:
    """Whether an interrupted ``fit`` of this stage left a backup to resume from."""
    return tf.train.latest_checkpoint(str(stage_dir / BACKUP_DIR / "chief")) is not None


def check_backup(stage_dir: Path, stage: str) -> None:
    """Read every tensor of the stage's backup checkpoint (CRC-checked) before ``fit`` restores it.

    Why up front: a damaged backup would otherwise fail inside ``fit`` (or, for optimizer slots,
    at the first step) with a TensorFlow traceback; this names the file and the way out.
    """
    directory = stage_dir / BACKUP_DIR / "chief"
    if not directory.exists():
        return
    try:
        latest = tf.train.latest_checkpoint(str(directory))
        if latest is None:
            return
        reader = tf.train.load_checkpoint(latest)
        for name in reader.get_variable_to_shape_map():
            reader.get_tensor(name)
    except Exception as exc:  # noqa: BLE001 - any failure means the backup cannot be used
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise CheckpointError(f"{stage}: the backup checkpoint in {str(directory)!r} is unreadable ({reason}); "
                              f"delete {str(stage_dir / BACKUP_DIR)!r} to restart this stage from its first epoch") from None


def finish_stage(stage_dir: Path) -> None:
    """After ``metrics.json``: the stage is complete, its resume backup and divergence note go."""
    shutil.rmtree(stage_dir / BACKUP_DIR, ignore_errors=True)
    (stage_dir / DIVERGED_FILE).unlink(missing_ok=True)


def evaluate(model: keras.Model, data: DataBundle) -> dict[str, float]:
    """Test-split loss and top-1 accuracy (compiled metrics of ``model``)."""
    results = model.evaluate(data.test, verbose=0, return_dict=True)
    return {"test_loss": float(results["loss"]), "test_accuracy": float(results["accuracy"])}
