"""The study a ``tfrewind compare`` runs: a base run config + a grid of methods × schedules × budgets × seeds.

``configs/compare/NAME.yaml`` holds the run-config sections shared by every cell (``data``, ``model``,
``train``, ``prune``, ``retrain``, ``export``, …), a ``grid:`` section and ``out:``. Flags override
any of it with dotted keys (``grid.seeds``, ``grid.methods``, ``train.epochs``, ``out``). Everything
is validated here, before any training: unknown names, impossible budgets, duplicate cells.
"""

from __future__ import annotations

import copy
import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import (ExportConfig, PruneConfig, RetrainConfig, RunConfig, _build, _coerce, parse_budget, read_yaml,
                     set_dotted)
from .errors import ConfigError
from .io import read_json

ORIGINAL_DIR = "original_run"
CELLS_DIR = "cells"

# ----------------------------------------------------------------------------- config


@dataclass
class MethodSpec:
    """One pruning method of the grid: a method name with its sparsity, per-layer ratios or preset."""

    method: str
    sparsity: float | None = None
    """Default: the base config's ``prune.sparsity``."""
    ratios: list[float] | None = None
    preset: str | None = None
    ratios_from: str | None = None
    label: str | None = None
    """Name in tables, plots and cell directories; default e.g. ``global_magnitude-s0.95``."""

    @property
    def name(self) -> str:
        if self.label:
            return _safe(self.label)
        if self.preset:
            return _safe(f"{self.method}-{self.preset}")
        if self.ratios is not None:
            return _safe(f"{self.method}-r{'_'.join(f'{r:g}' for r in self.ratios)}")
        return _safe(f"{self.method}-s{self.sparsity:g}") if self.sparsity is not None else _safe(self.method)


@dataclass
class GridConfig:
    """The grid: every method × schedule × budget × seed is one cell."""

    methods: list[MethodSpec] = field(default_factory=list)
    schedules: list[str] = field(default_factory=lambda: ["fine_tune", "lr_rewind", "one_cycle"])
    budgets: list[str] = field(default_factory=lambda: ["50%"])
    """Retraining epochs (``72``) or shares of original training (``45%``)."""
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    """Seeds: every method × schedule × budget runs once per seed."""


@dataclass
class CompareConfig:
    """A study: base run config (all sections of ``RunConfig``), the grid, and the output directory."""

    base: RunConfig
    grid: GridConfig
    out: str
    """Output directory: one run directory per cell, results and plots. Re-running on it resumes the sweep."""
    description: str = ""

    @property
    def out_dir(self) -> Path:
        return Path(self.out)

    @property
    def original_dir(self) -> Path:
        """The dense run every cell starts from: ``train.pretrained`` if it is a run directory, else OUT/original_run."""
        pretrained = self.base.train.pretrained
        if pretrained and Path(pretrained).is_dir():
            return Path(pretrained)
        return self.out_dir / ORIGINAL_DIR

    @property
    def trains_original(self) -> bool:
        pretrained = self.base.train.pretrained
        return not (pretrained and Path(pretrained).is_dir())

    def original_epochs(self) -> int:
        record = self.original_dir / "original" / "schedule.json"
        if not self.trains_original and record.exists():
            return int(read_json(record)["epochs"])
        return self.base.train.epochs

    def original_config(self) -> RunConfig:
        """The dense run's config: only data/model/train/seed matter (retrain settings may change freely)."""
        config = copy.deepcopy(self.base)
        config.prune = PruneConfig(method="none")
        config.retrain = RetrainConfig()
        config.export = ExportConfig(format="none")
        config.out = str(self.out_dir / ORIGINAL_DIR)
        return config

    def cells(self) -> list["Cell"]:
        """Seed-major order: after each seed the whole grid has one sample (useful partial results)."""
        epochs = self.original_epochs()
        cells = []
        for seed in self.grid.seeds:
            for spec in self.grid.methods:
                for budget in self.grid.budgets:
                    budget_epochs = parse_budget(budget, epochs)
                    for schedule in self.grid.schedules:
                        cells.append(self._cell(spec, schedule, budget, budget_epochs, seed))
        return cells

    def _cell(self, spec: MethodSpec, schedule: str, budget: str, budget_epochs: int, seed: int) -> "Cell":
        name = f"{spec.name}-{schedule}-b{budget_epochs}-seed{seed}"
        config = copy.deepcopy(self.base)
        config.prune.method = spec.method
        for key in ("sparsity", "ratios", "preset", "ratios_from"):
            if getattr(spec, key) is not None:
                setattr(config.prune, key, copy.deepcopy(getattr(spec, key)))
        config.retrain.schedule = schedule
        config.retrain.budget = str(budget_epochs)
        config.seed = seed
        config.train.pretrained = str(self.original_dir)
        config.out = str(self.out_dir / CELLS_DIR / name)
        return Cell(name, spec, schedule, budget, budget_epochs, seed, config)

    def to_dict(self) -> dict[str, Any]:
        base = self.base.to_dict()
        base.pop("out", None)
        grid = dataclasses.asdict(self.grid)
        grid["methods"] = [{k: v for k, v in m.items() if v is not None} for m in grid["methods"]]
        return {"description": self.description, **base, "grid": grid, "out": self.out}


@dataclass
class Cell:
    name: str
    method: MethodSpec
    schedule: str
    budget: str
    budget_epochs: int
    seed: int
    config: RunConfig

    @property
    def path(self) -> Path:
        return Path(self.config.out)


def load_compare_config(path: str | Path | None, overrides: dict[str, Any] | None = None) -> CompareConfig:
    """Defaults ← YAML (run-config sections + ``grid`` + ``out``) ← overrides (``grid.seeds``, ``out``,
    ``train.epochs``, …); then everything is validated before any training (:func:`validate_compare`)."""
    raw = dict(read_yaml(path)) if path is not None else {}
    grid_raw = raw.pop("grid", None) or {}
    out = raw.pop("out", None)
    description = raw.pop("description", "") or ""
    raw.setdefault("export", {})
    if isinstance(raw["export"], dict):
        raw["export"] = {"format": "none", **raw["export"]}  # cells export nothing unless asked
    base = _build(RunConfig, raw, prefix="")
    grid = _build_grid(grid_raw)
    for key, value in (overrides or {}).items():
        if value is None:
            continue
        if key == "out":
            out = str(value)
        elif key == "description":
            description = str(value)
        elif key.startswith("grid."):
            _set_grid(grid, key, value)
        else:
            set_dotted(base, key, value)
    if not out:
        raise ConfigError("out: give the compare output directory (out: in the YAML, or --out DIR)")
    config = CompareConfig(base=base, grid=grid, out=str(out), description=str(description))
    validate_compare(config)
    return config


def _build_grid(raw: Any) -> GridConfig:
    if not isinstance(raw, dict):
        raise ConfigError(f"grid: expected a mapping with methods, schedules, budgets, seeds; got {raw!r}")
    raw = dict(raw)
    methods = raw.pop("methods", None)
    grid = _build(GridConfig, raw, prefix="grid.")
    if methods is not None:
        grid.methods = _parse_methods(methods)
    grid.budgets = [str(b) for b in grid.budgets]
    return grid


def _parse_methods(value: Any) -> list[MethodSpec]:
    """Mappings ({method, sparsity, ratios, preset, ratios_from, label}) or strings
    ``method``, ``method:0.9``, ``method:preset=vgg16-A`` (a comma list on the command line)."""
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, list):
        raise ConfigError(f"grid.methods: expected a list, got {value!r}")
    specs = []
    for i, item in enumerate(value):
        key = f"grid.methods[{i}]"
        if isinstance(item, str):
            name, _, arg = item.partition(":")
            item = {"method": name.strip()}
            if arg.startswith("preset="):
                item["preset"] = arg[len("preset="):].strip()
            elif arg:
                item["sparsity"] = arg.strip()
        if not isinstance(item, dict) or "method" not in item:
            raise ConfigError(f"{key}: give a method name (e.g. random:0.9) or a mapping with 'method', got {item!r}")
        specs.append(_build(MethodSpec, item, prefix=f"{key}."))
    return specs


def _set_grid(grid: GridConfig, key: str, value: Any) -> None:
    name = key[len("grid."):]
    if name == "methods":
        grid.methods = _parse_methods(value)
    elif name in ("schedules", "budgets"):
        setattr(grid, name, [str(v) for v in _coerce(value, list[str], key)])
    elif name == "seeds":
        grid.seeds = _coerce(value, list[int], key)
    else:
        raise ConfigError(f"unknown config key {key!r}; allowed: grid.methods, grid.schedules, grid.budgets, grid.seeds")


def validate_compare(config: CompareConfig) -> None:
    """Every name, value and cell checked up front, so that a typo fails in seconds, not after an hour."""
    from .pipeline import validate
    from .pruning import METHODS, PRESETS, make_request
    from .retraining import RETRAIN_SCHEDULES, OriginalRecord, build_retrain_schedule

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
        OriginalRecord.from_file(config.original_dir / "original" / "schedule.json")
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
                if stage.description.get("rewind_weights") and kept is not None and \
                        original.epochs - epochs_b not in kept:
                    raise ConfigError(f"grid: weight_rewind with budget {budget} needs the weights after epoch "
                                      f"{original.epochs - epochs_b}; add it to train.checkpoint_epochs")


def _check_unique(key: str, values: list, hint: str = "") -> None:
    dupes = sorted({str(v) for v in values if values.count(v) > 1})
    if dupes:
        raise ConfigError(f"{key}: duplicates {', '.join(dupes)}" + (f" ({hint})" if hint else ""))


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._+-]+", "_", text)


__all__ = ["CELLS_DIR", "ORIGINAL_DIR", "Cell", "CompareConfig", "GridConfig", "MethodSpec", "load_compare_config",
           "validate_compare"]
