"""Watch pruned models while they train: per-layer sparsity to TensorBoard, and invariants enforced.

Why enforce and not only log: a pruned weight that silently grows back invalidates the whole
comparison. With fixed masks (one-shot and iterative retraining) the masks must not change and
the number of non-zero weights must never rise; a violation stops training with an error.
"""

from __future__ import annotations

import os

import numpy as np

from ._keras import keras, tf
from .errors import TfrewindError


class SparsityInvariantError(TfrewindError):
    """Pruned weights came back, or fixed masks changed, during retraining."""


class SparsityMonitor(keras.callbacks.Callback):
    """Log each pruned layer's sparsity per epoch; with ``fixed_masks`` check masks never change."""

    def __init__(self, log_dir: str | os.PathLike | None, fixed_masks: bool = True):
        super().__init__()
        self.log_dir = None if log_dir is None else str(log_dir)
        self.fixed_masks = fixed_masks
        self._writer = None
        self._initial: dict[str, np.ndarray] = {}
        self._nonzero: int | None = None

    def on_train_begin(self, logs=None):
        from .pruning import masks

        self._initial = masks(self.model)
        self._nonzero = self._count_nonzero()
        if self.log_dir is not None:
            self._writer = tf.summary.create_file_writer(self.log_dir)
            self._write(0)

    def on_epoch_end(self, epoch, logs=None):
        from .pruning import masks

        current = masks(self.model)
        if self.fixed_masks:
            changed = [name for name, mask in current.items()
                       if name in self._initial and not np.array_equal(mask, self._initial[name])]
            if changed:
                raise SparsityInvariantError(f"masks changed during retraining in layers {changed}")
        nonzero = self._count_nonzero()
        if self._nonzero is not None and nonzero > self._nonzero:
            raise SparsityInvariantError(
                f"non-zero weights rose from {self._nonzero} to {nonzero} at epoch {epoch + 1}")
        self._nonzero = nonzero
        if logs is not None and current:
            total = sum(m.size for m in current.values())
            logs["sparsity"] = 1.0 - sum(float(m.sum()) for m in current.values()) / max(total, 1)
        self._write(epoch + 1)

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def _count_nonzero(self) -> int:
        from .pruning import masks

        return int(sum(int(np.count_nonzero(m)) for m in masks(self.model).values()))

    def _write(self, epoch: int) -> None:
        if self._writer is None:
            return
        from .pruning import masks

        with self._writer.as_default(step=epoch):
            for name, mask in masks(self.model).items():
                tf.summary.scalar(f"sparsity/{name}", 1.0 - float(np.mean(mask)))
        self._writer.flush()
