"""``tfrewind compare``: one original training, then a grid of pruning methods × retraining schedules ×
budgets × seeds, each cell one run directory; resumable, with the results table and plots at the end.

Layout of ``OUT``::

    OUT/compare.yaml              the resolved compare config (what ``tfrewind report OUT`` reads)
    OUT/original_run/             the dense run, trained once and shared by every cell
    OUT/cells/<cell>/             one run directory per cell (train.pretrained = OUT/original_run)
    OUT/cells/<cell>/cell.json    wall time of a finished cell; error.json if the cell failed
    OUT/results.csv, results.md, accuracy_vs_budget.png, schedules_b<E>.png   (see compare_report)

Why one shared original: the paper's question is how to *retrain* a pruned network, so every cell
starts from the same dense weights and recorded schedule; the seeds vary what pruning and
retraining randomise (random masks/filters, data order, augmentation). Seed variance of original
training is therefore *not* in the reported std — it is cheaper, and isolates the retraining effect.
A cell is finished when its last stage's ``metrics.json`` exists: a re-run skips it, so an
interrupted sweep resumes; a failing cell is recorded (``error.json``) and the others still run.
"""

from __future__ import annotations

import copy
import dataclasses
import re
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, TextIO

import yaml

from .config import (ExportConfig, PruneConfig, RetrainConfig, RunConfig, _build, _coerce, parse_budget, read_yaml,
                     set_dotted)
from .errors import ConfigError
from .io import read_json, write_json_atomic, write_text_atomic

COMPARE_FILE = "compare.yaml"
ORIGINAL_DIR = "original_run"
CELLS_DIR = "cells"
CELL_FILE = "cell.json"
ERROR_FILE = "error.json"


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


@dataclass
class CompareConfig:
    """A study: base run config (all sections of ``RunConfig``), the grid, and the output directory."""

    base: RunConfig
    grid: GridConfig
    out: str
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


# ----------------------------------------------------------------------------- running


@dataclass
class CompareResult:
    out: Path
    statuses: dict[str, str]
    """cell name → ``ran``, ``skipped`` (finished before) or ``failed``."""
    rows: list[dict[str, Any]]
    files: list[Path]


def cell_final_stages(config: RunConfig) -> list[str]:
    """The stages whose metrics.json must exist for the cell to count as finished."""
    from .pipeline import EXPORT, prune_rounds

    stages = [prune_rounds(config)[-1][1]]
    if config.export.format != "none":
        stages.append(EXPORT)
    return stages


def cell_done(cell: Cell) -> bool:
    return all((cell.path / stage / "metrics.json").exists() for stage in cell_final_stages(cell.config))


def check_resumable(config: CompareConfig) -> None:
    """Refuse, before training, directories made with other settings (names the fields that differ)."""
    from .rundir import CONFIG_FILE, RunDir

    dirs = [(config.original_config(), config.out_dir / ORIGINAL_DIR)] if config.trains_original else []
    dirs += [(cell.config, cell.path) for cell in config.cells()]
    for run_config, path in dirs:
        if (path / CONFIG_FILE).exists():
            RunDir(path).check_same_config(run_config)


def run_compare(config: CompareConfig, verbose: int = 0, progress: bool = True, stream: TextIO | None = None,
                run_cell: Callable[[RunConfig, int], Any] | None = None) -> CompareResult:
    """Train the original once, run every unfinished cell, then write the results (see module doc).

    ``verbose`` is Keras' per-epoch output (0: quiet); ``progress`` prints a bar over cells to
    ``stream`` (stderr). ``run_cell(config, verbose)`` replaces :func:`tfrewind.pipeline.train`
    (tests, or a cluster launcher).
    """
    from ._keras import keras
    from .compare_report import write_results
    from .pipeline import ORIGINAL, train

    run_cell = run_cell or train
    stream = stream if stream is not None else sys.stderr
    validate_compare(config)
    check_resumable(config)
    out = config.out_dir
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / COMPARE_FILE, yaml.safe_dump(config.to_dict(), sort_keys=False))
    cells = config.cells()
    bar = Progress(len(cells), stream, enabled=progress)
    if config.trains_original and not (config.original_dir / ORIGINAL / "metrics.json").exists():
        bar.note(f"original training ({config.base.train.epochs} epochs) → {config.original_dir}")
        started = time.perf_counter()
        train(config.original_config(), verbose=verbose)
        bar.note(f"original training done in {_duration(time.perf_counter() - started)}")
    statuses: dict[str, str] = {}
    todo = sum(not cell_done(c) for c in cells)
    bar.start(todo)
    try:
        for cell in cells:
            if cell_done(cell):
                statuses[cell.name] = "skipped"
                bar.skip(cell.name)
                continue
            bar.begin(cell.name)
            statuses[cell.name] = _run_one(cell, run_cell, verbose)
            keras.backend.clear_session()  # keep graphs from piling up over dozens of cells
            bar.end(cell.name, statuses[cell.name], _error_line(cell))
    except KeyboardInterrupt:
        bar.note("interrupted: writing results of the finished cells; re-run the same command to resume")
        write_results(config)
        raise
    rows, files = write_results(config)
    bar.finish(files)
    return CompareResult(out, statuses, rows, files)


def _run_one(cell: Cell, run_cell: Callable[[RunConfig, int], Any], verbose: int) -> str:
    error_file = cell.path / ERROR_FILE
    if error_file.exists():  # retry a failed cell from a clean slate (RunDir refuses foreign files)
        error_file.unlink()
    started = time.perf_counter()
    try:
        run_cell(copy.deepcopy(cell.config), verbose)
        if not cell_done(cell):
            raise RuntimeError(f"the run finished without writing {', '.join(cell_final_stages(cell.config))}")
    except Exception as exc:  # noqa: BLE001 — a failed cell is recorded, the sweep goes on
        write_json_atomic(error_file, {"status": "failed", "error": f"{type(exc).__name__}: {exc}",
                                       "seconds": round(time.perf_counter() - started, 3),
                                       "traceback": traceback.format_exc()})
        return "failed"
    write_json_atomic(cell.path / CELL_FILE, {"status": "ok", "seconds": round(time.perf_counter() - started, 3)})
    return "ran"


def _error_line(cell: Cell) -> str:
    path = cell.path / ERROR_FILE
    return read_json(path)["error"].splitlines()[0] if path.exists() else ""


def report(out: str | Path) -> tuple[list[dict[str, Any]], list[Path]]:
    """``tfrewind report OUT``: rebuild results.csv/.md and the plots from OUT's run directories."""
    from .compare_report import write_results

    path = Path(out) / COMPARE_FILE
    if not path.exists():
        raise ConfigError(f"{str(out)!r} is not a compare directory (no {COMPARE_FILE}); "
                          "give the --out of a tfrewind compare run")
    return write_results(load_compare_config(path, {"out": str(out)}))


# ----------------------------------------------------------------------------- progress


class Progress:
    """A bar over cells on stderr: ``[=====>    ] 12/72 cell-name  elapsed 3m10s  ETA 14m``.

    The ETA is the mean wall time of the cells run so far times the cells left (skipped cells are free).
    """

    def __init__(self, total: int, stream: TextIO, enabled: bool = True, width: int = 24):
        self.total, self.stream, self.enabled, self.width = total, stream, enabled, width
        self.index = 0
        self.todo = total
        self.ran = 0
        self.started = time.perf_counter()
        self.cell_started = self.started
        self.skipped = 0
        self.failed = 0

    def start(self, todo: int) -> None:
        self.todo = todo
        self.started = time.perf_counter()
        if self.total - todo:
            self.note(f"{self.total - todo} of {self.total} cells already finished: skipped")

    def skip(self, name: str) -> None:
        self.index += 1
        self.skipped += 1

    def begin(self, name: str) -> None:
        self.index += 1
        self.cell_started = time.perf_counter()
        self._line(f"{name} …", self._eta())

    def end(self, name: str, status: str, error: str = "") -> None:
        self.ran += 1
        seconds = time.perf_counter() - self.cell_started
        if status == "failed":
            self.failed += 1
            self._line(f"{name} FAILED after {_duration(seconds)}: {error}", self._eta())
        else:
            self._line(f"{name} done in {_duration(seconds)}", self._eta())

    def finish(self, files: list[Path]) -> None:
        elapsed = time.perf_counter() - self.started
        self.note(f"{self.ran} cells run ({self.failed} failed), {self.skipped} skipped, in {_duration(elapsed)}")

    def note(self, text: str) -> None:
        if self.enabled:
            print(f"tfrewind compare: {text}", file=self.stream, flush=True)

    def _eta(self) -> str:
        elapsed = time.perf_counter() - self.started
        if not self.ran:
            return f"elapsed {_duration(elapsed)}"
        left = max(0, self.todo - self.ran)
        return f"elapsed {_duration(elapsed)}  ETA {_duration(elapsed / self.ran * left)}"

    def _line(self, text: str, tail: str) -> None:
        if not self.enabled:
            return
        filled = int(self.width * self.index / max(1, self.total))
        bar = "=" * max(0, filled - 1) + (">" if filled else "") + " " * (self.width - filled)
        print(f"[{bar}] {self.index}/{self.total} {text}  {tail}", file=self.stream, flush=True)


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


__all__ = ["Cell", "CompareConfig", "CompareResult", "GridConfig", "MethodSpec", "cell_done", "check_resumable",
           "load_compare_config", "report", "run_compare", "validate_compare"]
