"""The files of one compare cell, and when a cell counts as finished.

Why a module of its own: the sweep (:mod:`tfrewind.compare`) writes these files and skips finished
cells; the report (:mod:`tfrewind.compare_report`) only reads them. Both need the same definition
of "finished", and the report must not import the sweep, so the layout lives below both::

    OUT/cells/<cell>/<last stage>/metrics.json   the cell is finished (and skipped on a re-run)
    OUT/cells/<cell>/cell.json                   wall time of the finished cell
    OUT/cells/<cell>/error.json                  why the cell failed (removed when it is retried)
"""

from __future__ import annotations

from .compare_config import Cell
from .config import RunConfig
from .io import read_json
from .rounds import prune_rounds
from .rundir import EXPORT

CELL_FILE = "cell.json"
ERROR_FILE = "error.json"


def cell_final_stages(config: RunConfig) -> list[str]:
    """The stages whose metrics.json must exist for the cell to count as finished."""
    stages = [prune_rounds(config)[-1][1]]
    if config.export.format != "none":
        stages.append(EXPORT)
    return stages


def cell_done(cell: Cell) -> bool:
    """A finished cell: every final stage wrote its metrics.json."""
    return all((cell.path / stage / "metrics.json").exists() for stage in cell_final_stages(cell.config))


def cell_error(cell: Cell) -> str:
    """The first line of the cell's recorded error, or ``""`` if it has none."""
    path = cell.path / ERROR_FILE
    return read_json(path)["error"].splitlines()[0] if path.exists() else ""


__all__ = ["CELL_FILE", "ERROR_FILE", "cell_done", "cell_error", "cell_final_stages"]
