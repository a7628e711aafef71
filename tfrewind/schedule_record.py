"""The original-schedule record, ``RUN/original/schedule.json``: its one writer and its one reader.

Why one module: original training writes it, and LR rewinding, the pipeline's pre-flight checks,
the compare study (its original epochs) and the compare report (its plots) read it; the format
lives here once. Reading needs no TensorFlow (the compare config reads the epochs before any
training); writing imports it to serialize the schedule objects.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .errors import CheckpointError
from .io import read_json, write_json_atomic
from .rundir import ORIGINAL

RECORD_FILE = "schedule.json"


def record_path(run_dir: str | Path) -> Path:
    """Where a run directory keeps its original schedule."""
    return Path(run_dir) / ORIGINAL / RECORD_FILE


def write_schedule_record(path: str | Path, stage: Any, steps_per_epoch: int) -> Path:
    """Write the original schedule (a :class:`~tfrewind.training.StageSchedule`) so that LR rewinding
    can replay it exactly later; ``lr_per_epoch`` is for readers without TensorFlow."""
    from ._keras import keras

    serialize = keras.optimizers.schedules.serialize
    return write_json_atomic(path, {
        "epochs": stage.epochs,
        "steps_per_epoch": steps_per_epoch,
        "momentum": stage.momentum,
        "lr_schedule": serialize(stage.lr),
        "momentum_schedule": None if stage.momentum_schedule is None else serialize(stage.momentum_schedule),
        "lr_per_epoch": [float(stage.lr(e * steps_per_epoch)) for e in range(stage.epochs)],
    })


def read_schedule_record(path: str | Path) -> dict[str, Any]:
    """The record as written (the LR schedule still serialized: :meth:`tfrewind.retraining.OriginalRecord.from_file`
    turns it into the schedule object), or a clear error when the run has none."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"the original schedule record {str(path)!r} is missing; "
                              "retraining schedules that replay it need the original run directory")
    return read_json(path)


def recorded_epochs(path: str | Path) -> int | None:
    """The original epochs the record holds, or ``None`` without a record (no TensorFlow needed)."""
    path = Path(path)
    return int(read_json(path)["epochs"]) if path.exists() else None


__all__ = ["RECORD_FILE", "read_schedule_record", "record_path", "recorded_epochs", "write_schedule_record"]
