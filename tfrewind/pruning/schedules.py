"""When to prune: one-shot (fixed masks), gradual (tfmot's PolynomialDecay) and iterative rounds.

Why our own tfmot ``PruningSchedule``: tfmot recomputes masks by per-layer magnitude whenever its
schedule says so. Masks we choose ourselves (global magnitude, random, a one-shot magnitude mask
computed before training) must never be overwritten, so :class:`FixedMask` always answers "don't
prune". It lives in :mod:`tfrewind.serialization` (registered keras-serializable under package
``tfrewind``), where the model loader finds it without importing pruning.
"""

from __future__ import annotations

import dataclasses

from .._keras import tfmot
from ..config import PruneConfig
from ..errors import ConfigError
from ..serialization import FixedMask  # noqa: F401  (re-exported: pruning.FixedMask)


def gradual_schedule(target: float, begin_step: int, end_step: int, frequency: int = 100,
                     initial_sparsity: float = 0.0, power: float = 3.0):
    """tfmot's PolynomialDecay (Zhu & Gupta 2017) from ``initial_sparsity`` to ``target``.

    tfmot counts steps from 1 (its step counter is incremented before the first mask update), so
    ``begin_step=0`` prunes first at step ``frequency`` — or at step 1 when ``frequency`` is 1.
    """
    if end_step <= begin_step:
        raise ConfigError(f"gradual pruning: end_step ({end_step}) must be after begin_step ({begin_step})")
    if frequency < 1:
        raise ConfigError(f"gradual pruning: frequency must be ≥ 1, got {frequency}")
    return tfmot.sparsity.keras.PolynomialDecay(
        initial_sparsity=float(initial_sparsity), final_sparsity=float(target),
        begin_step=int(begin_step), end_step=int(end_step), power=float(power),
        frequency=int(frequency))


def gradual_steps(budget_steps: int, steps_per_epoch: int) -> dict[str, int]:
    """tfmot's ``begin_step``/``end_step``/``frequency`` for gradual pruning during a retraining of
    ``budget_steps``: prune twice per epoch and reach the target by 75 % of the budget.

    tfmot prunes only at multiples of the frequency up to ``end_step``: end on one, or it stops short.
    """
    frequency = max(1, steps_per_epoch // 2)
    end_step = frequency * max(1, -(-int(0.75 * budget_steps) // frequency))
    if end_step > budget_steps:
        end_step = frequency * max(1, budget_steps // frequency)
    return {"begin_step": 0, "end_step": end_step, "frequency": frequency}


def iterative_targets(final: float, rounds: int) -> list[float]:
    """Cumulative sparsity after each round, geometric: every round keeps the same share of weights.

    After round ``r`` a fraction ``(1 - final) ** (r / rounds)`` of the weights remains, so the
    last target is exactly ``final`` (as in Han et al. / Frankle & Carbin iterative pruning).
    """
    if rounds < 1:
        raise ConfigError(f"prune.rounds: must be a positive integer, got {rounds}")
    targets = [1.0 - (1.0 - final) ** (r / rounds) for r in range(1, rounds + 1)]
    targets[-1] = float(final)
    return targets


def round_fraction(final: float, rounds: int) -> float:
    """Share of the *remaining* filters one round removes so ``rounds`` rounds remove ``final``."""
    if rounds < 1:
        raise ConfigError(f"prune.rounds: must be a positive integer, got {rounds}")
    return 1.0 - (1.0 - final) ** (1.0 / rounds)


def iterative_plan(config: PruneConfig, structured: bool) -> list[PruneConfig]:
    """One one-shot :class:`PruneConfig` per round of iterative pruning.

    Why different meanings: an unstructured round re-prunes the same (masked) model, so its
    targets are cumulative sparsities and old zeros stay zero. A structured round prunes a
    physically smaller model, so its ratios are relative to the filters left, compounding to the
    final ratios.
    """
    rounds = config.rounds
    if structured and config.preset is not None and rounds > 1:
        # A preset's ratios are of the dense model: applied in every round they would compound
        # (two rounds of 50 % remove 75 %), and splitting them per round is what prune.ratios does.
        raise ConfigError(f"prune.preset: {config.preset!r} gives the final ratios of one-shot pruning; "
                          "with prune.schedule iterative give them as prune.ratios (split over the rounds)")
    plans = []
    for r in range(rounds):
        if structured:
            sparsity = round_fraction(config.sparsity, rounds)
            ratios = None if config.ratios is None else [round_fraction(x, rounds) for x in config.ratios]
        else:
            sparsity, ratios = iterative_targets(config.sparsity, rounds)[r], config.ratios
        plans.append(dataclasses.replace(config, sparsity=sparsity, ratios=ratios, schedule="one_shot"))
    return plans

