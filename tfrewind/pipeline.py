"""The whole run: original training → (pruning → retraining) → evaluation → export.

Each stage writes its outputs into the run directory and marks itself complete with
``metrics.json``; re-running the same command on the same directory skips completed stages and
resumes an interrupted one (``BackupAndRestore``). Everything the CLI's ``train`` does is one call
of :func:`train`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._keras import keras
from .callbacks import RewindCheckpointer, current_lr
from .config import RunConfig
from .data import DataBundle, load_data
from .errors import ModelFileError
from .io import read_json, write_json_atomic
from .models import MODELS, build_model, is_model_path, load_model_file, save_model_atomic
from .rundir import RunDir
from .schedules import Schedule
from .training import (StageSchedule, compile_model, evaluate, fit_stage, make_strategy, original_schedule,
                       set_seed)
from . import schedules as _schedules  # noqa: F401  (registers schedule classes for reloading)

ORIGINAL = "original"


@dataclass
class RunResult:
    """Where the run lives and each completed stage's metrics."""

    run_dir: Path
    stages: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def final(self) -> dict[str, Any]:
        return list(self.stages.values())[-1]


def validate(config: RunConfig) -> None:
    """Check every registry name before anything is loaded or written."""
    if not is_model_path(config.model.name):
        MODELS.get(config.model.name)
    if config.model.name and is_model_path(config.model.name) and not Path(config.model.name).exists():
        raise ModelFileError(f"model file {config.model.name!r} does not exist")


def train(config: RunConfig, verbose: int = 1) -> RunResult:
    """Run the configured pipeline in ``config.out`` (created, or resumed if it exists)."""
    validate(config)
    set_seed(config.seed, config.deterministic)
    data = load_data(config.data, seed=config.seed)
    strategy = make_strategy(config.strategy)
    with strategy.scope():
        model = _initial_model(config, data)
    run = RunDir.prepare(config)
    result = RunResult(run.path)
    with strategy.scope():
        model = original_stage(run, model, data, config, verbose)
    result.stages[ORIGINAL] = run.metrics(ORIGINAL)
    return result


def _initial_model(config: RunConfig, data: DataBundle) -> keras.Model:
    pretrained = config.train.pretrained
    if pretrained:
        path = Path(pretrained)
        if path.is_dir():
            path = path / ORIGINAL / "model.keras"
        model = load_model_file(path)
        from .models import check_model_fits

        check_model_fits(model, data.input_shape, data.num_classes, source=str(path))
        return model
    return build_model(config.model.name, data.input_shape, data.num_classes)


def original_stage(run: RunDir, model: keras.Model, data: DataBundle, config: RunConfig,
                   verbose: int = 1) -> keras.Model:
    """Train the dense network (or take the pretrained one), record its schedule and checkpoints."""
    stage_dir = run.stage_dir(ORIGINAL)
    model_path = stage_dir / "model.keras"
    schedule = original_schedule(config.train, data.steps_per_epoch)
    if run.is_done(ORIGINAL):
        model = load_model_file(model_path)
        compile_model(model, schedule, config.train.weight_decay)
        return model
    compile_model(model, schedule, config.train.weight_decay)
    if config.train.pretrained:
        metrics = {"stage": ORIGINAL, "pretrained": str(config.train.pretrained), **evaluate(model, data)}
    else:
        rewind = RewindCheckpointer(stage_dir / "checkpoints", config.train.checkpoint_epoch_list())
        metrics = fit_stage(model, data, schedule, stage=ORIGINAL, stage_dir=stage_dir,
                            log_dir=run.log_dir(ORIGINAL), callbacks=[rewind], verbose=verbose)
    metrics["params"] = int(model.count_params())
    record_schedule(stage_dir / "schedule.json", schedule, data.steps_per_epoch)
    save_model_atomic(model, model_path)
    run.write_metrics(ORIGINAL, metrics)
    return model


def record_schedule(path: Path, schedule: StageSchedule, steps_per_epoch: int) -> None:
    """Write the original schedule so that LR rewinding can replay it exactly later."""
    serialize = keras.optimizers.schedules.serialize
    write_json_atomic(path, {
        "epochs": schedule.epochs,
        "steps_per_epoch": steps_per_epoch,
        "momentum": schedule.momentum,
        "lr_schedule": serialize(schedule.lr),
        "momentum_schedule": None if schedule.momentum_schedule is None else serialize(schedule.momentum_schedule),
        "lr_per_epoch": [float(schedule.lr(e * steps_per_epoch)) for e in range(schedule.epochs)],
    })


def load_recorded_schedule(path: Path) -> tuple[Schedule, dict[str, Any]]:
    """The original LR schedule object and its record, as written by :func:`record_schedule`."""
    record = read_json(path)
    return keras.optimizers.schedules.deserialize(record["lr_schedule"]), record


__all__ = ["RunResult", "current_lr", "load_recorded_schedule", "original_stage", "record_schedule", "train",
           "validate"]
