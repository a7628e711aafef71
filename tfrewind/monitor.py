"""Watch pruned models: per-layer sparsity to TensorBoard (after pruning, and per epoch while they
train), and invariants enforced.

Why enforce and not only log: a pruned weight that silently grows back invalidates the whole
comparison. With fixed masks (one-shot and iterative retraining) the masks must not change and
the number of non-zero weights must never rise; a violation stops training with an error.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ._keras import keras, tf
from .errors import TfrewindError


class SparsityInvariantError(TfrewindError):
    """Pruned weights came back, or fixed masks changed, during retraining."""


class SparsityMonitor(keras.callbacks.Callback):
    """Log each pruned layer's sparsity per epoch and enforce that pruned weights stay pruned.

    At every epoch end (before ``BackupAndRestore`` saves, so a violation never reaches a
    checkpoint) it checks, per wrapped layer:

    * a pruned position never comes back: no mask entry goes from 0 to 1 (with ``fixed_masks``
      the masks must not change at all — one-shot and iterative retraining);
    * the count of non-zero weights never rises.

    Weights are counted as the model computes with them, ``kernel × mask``: between an optimizer
    step and the next forward pass tfmot's raw kernel holds non-zero values at pruned positions
    (re-masked before use and by ``UpdatePruningStep`` at epoch end), so counting the raw kernel
    would report regrowth that never reaches the model, depending on callback order.
    The baseline is taken at the first epoch of each ``fit`` — after ``BackupAndRestore`` restored.
    """

    def __init__(self, log_dir: str | os.PathLike | None, fixed_masks: bool = True):
        super().__init__()
        self.log_dir = None if log_dir is None else str(log_dir)
        self.fixed_masks = fixed_masks
        self._writer = None
        self._masks: dict[str, np.ndarray] | None = None
        self._nonzero: dict[str, int] = {}

    def on_train_begin(self, logs=None):
        self._masks = None
        if self.log_dir is not None:
            self._writer = tf.summary.create_file_writer(self.log_dir)

    def on_epoch_begin(self, epoch, logs=None):
        if self._masks is None:
            self._masks, self._nonzero = self._state()
            self._write(epoch)

    def on_epoch_end(self, epoch, logs=None):
        current, nonzero = self._state()
        if self._masks is None:
            self._masks, self._nonzero = current, nonzero
        for name, mask in current.items():
            before = self._masks.get(name)
            if before is None:
                continue
            if self.fixed_masks and not np.array_equal(mask, before):
                raise SparsityInvariantError(f"layer {name}: its fixed pruning mask changed at epoch {epoch + 1} "
                                             "(one-shot/iterative masks must not change during retraining)")
            regrown = int(np.count_nonzero((before == 0) & (mask != 0)))
            if regrown:
                raise SparsityInvariantError(f"layer {name}: {regrown} pruned weight(s) came back at epoch {epoch + 1}")
            if nonzero[name] > self._nonzero.get(name, nonzero[name]):
                raise SparsityInvariantError(f"layer {name}: non-zero weights rose from {self._nonzero[name]} to "
                                             f"{nonzero[name]} at epoch {epoch + 1}")
        self._masks, self._nonzero = current, nonzero
        if logs is not None and current:
            total = sum(m.size for m in current.values())
            logs["sparsity"] = 1.0 - sum(float(np.count_nonzero(m)) for m in current.values()) / max(total, 1)
        self._write(epoch + 1, current)

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def _state(self) -> tuple[dict[str, np.ndarray], dict[str, int]]:
        """Masks, and non-zero counts of ``weight × mask``, of every wrapped layer.

        The weight is the one tfmot masks (``pointwise_kernel`` of a separable conv), as everywhere.
        """
        from .pruning.wrappers import effective_kernels, masks

        current = masks(self.model)
        kernels = effective_kernels(self.model)
        return current, {name: int(np.count_nonzero(kernels[name])) for name in current}

    def _write(self, epoch: int, masks: dict[str, np.ndarray] | None = None) -> None:
        if self._writer is None:
            return
        masks = self._state()[0] if masks is None else masks
        with self._writer.as_default(step=epoch):
            for name, mask in masks.items():
                tf.summary.scalar(f"sparsity/{name}", 1.0 - float(np.mean(mask)))
        self._writer.flush()


def check_sparsity_targets(achieved: dict[str, float], targets: dict[str, float], sizes: dict[str, int],
                           where: str, at_least: bool = False) -> None:
    """Raise unless every target layer's sparsity equals its target, to rounding (one weight).

    ``at_least``: more zeros are allowed (quantized files round small weights to zero).
    A layer that is missing from ``achieved`` is a violation too.
    """
    problems = []
    for name, target in targets.items():
        if name not in achieved:
            problems.append(f"{name} (missing)")
            continue
        tolerance = 1.0 / max(sizes.get(name, 1), 1) + 1e-6
        value = achieved[name]
        if value < target - tolerance or (not at_least and value > target + tolerance):
            problems.append(f"{name} {100 * value:.2f} % (target {100 * target:.2f} %)")
    if problems:
        shown = "; ".join(problems[:4]) + (f"; … {len(problems) - 4} more" if len(problems) > 4 else "")
        raise SparsityInvariantError(f"{where}: pruned layers lost their target sparsity: {shown}")


def log_prune_report(log_dir: str | os.PathLike, report: dict[str, Any]) -> None:
    """Per-layer sparsity and size counts as TensorBoard scalars (step 0) for the prune stage."""
    writer = tf.summary.create_file_writer(str(log_dir))
    with writer.as_default(step=0):
        for row in report.get("layers", []):
            if "sparsity" in row:
                tf.summary.scalar(f"sparsity/{row['layer']}", float(row["sparsity"]))
        for key in ("params_before", "params_after", "flops_before", "flops_after", "sparsity"):
            if isinstance(report.get(key), (int, float)):
                tf.summary.scalar(f"prune/{key}", float(report[key]))
    writer.close()
