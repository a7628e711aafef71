"""``tfrewind compare``: one original training, then a grid of pruning methods × retraining schedules ×
budgets × seeds, each cell one run directory; resumable, with the results table and plots at the end.

Layout of ``OUT``::

    OUT/compare.yaml              the resolved compare config (what ``tfrewind report OUT`` reads)
    OUT/original_run/             the dense run, trained once and shared by every cell
    OUT/cells/<cell>/             one run directory per cell (train.pretrained = OUT/original_run)
    OUT/cells/<cell>/cell.json    wall time of a finished cell; error.json if the cell failed
    OUT/claims/<cell>/            who runs the cell now (see compare_claims)
    OUT/results.csv, results.md, accuracy_vs_budget.png, schedules_b<E>.png   (see compare_report)

Why one shared original: the paper's question is how to *retrain* a pruned network, so every cell
starts from the same dense weights and recorded schedule; the seeds vary what pruning and
retraining randomise (random masks/filters, data order, augmentation). Seed variance of original
training is therefore *not* in the reported std — it is cheaper, and isolates the retraining effect.
A cell is finished when its last stage's ``metrics.json`` exists: a re-run skips it, so an
interrupted sweep resumes; a failing cell is recorded (``error.json``) and the others still run.
Where the cells run is ``--executor``: ``local`` one after the other in this process, ``ray`` as Ray
tasks (:mod:`tfrewind.compare_ray`). Either way each cell is claimed first, so compare processes
sharing ``OUT`` never run one cell twice, and one waits while another trains the shared original
(:mod:`tfrewind.compare_sweep`, :mod:`tfrewind.compare_claims`).
The study's config (grid) is :mod:`tfrewind.compare_config`, its checks
:mod:`tfrewind.compare_validate`; the cell files and when a cell is finished,
:mod:`tfrewind.compare_cells`; the tables and plots, :mod:`tfrewind.compare_report`.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import yaml
from tqdm import tqdm

from .choices import EXECUTORS
from .compare_cells import cell_done, cell_error
from .compare_claims import Claims
from .compare_config import CELLS_DIR, ORIGINAL_DIR, Cell, CompareConfig, GridConfig, MethodSpec
from .compare_report import write_results
from .compare_sweep import RunCell, Sweep, run_cell_here
from .compare_validate import load_compare_config, validate_compare
from .config import RunConfig
from .errors import ConfigError
from .io import write_text_atomic
from .pipeline import train
from .rundir import CONFIG_FILE, ORIGINAL, RunDir

COMPARE_FILE = "compare.yaml"
WAIT_SECONDS = 5.0
"""How often a process waiting for another's original training looks again."""


# ----------------------------------------------------------------------------- running


@dataclass
class CompareResult:
    out: Path
    statuses: dict[str, str]
    """cell name → ``ran``, ``skipped`` (finished before), ``failed`` or ``elsewhere`` (run, or running, by
    another compare process on the same study)."""
    rows: list[dict[str, Any]]
    files: list[Path]


def check_resumable(config: CompareConfig) -> None:
    """Refuse, before training, directories made with other settings (names the fields that differ)."""
    dirs = [(config.original_config(), config.out_dir / ORIGINAL_DIR)] if config.trains_original else []
    dirs += [(cell.config, cell.path) for cell in config.cells()]
    for run_config, path in dirs:
        if (path / CONFIG_FILE).exists():
            RunDir(path).check_same_config(run_config)


def run_compare(config: CompareConfig, verbose: int = 0, progress: bool = True, stream: TextIO | None = None,
                run_cell: RunCell | None = None) -> CompareResult:
    """Train the original once, run every unfinished cell, then write the results (see module doc).

    ``verbose`` is Keras' per-epoch output (0: quiet); ``progress`` prints a bar over cells to
    ``stream`` (stderr). ``config.executor`` says where the cells run (:data:`~tfrewind.choices.EXECUTORS`).
    ``run_cell(config, verbose)`` replaces :func:`tfrewind.pipeline.train` in the local executor (tests).
    """
    stream = stream if stream is not None else sys.stderr
    validate_compare(config)
    check_resumable(config)
    out = config.out_dir
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / COMPARE_FILE, yaml.safe_dump(config.to_dict(), sort_keys=False))
    cells = config.cells()
    bar = Progress(len(cells), stream, enabled=progress)
    claims = Claims(out)
    sweep = Sweep(config, cells, claims, bar, verbose, run_cell or train)
    try:
        with EXECUTORS.get(config.executor.name)(config, verbose) as executor:  # a bad cluster fails here, first
            train_original(config, claims, bar, executor.train, verbose)
            bar.start(sum(not cell_done(c) for c in cells))
            executor.run(sweep)
    except KeyboardInterrupt:
        bar.close()
        bar.note("interrupted: writing results of the finished cells; re-run the same command to resume")
        write_results(config)
        raise
    finally:
        claims.close()
        bar.close()
    rows, files = write_results(config)
    bar.finish()
    elsewhere = [name for name, status in sweep.statuses.items() if status == "elsewhere"]
    if elsewhere:
        bar.note(f"{len(elsewhere)} cell(s) ran in another compare process on this study; the results include "
                 f"those finished by now (tfrewind report {out} rebuilds them later)")
    return CompareResult(out, sweep.statuses, rows, files)


def train_original(config: CompareConfig, claims: Claims, bar: "Progress", run: RunCell, verbose: int) -> None:
    """Train the shared dense run with ``run`` unless it is finished — or wait while another process trains it."""
    done = config.original_dir / ORIGINAL / "metrics.json"
    waiting = False
    while config.trains_original and not done.exists():
        if claims.take(ORIGINAL_DIR):
            try:
                if not done.exists():
                    bar.note(f"original training ({config.base.train.epochs} epochs) → {config.original_dir}")
                    started = time.perf_counter()
                    run(config.original_config(), verbose)
                    bar.note(f"original training done in {tqdm.format_interval(time.perf_counter() - started)}")
            finally:
                claims.release(ORIGINAL_DIR)
            return
        if not waiting:
            bar.note(f"waiting for the original training running in {claims.holder(ORIGINAL_DIR) or 'another process'}")
            waiting = True
        time.sleep(WAIT_SECONDS)


class LocalExecutor:
    """Today's runner: the original and then the cells one after the other, in this process."""

    def __init__(self, config: CompareConfig, verbose: int = 0):
        self.config = config

    def __enter__(self) -> "LocalExecutor":
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    @staticmethod
    def train(config: RunConfig, verbose: int) -> None:
        train(config, verbose=verbose)

    @staticmethod
    def run(sweep: Sweep) -> None:
        for cell in sweep.cells:
            if sweep.take(cell):
                status = run_cell_here(cell, sweep.run_cell or train, sweep.verbose)
                sweep.finish(cell, status, cell_error(cell))


EXECUTORS.register("local")(LocalExecutor)


@EXECUTORS.register("ray")
def _ray_executor(config: CompareConfig, verbose: int = 0) -> Any:
    from .compare_ray import RayExecutor  # Ray is an optional extra: imported only when asked for

    return RayExecutor(config, verbose)


def report(out: str | Path) -> tuple[list[dict[str, Any]], list[Path]]:
    """``tfrewind report OUT``: rebuild results.csv/.md and the plots from OUT's run directories."""
    path = Path(out) / COMPARE_FILE
    if not path.exists():
        raise ConfigError(f"{str(out)!r} is not a compare directory (no {COMPARE_FILE}); "
                          "give the --out of a tfrewind compare run")
    return write_results(load_compare_config(path, {"out": str(out)}))


# ----------------------------------------------------------------------------- progress


class Progress:
    """A tqdm bar over cells on stderr, ``|#####     | 12/72 cell-name …  elapsed 03:10  ETA 14:02``,
    with one line per finished or failed cell printed above it.

    Why tqdm and not ``click.progressbar``: click draws nothing but its label when stderr is not a
    terminal (a sweep logged to a file would lose its progress and ETA) and cannot print a line above
    the bar; tqdm does both (and tensorflow-datasets already installs it). Cells finished by an
    earlier run start the bar (``initial``) and cost nothing: with ``smoothing=0`` tqdm's ETA is the
    cells left divided by the cells finished per second so far — with cells running side by side on
    Ray, that rate includes the parallelism. Cells another compare process runs leave the total.
    """

    FORMAT = "|{bar:24}| {n_fmt}/{total_fmt} {desc}  elapsed {elapsed}  ETA {remaining}"

    def __init__(self, total: int, stream: TextIO, enabled: bool = True):
        self.total, self.stream, self.enabled = total, stream, enabled
        self.bar: tqdm | None = None
        self.ran = self.skipped = self.failed = self.elsewhere = 0
        self.started = time.perf_counter()
        self.began: dict[str, float] = {}  # cells running now (several at once on Ray) → start time

    def start(self, todo: int) -> None:
        """Open the bar with the cells already finished counted as done."""
        if self.total - todo:
            self.note(f"{self.total - todo} of {self.total} cells already finished: skipped")
        self.started = time.perf_counter()
        self.bar = tqdm(total=self.total, initial=self.total - todo, file=self.stream, disable=not self.enabled,
                        bar_format=self.FORMAT, smoothing=0, mininterval=0, miniters=1, ascii=True, dynamic_ncols=False)

    def skip(self) -> None:
        self.skipped += 1

    def drop(self, name: str, why: str) -> None:
        """A cell another compare process runs: out of this bar's total (and of its ETA)."""
        self.elsewhere += 1
        self.note(f"{name}: {why}, not run here", prefix=False)
        if self.bar is not None:
            self.bar.total -= 1
            self.bar.refresh()

    def begin(self, name: str) -> None:
        self.began[name] = time.perf_counter()
        if self.bar is not None:
            more = f" (+{len(self.began) - 1} running)" if len(self.began) > 1 else ""
            self.bar.set_description_str(f"{name} …{more}")

    def end(self, name: str, status: str, error: str = "") -> None:
        self.ran += 1
        took = tqdm.format_interval(time.perf_counter() - self.began.pop(name, time.perf_counter()))
        if status == "failed":
            self.failed += 1
            self.note(f"{name} FAILED after {took}: {error}", prefix=False)
        else:
            self.note(f"{name} done in {took}", prefix=False)
        if self.bar is not None:
            self.bar.set_description_str(name, refresh=False)
            self.bar.update(1)

    def finish(self) -> None:
        """Close the bar and print the summary line."""
        self.close()
        elsewhere = f", {self.elsewhere} left to other processes" if self.elsewhere else ""
        self.note(f"{self.ran} cells run ({self.failed} failed), {self.skipped} skipped{elsewhere}, "
                  f"in {tqdm.format_interval(time.perf_counter() - self.started)}")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def note(self, text: str, prefix: bool = True) -> None:
        """A line above the bar (tqdm clears and redraws it)."""
        if self.enabled:
            tqdm.write(f"tfrewind compare: {text}" if prefix else text, file=self.stream)


__all__ = ["CELLS_DIR", "COMPARE_FILE", "ORIGINAL_DIR", "Cell", "CompareConfig", "CompareResult", "GridConfig",
           "MethodSpec", "Progress", "cell_done", "check_resumable", "load_compare_config", "report", "run_compare",
           "validate_compare"]
