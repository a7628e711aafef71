"""The study a ``tfrewind compare`` runs: a base run config + a grid of methods × schedules × budgets × seeds.

``configs/compare/NAME.yaml`` holds the run-config sections shared by every cell (``data``, ``model``,
``train``, ``prune``, ``retrain``, ``export``, …), a ``grid:`` section and ``out:``. Flags override
any of it with dotted keys (``grid.seeds``, ``grid.methods``, ``train.epochs``, ``out``). Everything
is parsed here (types, allowed keys); the checks against the registries and the pipeline (unknown
names, impossible budgets, duplicate cells) are :mod:`tfrewind.compare_validate`, before any training.
"""

from __future__ import annotations

import copy
import dataclasses
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .choices import EXECUTORS
from .config import ExportConfig, PruneConfig, RetrainConfig, RunConfig, parse_budget, read_yaml, set_dotted
from .config.parse import _build, _coerce
from .errors import ConfigError
from .schedule_record import record_path, recorded_epochs

ORIGINAL_DIR = "original_run"
CELLS_DIR = "cells"

# ----------------------------------------------------------------------------- config


@dataclass
class MethodSpec:
    """One pruning method of the grid: a method name with its sparsity, per-layer ratios, preset or
    MACs target."""

    method: str
    sparsity: float | None = None
    """Default: the base config's ``prune.sparsity``."""
    ratios: list[float] | None = None
    preset: str | None = None
    ratios_from: str | None = None
    macs: float | None = None
    """Channel methods: the share of the dense MACs to keep (``prune.macs``), instead of a sparsity."""
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
        if self.macs is not None:
            return _safe(f"{self.method}-m{self.macs:g}")
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
class ExecutorConfig:
    """Where the cells run: one after the other in this process, or as Ray tasks (same files, same results)."""

    name: str = field(default="local", metadata={"choices": EXECUTORS})
    """local: the cells one after the other in this process; ray: each cell a Ray task (needs tfrewind[ray])."""
    address: str | None = None
    """Ray cluster to join (auto, ray://HEAD:10001); default: start a Ray on this machine. Every node must see --out."""
    cpus_per_cell: float = 1.0
    """CPUs a Ray task reserves; its TensorFlow uses that many threads, so results do not depend on the node."""
    gpus_per_cell: float = 0.0
    """GPUs a Ray task reserves (Ray sets CUDA_VISIBLE_DEVICES for it)."""
    max_parallel: int | None = None
    """Cells run at once on Ray; default: as many as the cluster's CPUs/GPUs fit when the sweep starts."""

    def validate(self) -> None:
        if self.name not in EXECUTORS:
            raise ConfigError(f"executor.name: {self.name!r} is not allowed; choose one of: {', '.join(EXECUTORS)}")
        if not self.cpus_per_cell > 0:
            raise ConfigError(f"executor.cpus_per_cell: must be > 0, got {self.cpus_per_cell:g}")
        if not self.gpus_per_cell >= 0:
            raise ConfigError(f"executor.gpus_per_cell: must be ≥ 0, got {self.gpus_per_cell:g}")
        if self.max_parallel is not None and self.max_parallel < 1:
            raise ConfigError(f"executor.max_parallel: must be ≥ 1, got {self.max_parallel}")
        defaults = ExecutorConfig()
        ray_only = [f.name for f in dataclasses.fields(self)
                    if f.name != "name" and getattr(self, f.name) != getattr(defaults, f.name)]
        if self.name == "local" and ray_only:
            raise ConfigError(f"executor.{ray_only[0]}: only --executor ray uses it (local runs one cell at a time "
                              "in this process)")


@dataclass
class CompareConfig:
    """A study: base run config (all sections of ``RunConfig``), the grid, and the output directory."""

    base: RunConfig
    grid: GridConfig
    out: str
    """Output directory: one run directory per cell, results and plots. Re-running on it resumes the sweep."""
    description: str = ""
    executor: ExecutorConfig = field(default_factory=ExecutorConfig)
    """Where the cells run (how, not what: a study may be resumed with another executor)."""

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
        recorded = None if self.trains_original else recorded_epochs(record_path(self.original_dir))
        return recorded if recorded is not None else self.base.train.epochs

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
        for key in ("sparsity", "ratios", "preset", "ratios_from", "macs"):
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
        return {"description": self.description, **base, "grid": grid, "out": self.out,
                "executor": dataclasses.asdict(self.executor)}


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


def parse_compare_config(path: str | Path | None, overrides: dict[str, Any] | None = None) -> CompareConfig:
    """Defaults ← YAML (run-config sections + ``grid`` + ``out``) ← overrides (``grid.seeds``, ``out``,
    ``train.epochs``, …), parsed into a :class:`CompareConfig` (the names and values each field takes).

    Checks that need the registries and the pipeline (methods, schedules, budgets, every cell) are
    :func:`tfrewind.compare_validate.validate_compare`, above the pipeline; a config module does not
    import it. :func:`tfrewind.compare.load_compare_config` does both."""
    raw = dict(read_yaml(path)) if path is not None else {}
    grid_raw = raw.pop("grid", None) or {}
    out = raw.pop("out", None)
    description = raw.pop("description", "") or ""
    executor = _build(ExecutorConfig, raw.pop("executor", None) or {}, prefix="executor.")
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
        elif key.startswith("executor."):
            _set_executor(executor, key, value)
        else:
            set_dotted(base, key, value)
    if not out:
        raise ConfigError("out: give the compare output directory (out: in the YAML, or --out DIR)")
    executor.validate()
    return CompareConfig(base=base, grid=grid, out=str(out), description=str(description), executor=executor)


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
    """Mappings ({method, sparsity, ratios, preset, ratios_from, macs, label}) or strings
    ``method``, ``method:0.9``, ``method:preset=vgg16-A``, ``method:macs=0.5`` (a comma list on the
    command line)."""
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
            option, equals, text = arg.partition("=")
            if equals and option.strip() in ("preset", "macs"):
                item[option.strip()] = text.strip()
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


def _set_executor(executor: ExecutorConfig, key: str, value: Any) -> None:
    names = [f.name for f in dataclasses.fields(ExecutorConfig)]
    name = key[len("executor."):]
    if name not in names:
        raise ConfigError(f"unknown config key {key!r}; allowed: {', '.join(f'executor.{n}' for n in names)}")
    setattr(executor, name, _coerce(value, typing.get_type_hints(ExecutorConfig)[name], key))


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._+-]+", "_", text)


__all__ = ["CELLS_DIR", "ORIGINAL_DIR", "Cell", "CompareConfig", "ExecutorConfig", "GridConfig", "MethodSpec",
           "parse_compare_config"]
