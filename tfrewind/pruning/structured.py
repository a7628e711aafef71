"""Channel pruning of any functional tf_keras model: ``<criterion>_filter`` methods, with surgery.

The channel dependency graph (:mod:`.channels`) finds the groups of coupled channels; a criterion
(:mod:`.criteria`) scores them; the target (:mod:`.allocation`) says how many each keeps; the
surgery (:mod:`.surgery`) rebuilds the smaller model. Each criterion ``c`` is a method
``c_filter`` (``l1_filter`` is Li et al.'s; ``random_filter`` the paper's random baseline).

Ratios come from ``prune.sparsity`` (uniform: every prunable group loses that share of its
channels), ``prune.ratios`` (a list, one per prunable group in model order, or a dict by layer
name), a preset (:mod:`.presets`; unnamed groups keep everything), or ``prune.macs`` (a share of
the dense MACs). ``prune.ignored_layers`` keeps every channel those layers touch;
``prune.round_to`` keeps channel counts multiples of 8 or 16.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from .._keras import keras
from ..errors import ConfigError
from . import allocation, data_criteria, soft, surgery  # noqa: F401  (data_criteria registers taylor, hrank)
from . import graph as G
from . import wrappers as W
from .channels import ChannelGraph, Group, analyse
from .criteria import CRITERIA, ScoreInput, Unscorable
from .presets import preset_ratios
from .registry import PruneRequest, PruneResult, register
from .report import size_report, sparsity_report

DATA_CRITERIA = {"taylor", "hrank"}
"""Criteria that read batches of training data."""
SUFFIX = "_filter"


def criterion_of(method: str) -> str | None:
    """The criterion of a channel method (``l1_filter`` → ``l1``), or None for other methods."""
    name = method[:-len(SUFFIX)] if method.endswith(SUFFIX) else None
    return name if name in CRITERIA else None


def needs_data(method: str) -> bool:
    """Whether ``method`` scores channels on training batches (give them to ``prune(..., batches=)``)."""
    return criterion_of(method) in DATA_CRITERIA


@dataclass
class Plan:
    """Everything refused or resolved before a weight is touched."""

    plain: keras.Model
    cg: ChannelGraph
    groups: list[Group]
    """The prunable groups, ignored layers removed, in model order."""
    ratios: dict[str, float] | None
    """Group leader → ratio, or None for a MACs target."""


def _analyse(model: keras.Model) -> ChannelGraph:
    try:
        return analyse(model)
    except G.Unprunable as exc:
        raise ConfigError(f"prune.method: {exc}") from None


def _ignore(cg: ChannelGraph, names: Sequence[str]) -> None:
    """Mark the groups touching ``names`` unprunable: their channels stay whole."""
    for name in names:
        if name not in cg.out_maps:
            raise ConfigError(f"prune.ignored_layers: model {cg.model.name!r} has no layer {name!r}")
        units = set(cg.out_maps[name].tolist()).union(*[m.tolist() for m in cg.in_maps[name]])
        for group in cg.groups:
            if group.reason is None and units.intersection(group.units.tolist()):
                group.reason = f"{group.leader!r}: its channels reach {name!r}, in prune.ignored_layers"


def _some_reasons(groups: list[Group], shown: int = 3) -> str:
    """The first few reasons, so that a model with 80 refused groups still gets a readable line."""
    reasons = [g.reason for g in groups if g.reason is not None]
    text = "; ".join(reasons[:shown])
    return text + (f"; and {len(reasons) - shown} more groups" if len(reasons) > shown else "")


def resolve_ratios(cg: ChannelGraph, request: PruneRequest, groups: list[Group]) -> dict[str, float] | None:
    """Group leader → share of channels removed, from a uniform sparsity, a list, a dict or a preset."""
    if not groups:
        detail = _some_reasons(cg.groups) or "it has no Conv or Dense layer"
        raise ConfigError(f"prune.method {request.method}: model {cg.model.name!r} has no channels that can "
                          f"be removed ({detail})")
    if request.macs is not None:
        return None
    spec: Sequence[float] | dict[str, float] | None = request.ratios
    key = "prune.ratios"
    if request.preset is not None:
        spec, key = preset_ratios(request.preset), "prune.preset"
    if spec is None:
        return {g.leader: request.sparsity for g in groups}
    if isinstance(spec, dict):
        return _named_ratios(cg, groups, spec, key)
    if len(spec) != len(groups):
        raise ConfigError(f"prune.ratios: got {len(spec)} ratios, but model {cg.model.name!r} has "
                          f"{len(groups)} prunable channel groups: {', '.join(g.leader for g in groups)}")
    return {g.leader: _check_ratio(g.leader, r) for g, r in zip(groups, spec)}


def _named_ratios(cg: ChannelGraph, groups: list[Group], spec: dict[str, float], key: str) -> dict[str, float]:
    prunable = {g.leader for g in groups}
    ratios: dict[str, float] = {}
    for name, ratio in spec.items():
        group = cg.group_of(name)
        if group is None:
            raise ConfigError(f"{key}: model {cg.model.name!r} has no conv or dense layer {name!r}; prunable "
                              f"groups: {', '.join(sorted(prunable)[:12])}")
        if group.leader not in prunable:
            raise ConfigError(f"{key}: cannot remove channels of {name!r}: {group.reason}")
        if ratios.get(group.leader, ratio) != ratio:
            raise ConfigError(f"{key}: {name!r} shares its channels with {group.leader!r} (one group), "
                              f"which got another ratio")
        ratios[group.leader] = _check_ratio(name, ratio)
    return ratios


def _check_ratio(name: str, ratio: Any) -> float:
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not np.isfinite(ratio) \
            or not 0.0 <= ratio < 1.0:
        raise ConfigError(f"prune.ratios: the ratio of {name!r} must be in [0, 1), got {ratio!r}")
    return float(ratio)


def _plan(model: keras.Model, request: PruneRequest) -> Plan:
    """Every refusal comes from here, before any weight is touched, so :func:`check_model` can run
    it on an untrained model."""
    plain = W.strip(model)
    cg = _analyse(plain)
    _ignore(cg, request.ignored_layers)
    groups = cg.prunable
    return Plan(plain, cg, groups, resolve_ratios(cg, request, groups))


def _kept(plan: Plan, request: PruneRequest, criterion: str) -> dict[str, np.ndarray]:
    """Group leader → kept channel indices, by the criterion's scores at the target."""
    si = ScoreInput(plan.cg, request.seed, request.batches)
    if criterion in DATA_CRITERIA and request.batches is None:
        raise ConfigError(f"criterion {criterion}: it scores channels on training data; give a dataset "
                          "(--dataset) so that a few batches can be read")
    scores = _scores(plan, si, criterion)
    if plan.ratios is not None:
        return allocation.by_ratios(plan.cg, plan.groups, plan.ratios, scores, request.round_to)
    counting = scores
    if criterion == "random" and request.allocation == "global":
        counting = {g.leader: CRITERIA.get("l1")(si, g) for g in plan.groups}
    return allocation.for_macs(plan.cg, plan.groups, scores, request.macs, request.allocation,
                               request.round_to, counting)


def _scores(plan: Plan, si: ScoreInput, criterion: str) -> dict[str, np.ndarray]:
    """Group leader → channel scores; a group the criterion cannot score keeps all its channels."""
    scores = {}
    for group in plan.groups:
        try:
            scores[group.leader] = CRITERIA.get(criterion)(si, group)
        except Unscorable as exc:
            group.reason = str(exc)
    plan.groups = [g for g in plan.groups if g.reason is None]
    if not plan.groups:
        raise ConfigError(f"prune.method {criterion}_filter: no channel group can be scored "
                          f"({_some_reasons(plan.cg.groups)})")
    return scores


def check_options(request: PruneRequest) -> None:
    if request.preset is not None:
        preset_ratios(request.preset)


def check_model(model: keras.Model, request: PruneRequest) -> None:
    plan = _plan(model, request)
    if plan.ratios is None:  # a MACs target: reachable? (l1 stands in for data criteria)
        _kept(plan, request, "l1")


def prune_channels(model: keras.Model, request: PruneRequest, criterion: str) -> PruneResult:
    """Remove the least important channels of every prunable group and rebuild the model smaller."""
    plan = _plan(model, request)
    kept = _kept(plan, request, criterion)
    shrunk = {leader: idx for leader, idx in kept.items()
              if len(idx) < len(next(g for g in plan.groups if g.leader == leader).units)}
    removed = allocation.removed_for(plan.groups, shrunk)
    smaller = surgery.rebuild(plan.cg, removed) if removed else W.copy_model(plan.plain)
    rows = _rows(plan, kept, smaller)
    report = _report(model, smaller, request, criterion, rows, plan)
    report["rebuild_max_abs_diff"] = surgery.rebuild_error(plan.cg, removed, smaller) if removed else 0.0
    if request.schedule == "soft":  # full shape while retraining: the removed channels only zeroed
        full = W.copy_model(plan.plain)
        soft.zero_channels(analyse(full), kept)
        return PruneResult(model=full, structured=True, report={**report, "soft": True})
    return PruneResult(model=smaller, structured=True, report=report)


def _rows(plan: Plan, kept: dict[str, np.ndarray], smaller: keras.Model) -> list[dict[str, Any]]:
    after = G.layers_by_name(smaller)
    rows = []
    for group in plan.groups:
        idx = kept[group.leader]
        per_unit = allocation.channels_per_unit(plan.cg, group)
        n = len(group.units)
        rows.append({"layer": group.leader, "members": list(group.sources), "ratio": 1.0 - len(idx) / n,
                     "filters_before": n * per_unit, "filters_after": len(idx) * per_unit,
                     "shape_before": list(plan.cg.layers[group.leader].get_weights()[0].shape),
                     "shape_after": list(after[group.leader].get_weights()[0].shape),
                     "kept_filters": [int(i) for i in idx]})
    return rows


def _report(before, after, request: PruneRequest, criterion: str, rows, plan: Plan) -> dict[str, Any]:
    removed = sum(r["filters_before"] - r["filters_after"] for r in rows)
    total = sum(r["filters_before"] for r in rows)
    sizes = size_report(before, after)
    kernels_before = sparsity_report(before)["size"]
    kernels_after = sparsity_report(after)["size"]
    return {
        "method": request.method, "criterion": criterion, "structured": True, "schedule": request.schedule,
        "target_sparsity": request.sparsity, "target_macs": request.macs, "allocation": request.allocation,
        "round_to": request.round_to, "seed": request.seed, "preset": request.preset,
        "layers": rows, "filter_ratio": removed / total if total else 0.0,
        "filters_before": total, "filters_after": total - removed,
        "sparsity": 1.0 - kernels_after / kernels_before if kernels_before else 0.0,
        "macs_ratio": sizes["flops_after"] / sizes["flops_before"] if sizes["flops_before"] else 1.0,
        "unprunable": {g.leader: g.reason for g in plan.cg.groups if g.reason is not None},
        "blocking_layers": dict(plan.cg.blocked_layers), **sizes,
    }


def prunable_convs(model: keras.Model) -> list[str]:
    """Leaders of the channel groups that can be pruned, in model order."""
    return [g.leader for g in _analyse(W.strip(model)).prunable]


CHECKS = {"check_options": check_options, "check_model": check_model}
OPTIONS = ("ratios", "preset", "macs", "allocation", "round_to", "ignored_layers")


def _register(criterion: str) -> None:
    def run(model: keras.Model, request: PruneRequest) -> PruneResult:
        return prune_channels(model, request, criterion)

    run.__doc__ = f"Remove the channels with the lowest {criterion!r} scores, group by group, then rebuild."
    register(f"{criterion}{SUFFIX}", structured=True, options=OPTIONS, **CHECKS)(run)


for _name in CRITERIA.names():
    _register(_name)
