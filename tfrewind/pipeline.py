"""The whole run: original training → (pruning → retraining) → evaluation → export.

Each stage (:mod:`tfrewind.stages`) writes its outputs into the run directory and marks itself
complete with ``metrics.json``; re-running the same command on the same directory skips completed
stages and resumes an interrupted one (``BackupAndRestore``). Everything the CLI's ``train`` does
is one call of :func:`train`; bad input is refused before anything is written (:mod:`tfrewind.preflight`).
A run whose model came from a Keras 3 file also ends with that model as Keras 3 (``RUN/keras3/``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._keras import keras
from .config import RunConfig
from .data import DataBundle, load_data
from .errors import TrainingDivergedError
from .models import BatchNorm, build_model, check_model_fits, is_model_path, load_model_file
from .preflight import validate, validate_on_model
from .rounds import prune_rounds
from .rundir import EXPORT, KERAS3, ORIGINAL, PRUNE, RETRAIN, RunDir
from .stages import export_stage, original_record, original_stage, prune_stage, retrain_stage
from .training import make_strategy, set_precision, set_seed


@dataclass
class RunResult:
    """Where the run lives and each completed stage's metrics."""

    run_dir: Path
    stages: dict[str, dict[str, Any]] = field(default_factory=dict)


def train(config: RunConfig, verbose: int = 1, resume: bool = False) -> RunResult:
    """Run the configured pipeline in ``config.out`` (created, or resumed if it exists).

    Every check that can fail on bad input runs before anything is written. ``resume=True``
    insists that ``config.out`` is an existing run directory (made with the same config).
    A NaN/inf loss stops the run with :class:`TrainingDivergedError`; the stage's last good
    epoch stays in its ``backup``.
    """
    validate(config)
    RunDir.check(config, resume)
    set_seed(config.seed, config.deterministic)
    set_precision(config.mixed_precision)
    strategy = make_strategy(config.strategy)  # first: multi-worker must configure TF before any variable exists
    data = load_data(config.data, seed=config.seed)
    with strategy.scope():
        model = _initial_model(config, data)
        validate_on_model(config, model)
    run = RunDir.prepare(config, resume=resume)
    result = RunResult(run.path)
    try:
        with strategy.scope():
            model = original_stage(run, model, data, config, verbose)
        result.stages[ORIGINAL] = run.metrics(ORIGINAL)
        if config.prune.method != "none":
            original = original_record(run, config, data)
            for prune_name, retrain_name, round_config in prune_rounds(config):
                with strategy.scope():
                    pruned = prune_stage(run, prune_name, model, data, config, round_config)
                    model = retrain_stage(run, retrain_name, pruned, data, config, original, verbose)
                result.stages[prune_name] = run.metrics(prune_name)
                result.stages[retrain_name] = run.metrics(retrain_name)
    except TrainingDivergedError as exc:
        reuse = f"; --pretrained {run.path} reuses its finished original training" if run.is_done(ORIGINAL) else ""
        raise TrainingDivergedError(f"{exc} (run {str(run.path)!r}); lower the learning rate in a new run "
                                    f"(another --out{reuse})") from exc
    if config.export.format != "none":
        result.stages[EXPORT] = export_stage(run, model, data, config)
    if started_from_keras3(config) and config.export.format != "keras3":
        result.stages[KERAS3] = export_stage(run, model, data, config, stage=KERAS3, format="keras3")
    return result


def started_from_keras3(config: RunConfig) -> bool:
    """Whether the run's model came from a Keras 3 file (it then also ends with a Keras 3 ``.keras``)."""
    from .keras3.files import is_keras3_file

    sources = [config.model.name if is_model_path(config.model.name) else None, config.train.pretrained]
    return any(source and Path(source).is_file() and is_keras3_file(source) for source in sources)


def _initial_model(config: RunConfig, data: DataBundle) -> keras.Model:
    pretrained = config.train.pretrained
    if pretrained:
        path = Path(pretrained)
        if path.is_dir():
            path = path / ORIGINAL / "model.keras"
        model = load_model_file(path)
        check_model_fits(model, data.input_shape, data.num_classes, source=str(path))
        return model
    bn = BatchNorm(config.model.bn_momentum, config.model.bn_epsilon)
    return build_model(config.model.name, data.input_shape, data.num_classes, bn)


__all__ = ["EXPORT", "KERAS3", "ORIGINAL", "PRUNE", "RETRAIN", "RunResult", "original_stage", "prune_rounds",
           "started_from_keras3", "train", "validate", "validate_on_model"]
