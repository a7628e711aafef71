"""The rounds of pruning of a run and the stage directories each writes.

Why a module of its own: the pipeline runs these stages, the pre-flight checks validate each
round's request, the sparsity targets and weight rewinding read the finished rounds, and the
compare report asks which stage finishes a cell; all of them name stages the same way here.
"""

from __future__ import annotations

from .config import PruneConfig, RunConfig
from .rundir import PRUNE, RETRAIN


def prune_rounds(config: RunConfig) -> list[tuple[str, str, PruneConfig]]:
    """(prune stage, retrain stage, that round's prune config): one round unless iterative."""
    if config.prune.schedule != "iterative":
        return [(PRUNE, RETRAIN, config.prune)]
    from .pruning import METHODS, iterative_plan

    plans = iterative_plan(config.prune, METHODS.get(config.prune.method).structured)
    return [(f"{PRUNE}_r{i}", f"{RETRAIN}_r{i}", plan) for i, plan in enumerate(plans, start=1)]


def prune_stage_of(config: RunConfig, retrain_name: str) -> str | None:
    """The prune stage whose model the retrain stage ``retrain_name`` retrains (``None`` without pruning)."""
    if config.prune.method == "none":
        return None
    return next((p for p, r, _ in prune_rounds(config) if r == retrain_name), None)


__all__ = ["prune_rounds", "prune_stage_of"]
