"""Checks a compare study against the registries and the pipeline, before any training.

Why a module above the pipeline: the study's config (:mod:`tfrewind.compare_config`) is parsed
without TensorFlow; checking every cell needs the pipeline's own pre-flight validation, the pruning
methods and the retraining schedules, which a config module must not import.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .compare_config import CompareConfig, parse_compare_config
from .config import parse_budget
from .errors import ConfigError
from .preflight import validate
from .pruning import METHODS, PRESETS, make_request
from .retraining import RETRAIN_SCHEDULES, OriginalRecord, build_retrain_schedule, needs_weight_rewind
from .schedule_record import record_path


def load_compare_config(path: str | Path | None, overrides: dict[str, Any] | None = None) -> CompareConfig:
    """Defaults ← YAML ← overrides (see :func:`~tfrewind.compare_config.parse_compare_config`), then
    everything validated before any training (:func:`validate_compare`)."""
    config = parse_compare_config(path, overrides)
    validate_compare(config)
    return config


def validate_compare(config: CompareConfig) -> None:
    """Every name, value and cell checked up front, so that a typo fails in seconds, not after an hour."""
    base, grid = config.base, config.grid
    base.validate()
    validate(base)
    for name, values in (("methods", grid.methods), ("schedules", grid.schedules), ("budgets", grid.budgets),
                         ("seeds", grid.seeds)):
        if not values:
            raise ConfigError(f"grid.{name}: give at least one")
    for schedule in grid.schedules:
        RETRAIN_SCHEDULES.get(schedule)
    bad_seeds = [s for s in grid.seeds if s < 0]
    if bad_seeds:
        raise ConfigError(f"grid.seeds: must be ≥ 0, got {bad_seeds}")
    for i, spec in enumerate(grid.methods):
        if spec.method == "none":
            raise ConfigError(f"grid.methods[{i}]: 'none' is the unpruned model, which every table already shows")
        METHODS.get(spec.method)
        if spec.preset is not None and spec.preset not in PRESETS:
            raise ConfigError(f"grid.methods[{i}].preset: unknown preset {spec.preset!r}; choose one of: "
                              f"{', '.join(sorted(PRESETS))}")
    _check_unique("grid.methods", [m.name for m in grid.methods], "give each a distinct 'label'")
    _check_unique("grid.schedules", grid.schedules)
    _check_unique("grid.seeds", grid.seeds)
    epochs = config.original_epochs()
    budget_epochs = []
    for budget in grid.budgets:
        try:
            budget_epochs.append(parse_budget(budget, epochs))
        except ConfigError as exc:
            raise ConfigError(str(exc).replace("retrain.budget", "grid.budgets", 1)) from None
    _check_unique("grid.budgets", budget_epochs, f"they resolve to the same epochs of {epochs} original epochs")
    original = OriginalRecord.from_config(base.train, steps_per_epoch=1) if config.trains_original else \
        OriginalRecord.from_file(record_path(config.original_dir))
    kept = set(base.train.checkpoint_epoch_list()) if config.trains_original else None
    for spec in grid.methods:  # one representative cell per method × budget × schedule
        for budget, epochs_b in zip(grid.budgets, budget_epochs):
            for schedule in grid.schedules:
                cell = config._cell(spec, schedule, budget, epochs_b, grid.seeds[0])
                cell.config.validate()
                make_request(cell.config.prune, cell.seed, preset=cell.config.prune.preset,
                             policy=cell.config.prune.policy)
                try:
                    stage = build_retrain_schedule(schedule, original, epochs_b, cell.config.retrain)
                except ConfigError as exc:
                    raise ConfigError(f"grid: {schedule} with budget {budget}: {exc}") from None
                if needs_weight_rewind(stage) and kept is not None and \
                        original.epochs - epochs_b not in kept:
                    raise ConfigError(f"grid: weight_rewind with budget {budget} needs the weights after epoch "
                                      f"{original.epochs - epochs_b}; add it to train.checkpoint_epochs")


def _check_unique(key: str, values: list, hint: str = "") -> None:
    dupes = sorted({str(v) for v in values if values.count(v) > 1})
    if dupes:
        raise ConfigError(f"{key}: duplicates {', '.join(dupes)}" + (f" ({hint})" if hint else ""))



__all__ = ["load_compare_config", "validate_compare"]
