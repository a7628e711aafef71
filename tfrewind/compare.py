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
The study's config (grid, validation) is :mod:`tfrewind.compare_config`; the tables and plots are
:mod:`tfrewind.compare_report`.
"""

from __future__ import annotations

import copy
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, TextIO

import yaml

from .compare_config import (CELLS_DIR, ORIGINAL_DIR, Cell, CompareConfig, GridConfig, MethodSpec,
                             load_compare_config, validate_compare)
from .config import RunConfig
from .errors import ConfigError
from .io import read_json, write_json_atomic, write_text_atomic

COMPARE_FILE = "compare.yaml"
CELL_FILE = "cell.json"
ERROR_FILE = "error.json"


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


__all__ = ["CELLS_DIR", "COMPARE_FILE", "ORIGINAL_DIR", "Cell", "CompareConfig", "CompareResult", "GridConfig",
           "MethodSpec", "cell_done", "check_resumable", "load_compare_config", "report", "run_compare",
           "validate_compare"]
