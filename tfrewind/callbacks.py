"""Keras callbacks that make retraining schedules observable and rewinding possible.

Each works in any user's ``model.fit``; none needs the tfrewind pipeline. Example::

    from tfrewind.callbacks import MomentumScheduler, ScheduleLogger, TensorBoard
    from tfrewind.schedules import OneCycleLR, OneCycleMomentum
    from tfrewind.optim import PaperSGD

    steps = epochs * steps_per_epoch
    model.compile(optimizer=PaperSGD(OneCycleLR(0.1, steps), momentum=0.95), loss=..., metrics=[...])
    model.fit(train, epochs=epochs, callbacks=[
        MomentumScheduler(OneCycleMomentum(steps)),      # 0.95 → 0.85 → 0.95, per step
        ScheduleLogger("logs/schedule"),                   # lr and momentum to TensorBoard
        TensorBoard("logs"),                               # tf_keras' one, minus its late LR curve
    ])
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from ._keras import keras, tf
from .errors import TrainingDivergedError
from .io import read_json, write_json_atomic, write_with_atomic
from .optim import get_momentum, set_momentum
from .sgd_core import MomentumSchedulerCore


def current_lr(optimizer: keras.optimizers.Optimizer) -> float:
    """The LR the optimizer's next step will use (schedules are evaluated at ``iterations``).

    Why not ``optimizer.learning_rate``: with a schedule, tf_keras returns the value cached at
    the *previous* step, which lags by one step (and by one epoch at epoch boundaries).
    """
    lr = getattr(optimizer, "_learning_rate", None)
    if lr is None:
        lr = optimizer.learning_rate
    if isinstance(lr, keras.optimizers.schedules.LearningRateSchedule):
        return float(lr(optimizer.iterations))
    return float(keras.backend.get_value(lr))


class MomentumScheduler(MomentumSchedulerCore, keras.callbacks.Callback):
    """Set SGD momentum from ``schedule(step)`` before every batch (1-cycle momentum cycling).

    ``schedule`` maps the optimizer's step count to a momentum, e.g.
    :class:`tfrewind.schedules.OneCycleMomentum`. The optimizer's momentum must be a variable
    (see :func:`tfrewind.optim.set_momentum`): otherwise this raises instead of doing nothing.
    The logic is :class:`tfrewind.sgd_core.MomentumSchedulerCore`, shared with Keras 3.
    """

    def set_momentum(self, value: float) -> None:
        set_momentum(self.model.optimizer, value)


class ScheduleLogger(keras.callbacks.Callback):
    """Log the learning rate and momentum, per epoch (into ``logs``) and every ``every_n_steps``.

    Per epoch, ``lr`` and ``momentum`` — the values in force at the epoch's *first* step — are
    added to the epoch logs: the History records them, and :class:`TensorBoard` placed *after* this
    one writes them as ``epoch_learning_rate`` and ``epoch_momentum``. Per step they go to their own
    event file in ``log_dir`` as ``step_learning_rate``/``step_momentum`` (a separate writer, so they
    never duplicate the TensorBoard callback's events). Place it after :class:`MomentumScheduler`,
    which sets each step's momentum in its own ``on_train_batch_begin``.
    """

    def __init__(self, log_dir: str | os.PathLike | None = None, every_n_steps: int = 1):
        super().__init__()
        self.log_dir = None if log_dir is None else str(log_dir)
        self.every_n_steps = max(1, int(every_n_steps))
        self._writer = None
        self._epoch_values: tuple[float, float | None] | None = None

    def on_train_begin(self, logs=None):
        if self.log_dir is not None:
            self._writer = tf.summary.create_file_writer(self.log_dir)

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_values = None

    def on_train_batch_begin(self, batch, logs=None):
        optimizer = self.model.optimizer
        if batch == 0:
            # Read at the first batch, not at epoch begin: a momentum schedule sets the first step's
            # momentum only now (at epoch begin the last step's value is still in place).
            self._epoch_values = (current_lr(optimizer), get_momentum(optimizer))
        if self._writer is None or batch % self.every_n_steps:
            return
        step = int(optimizer.iterations.numpy())
        with self._writer.as_default(step=step):
            tf.summary.scalar("step_learning_rate", current_lr(optimizer))
            momentum = get_momentum(optimizer)
            if momentum is not None:
                tf.summary.scalar("step_momentum", momentum)

    def on_epoch_end(self, epoch, logs=None):
        if logs is None or self._epoch_values is None:
            return
        lr, momentum = self._epoch_values  # the values in force at the epoch's first step
        logs["lr"] = lr
        if momentum is not None:
            logs["momentum"] = momentum

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.flush()
            self._writer.close()
            self._writer = None


class TensorBoard(keras.callbacks.TensorBoard):
    """tf_keras' TensorBoard callback with one learning-rate curve, and the right one.

    Why a subclass: when the LR is a schedule, tf_keras adds ``epoch_learning_rate`` by evaluating
    it at the optimizer's step count once the epoch has *ended* — the next epoch's first LR, so its
    curve runs one epoch late (and beside :class:`ScheduleLogger`'s exact one it made two curves that
    disagree). Its hook for that, ``_collect_learning_rate`` (tf_keras 2.x, private), is overridden
    here to write, under the same familiar tag, the LR in force at the epoch's first step:
    :class:`ScheduleLogger`'s ``lr`` when it runs before this callback (kept out of TensorBoard as
    ``epoch_lr``, so the curve is shown once), otherwise the LR read when the epoch began.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._first_step_lr: float | None = None

    def on_epoch_begin(self, epoch, logs=None):
        super().on_epoch_begin(epoch, logs)
        self._first_step_lr = current_lr(self.model.optimizer)

    def _collect_learning_rate(self, logs):
        lr = logs.pop("lr", self._first_step_lr)
        if lr is not None:
            logs["learning_rate"] = lr
        return logs


_CHECKPOINT_NAME = "epoch_{epoch:04d}.weights.h5"
_CHECKPOINT_PATTERN = re.compile(r"epoch_(\d{4,})\.weights\.h5")


def rewind_checkpoint_path(directory: str | os.PathLike, epoch: int) -> Path:
    """Where the weights after ``epoch`` completed epochs live (epoch 0 = initialisation)."""
    return Path(directory) / _CHECKPOINT_NAME.format(epoch=epoch)


def kept_rewind_epochs(directory: str | os.PathLike) -> list[int]:
    """The epochs whose weights ``directory`` keeps, read from the names :func:`rewind_checkpoint_path` writes."""
    found = (_CHECKPOINT_PATTERN.fullmatch(p.name) for p in Path(directory).glob("epoch_*.weights.h5"))
    return sorted(int(match.group(1)) for match in found if match)


def save_weights_atomic(model: keras.Model, path: str | os.PathLike) -> Path:
    """Write weights to a temporary file beside ``path``, then rename it into place."""
    # Same suffix as the target: tf_keras picks the weights format from it (".weights.h5" ≠ ".h5").
    suffix = ".weights.h5" if str(path).endswith(".weights.h5") else Path(path).suffix
    return write_with_atomic(path, model.save_weights, suffix=suffix)


class RewindCheckpointer(keras.callbacks.Callback):
    """Keep the weights of chosen epochs for weight rewinding (Renda et al. 2020).

    Epoch ``e`` means "after ``e`` epochs of training" (0 = the initial weights); epochs are counted
    from the start of the run, so a resumed fit (``initial_epoch > 0``) keeps numbering correctly.
    """

    def __init__(self, directory: str | os.PathLike, epochs: Iterable[int]):
        super().__init__()
        self.directory = Path(directory)
        self.epochs = set(int(e) for e in epochs)

    def on_train_begin(self, logs=None):
        path = rewind_checkpoint_path(self.directory, 0)
        if 0 in self.epochs and not path.exists():
            save_weights_atomic(self.model, path)

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 in self.epochs:
            save_weights_atomic(self.model, rewind_checkpoint_path(self.directory, epoch + 1))


class NonFiniteLossGuard(keras.callbacks.Callback):
    """Abort training at the first NaN/inf loss with a clear :class:`TrainingDivergedError`.

    Unlike ``TerminateOnNaN`` (which lets the epoch end, so checkpoint callbacks save the diverged
    weights) this raises inside the batch: no epoch-end hook runs, and the last good checkpoint
    (``BackupAndRestore``, rewind checkpoints) is what stays on disk.
    """

    def __init__(self, stage: str = "training"):
        super().__init__()
        self.stage = stage
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            raise TrainingDivergedError(
                f"{self.stage}: the loss became {float(loss)} at epoch {self._epoch + 1}, batch {batch + 1}; "
                "lower the learning rate (--lr) or check the data; the last good checkpoint was kept"
            )


class DataEpochSync(keras.callbacks.Callback):
    """Pin the input pipeline's :class:`~tfrewind.data.pipeline.EpochClock` to the epoch being trained.

    Place it *after* ``BackupAndRestore``: its ``on_train_begin`` then sees the restored optimizer
    step, so a resumed run's first epoch gets exactly the order and crops it would have had
    uninterrupted. Keras creates each epoch's iterator after the previous ``on_epoch_end`` (and the
    first one after ``on_train_begin``), so the clock is always set before the data is read.
    """

    def __init__(self, clock, steps_per_epoch: int):
        super().__init__()
        self.clock = clock
        self.steps_per_epoch = max(1, int(steps_per_epoch))

    def on_train_begin(self, logs=None):
        self.clock.pin(int(self.model.optimizer.iterations.numpy()) // self.steps_per_epoch)

    def on_epoch_end(self, epoch, logs=None):
        self.clock.pin(epoch + 1)

    def on_train_end(self, logs=None):
        self.clock.unpin()


class HistoryLog(keras.callbacks.Callback):
    """Per-epoch logs kept in a JSON file, so a resumed stage reports its whole history.

    ``History`` only holds the epochs of the current ``fit``; this keeps every epoch, keyed by
    epoch, and drops entries from the resumed epoch on (they are about to be recomputed). Written
    atomically at each epoch end, before ``BackupAndRestore`` saves (place it before that callback).
    """

    def __init__(self, path: str | os.PathLike):
        super().__init__()
        self.path = Path(path)
        self._epochs: dict[int, dict[str, float]] | None = None

    def on_epoch_begin(self, epoch, logs=None):
        if self._epochs is None:  # the first epoch of this fit: after any restore
            saved = read_json(self.path) if self.path.exists() else {}
            self._epochs = {int(e): v for e, v in saved.get("epochs", {}).items() if int(e) < epoch}

    def on_epoch_end(self, epoch, logs=None):
        if self._epochs is None:
            self._epochs = {}
        self._epochs[int(epoch)] = {k: float(v) for k, v in (logs or {}).items() if np.ndim(v) == 0}
        write_json_atomic(self.path, {"epochs": {str(e): v for e, v in sorted(self._epochs.items())}})

    def history(self) -> dict[str, list[float]]:
        """Key → per-epoch values, in epoch order (the shape of ``History.history``)."""
        epochs = self._epochs
        if epochs is None:
            epochs = {int(e): v for e, v in read_json(self.path).get("epochs", {}).items()} \
                if self.path.exists() else {}
        out: dict[str, list[float]] = {}
        for _, values in sorted(epochs.items()):
            for key, value in values.items():
                out.setdefault(key, []).append(value)
        return out
