"""One sweep over a study's cells, shared by the executors: which cells this process runs, and running
one cell wherever it lands (this process, or a Ray worker).

Why a module below :mod:`tfrewind.compare` and :mod:`tfrewind.compare_ray`: both executors decide
the same way which cells to run — skip finished ones, claim the rest (:mod:`tfrewind.compare_claims`)
and leave a cell to the process that holds it — and a cell writes the same files whichever runs it.

A cell is run by this process only after it holds the cell's claim *and* has looked again: a process
writes a cell's ``cell.json``/``error.json`` before it releases the claim, so whoever claims next sees
that the cell finished, or failed during this sweep (its ``error.json`` differs from the one that was
there when this sweep started), and leaves it. Failed cells of *earlier* sweeps are retried.
"""

from __future__ import annotations

import copy
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

from .compare_cells import CELL_FILE, ERROR_FILE, cell_done, cell_final_stages
from .compare_claims import Claims
from .compare_config import Cell, CompareConfig
from .config import RunConfig
from .io import write_json_atomic

RunCell = Callable[[RunConfig, int], Any]


class CellProgress(Protocol):
    """What a sweep tells the progress bar (:class:`tfrewind.compare.Progress`)."""

    def skip(self) -> None: ...
    def drop(self, name: str, why: str) -> None: ...
    def begin(self, name: str) -> None: ...
    def end(self, name: str, status: str, error: str = "") -> None: ...
    def note(self, text: str, prefix: bool = True) -> None: ...


@dataclass
class Sweep:
    """The cells of one ``run_compare`` call and what became of each in this process."""

    config: CompareConfig
    cells: list[Cell]
    claims: Claims
    bar: CellProgress
    verbose: int = 0
    run_cell: RunCell | None = None
    statuses: dict[str, str] = field(default_factory=dict)
    """cell name → ``ran``, ``skipped`` (finished before), ``failed``, or ``elsewhere`` (another process's)."""

    def __post_init__(self) -> None:
        self._errors_at_start = {cell.name: _error_stamp(cell) for cell in self.cells}

    def take(self, cell: Cell) -> bool:
        """Claim ``cell`` for this process if it still needs running; record why not otherwise."""
        if cell_done(cell):
            self.statuses[cell.name] = "skipped"
            self.bar.skip()
            return False
        if not self.claims.take(cell.name):
            self._elsewhere(cell, f"running in {self.claims.holder(cell.name) or 'another process'}")
            return False
        if cell_done(cell) or _error_stamp(cell) != self._errors_at_start[cell.name]:
            self.claims.release(cell.name)
            self._elsewhere(cell, "finished by another process" if cell_done(cell) else "failed in another process")
            return False
        self.bar.begin(cell.name)
        return True

    def finish(self, cell: Cell, status: str, error: str = "") -> None:
        """After the cell's files are written: release its claim and report it."""
        self.claims.release(cell.name)
        self.statuses[cell.name] = status
        self.bar.end(cell.name, status, error)

    def _elsewhere(self, cell: Cell, why: str) -> None:
        self.statuses[cell.name] = "elsewhere"
        self.bar.drop(cell.name, why)


def run_cell_here(cell: Cell, run_cell: RunCell, verbose: int) -> str:
    """Run one cell in this process and write its ``cell.json`` (or ``error.json``): ``ran`` or ``failed``."""
    error_file = cell.path / ERROR_FILE
    if error_file.exists():  # retry a failed cell from a clean slate (RunDir refuses foreign files)
        error_file.unlink()
    started = time.perf_counter()
    try:
        run_cell(copy.deepcopy(cell.config), verbose)
        if not cell_done(cell):
            raise RuntimeError(f"the run finished without writing {', '.join(cell_final_stages(cell.config))}")
    except Exception as exc:  # noqa: BLE001 — a failed cell is recorded, the sweep goes on
        record_failure(cell, f"{type(exc).__name__}: {exc}", time.perf_counter() - started, traceback.format_exc())
        return "failed"
    finally:
        from ._keras import keras  # here: a Ray worker that only probes the study never imports TensorFlow

        keras.backend.clear_session()  # keep graphs from piling up over dozens of cells
    write_json_atomic(cell.path / CELL_FILE, {"status": "ok", "seconds": round(time.perf_counter() - started, 3)})
    return "ran"


def record_failure(cell: Cell, error: str, seconds: float, trace: str = "") -> None:
    """The cell's ``error.json``: what the results table shows, and what marks it for a retry."""
    write_json_atomic(cell.path / ERROR_FILE, {"status": "failed", "error": error, "seconds": round(seconds, 3),
                                               "traceback": trace})


def _error_stamp(cell: Cell) -> tuple[int, int] | None:
    """Identifies one write of the cell's error.json (written by rename: a new inode each time)."""
    try:
        stat = (cell.path / ERROR_FILE).stat()
    except FileNotFoundError:
        return None
    return stat.st_ino, stat.st_mtime_ns


__all__ = ["CellProgress", "RunCell", "Sweep", "record_failure", "run_cell_here"]
