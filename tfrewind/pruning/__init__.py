"""Pruning: unstructured masks on tfmot wrappers, and filter pruning with physical surgery.

The API the pipeline calls::

    result = prune(model, config.prune, seed)         # one pruning step → PruneResult
    model.fit(..., callbacks=pruning_callbacks(result.model))
    plain = strip(result.model)                        # for export

``prune`` performs one pruning step. ``gradual`` hands pruning to tfmot during the next training
(pass ``end_step``); ``iterative`` is driven by the caller, one ``prune`` per round with the
configs from :func:`iterative_plan` (an already-pruned model keeps its zeros). ``soft`` (channel
methods) returns the full-shape model with the planned channels zeroed; retraining re-selects and
zeroes them every epoch (:class:`SoftFilterPruning`) and removes them at its end (:func:`remove_zeroed`).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from .._keras import keras
from ..choices import PRUNING_SCHEDULES
from ..config import PruneConfig
from ..errors import ConfigError
from ..keras3.translate import as_tf_keras
from . import structured, unstructured  # noqa: F401  (register the methods)
from .surgery import compose_kept, kept_filters, rewind_structured
from .flops import count_nonzero, count_params, macs_per_layer, sparse_macs, total_macs
from .presets import PRESETS
from .registry import METHODS, Method, PruneRequest, PruneResult, check_request
from .report import size_report, sparsity_report
from .schedules import FixedMask, gradual_schedule, gradual_steps, iterative_plan, iterative_targets, round_fraction
from .data_criteria import SCORE_BATCHES
from .soft import SOFT_STATE_FILE, SoftFilterPruning, remove_zeroed
from .structured import needs_data, prunable_convs
from .wrappers import is_wrapped, masks, prunable_layers, pruning_callbacks, strip, wrap, wrappers


def _check_sparsity(value: Any, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not 0.0 < value < 1.0:
        raise ConfigError(f"{key}: must be strictly between 0 and 1, got {value!r}")
    return float(value)


def make_request(config: PruneConfig, seed: int, target_sparsity: float | None = None,
                 **options: Any) -> tuple[Method, PruneRequest]:
    """Validate ``config`` (+ overrides) into the method to run and its :class:`PruneRequest`."""
    method = METHODS.get(config.method)
    key = "target_sparsity" if target_sparsity is not None else "prune.sparsity"
    sparsity = _check_sparsity(config.sparsity if target_sparsity is None else target_sparsity, key)
    if config.schedule not in PRUNING_SCHEDULES:
        raise ConfigError(f"prune.schedule: {config.schedule!r} is not allowed; choose one of: "
                          f"{', '.join(PRUNING_SCHEDULES)}")
    if config.schedule == "soft" and not method.structured:
        channel = [m for m in METHODS.names() if METHODS.get(m).structured]
        raise ConfigError(f"prune.schedule soft: zeroes channels while retraining and removes them at its end, "
                          f"so it works with channel methods ({', '.join(channel)}), not {config.method!r}")
    if config.schedule == "gradual" and not method.supports_gradual:
        gradual = [m for m in METHODS.names() if METHODS.get(m).supports_gradual]
        raise ConfigError(f"prune.schedule gradual: works with method {', '.join(gradual)}, "
                          f"not {config.method!r} (use one_shot or iterative)")
    ratios = config.ratios
    if isinstance(ratios, (list, tuple, dict)):
        items = ratios.items() if isinstance(ratios, dict) else enumerate(ratios)
        for i, r in items:
            if isinstance(r, bool) or not isinstance(r, (int, float)) or not math.isfinite(r) \
                    or not 0.0 <= r < 1.0:
                raise ConfigError(f"prune.ratios[{i}]: each ratio must be in [0, 1), got {r!r}")
    if config.macs is not None and config.schedule not in ("one_shot", "soft"):
        raise ConfigError(f"prune.macs: a MACs target works with the one_shot and soft schedules, not "
                          f"{config.schedule!r}")
    request = PruneRequest(method=config.method, sparsity=sparsity, seed=int(seed), ratios=ratios,
                           ratios_from=config.ratios_from, schedule=config.schedule, macs=config.macs,
                           allocation=config.allocation, round_to=config.round_to,
                           ignored_layers=tuple(config.ignored_layers or ()), **options)
    check_request(method, request)
    return method, request


def prune(model: keras.Model, config: PruneConfig, seed: int, target_sparsity: float | None = None,
          *, begin_step: int = 0, end_step: int | None = None, frequency: int = 100,
          m_by_n: tuple[int, int] = (2, 4), policy: str | None = None,
          preset: str | None = None, layer_ratios: dict[str, float] | None = None,
          batches: Any = None) -> PruneResult:
    """Prune ``model`` (never modified) once with ``config.method``; see :class:`PruneResult`.

    ``model``: tf_keras, or Keras 3 (translated to tf_keras and checked first, :mod:`tfrewind.keras3`).

    ``target_sparsity`` overrides ``config.sparsity`` (iterative rounds). ``begin_step``/
    ``end_step``/``frequency``: tfmot steps of the ``gradual`` schedule. ``m_by_n``: the pattern of
    the ``m_by_n`` method. ``policy="xnnpack"``: tfmot's PruneForLatencyOnXNNPack (1×1 convs only).
    ``preset``: named filter ratios (:data:`PRESETS`); ``layer_ratios``: conv name → ratio (unnamed
    convs keep all filters); both for filter methods and overriding ``config.ratios``. A method
    refuses an option it does not use (:data:`.registry.OPTIONS`). ``batches``: training batches
    for the channel criteria that read data (``taylor``, ``hrank``).
    """
    method, request = _request(config, seed, target_sparsity, begin_step=begin_step, end_step=end_step,
                               frequency=frequency, m_by_n=m_by_n, policy=policy, preset=preset,
                               layer_ratios=layer_ratios, batches=batches)
    return method.run(as_tf_keras(model), request)


def check(model: keras.Model, config: PruneConfig, seed: int, target_sparsity: float | None = None,
          **options: Any) -> None:
    """Raise what :func:`prune` with the same arguments (and keywords) would refuse, without pruning.

    Why: a pipeline calls this on the untrained (or pretrained) model before original training, so
    a ratio count, layer name, preset or policy that does not fit the model fails in seconds, not
    after hours. The method resolves its options on the model with the functions its pruning uses.
    """
    method, request = _request(config, seed, target_sparsity, **options)
    if method.check_model is not None:
        method.check_model(model, request)


def _request(config: PruneConfig, seed: int, target_sparsity: float | None = None, *, begin_step: int = 0,
             end_step: int | None = None, frequency: int = 100, m_by_n: tuple[int, int] = (2, 4),
             policy: str | None = None, preset: str | None = None,
             layer_ratios: dict[str, float] | None = None, batches: Any = None) -> tuple[Method, PruneRequest]:
    if layer_ratios is not None:
        config = dataclasses.replace(config, ratios=dict(layer_ratios))
    return make_request(config, seed, target_sparsity, begin_step=begin_step, end_step=end_step,
                        frequency=frequency, m_by_n=tuple(m_by_n), policy=policy, preset=preset,
                        batches=batches)


__all__ = [
    "METHODS", "PRESETS", "SCORE_BATCHES", "SOFT_STATE_FILE", "FixedMask", "Method", "PruneRequest", "PruneResult",
    "SoftFilterPruning",
    "check", "compose_kept", "count_nonzero", "count_params", "gradual_schedule", "gradual_steps", "is_wrapped",
    "iterative_plan", "iterative_targets", "kept_filters", "macs_per_layer", "make_request", "masks", "needs_data",
    "prunable_convs", "prunable_layers", "prune", "pruning_callbacks", "remove_zeroed", "rewind_structured",
    "round_fraction", "size_report", "sparse_macs", "sparsity_report", "strip", "total_macs", "wrap", "wrappers",
]
