"""A Ray worker set-up hook for tests/test_compare_ray.py: a worker SIGKILLs itself once, mid-cell.

Why a hook and not a signal from the test: the kill point must be fixed — right after a stage's
resume backup of a given epoch is on disk — and polling from the test would race the cell (a loaded
machine could let it finish first). The study directory holds the order: ``OUT/kill-once`` names
``<cell> <stage> <epochs>``; the first worker whose cell reaches it renames the file to
``OUT/kill-once.fired`` (so only one worker ever fires), writes its process title there, and
SIGKILLs itself. Without the file, workers behave normally. The patch is applied when a worker starts
its first cell (workers that only probe the study never import TensorFlow).
"""

from __future__ import annotations

import os
import signal
from pathlib import Path


def install() -> None:
    import tfrewind.compare_sweep as sweep

    run_cell_here = sweep.run_cell_here

    def patched(*args, **kwargs):
        _kill_once_after_backup()
        return run_cell_here(*args, **kwargs)

    sweep.run_cell_here = patched  # before tfrewind.compare_ray imports it: the hook runs first


def _kill_once_after_backup() -> None:
    from tfrewind._keras import keras

    if getattr(keras.callbacks.BackupAndRestore, "_kill_once", False):
        return

    backup = keras.callbacks.BackupAndRestore.on_epoch_end

    def on_epoch_end(self, epoch, logs=None):
        backup(self, epoch, logs)  # the epoch's backup is saved: the retry resumes after it
        stage_dir = Path(self.backup_dir).parent
        order = stage_dir.parents[2] / "kill-once"
        try:
            cell, stage, epochs = order.read_text().split()
        except (OSError, ValueError):
            return
        if (stage_dir.parent.name, stage_dir.name) != (cell, stage) or epoch + 1 < int(epochs):
            return
        fired = order.with_name("kill-once.fired")
        try:
            os.rename(order, fired)
        except OSError:  # another worker fired first
            return
        title = Path(f"/proc/{os.getpid()}/cmdline").read_bytes().split(b"\0")[0].decode()
        fired.write_text(f"{os.getpid()} {title}\n")
        os.kill(os.getpid(), signal.SIGKILL)

    keras.callbacks.BackupAndRestore.on_epoch_end = on_epoch_end
    keras.callbacks.BackupAndRestore._kill_once = True
