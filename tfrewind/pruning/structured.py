"""Filter pruning: ``l1_filter`` (Li et al. 2017) and ``random_filter``, with physical surgery.

Per-layer ratios come from ``prune.sparsity`` (uniform), a list (one ratio per prunable conv, in
model order) or a preset (:mod:`.presets`). A layer keeps ``floor(n · (1 − ratio))`` filters
(at least one), as ``int(out_channels * (1 - p))`` in Li et al.'s code.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from .._keras import keras
from ..errors import ConfigError
from . import filters, graph
from . import wrappers as W
from .presets import preset_ratios
from .registry import PruneRequest, PruneResult, register
from .report import size_report, sparsity_report


def prunable_convs(model: keras.Model) -> list[str]:
    """Names of the convs whose filters can be removed, in model order."""
    return list(_analyse(model)[0])


def _analyse(model: keras.Model):
    try:
        return graph.analyse(model)
    except graph.Unprunable as exc:
        raise ConfigError(f"prune.method: {exc}") from None


def _some_reasons(reasons: dict[str, str], shown: int = 3) -> str:
    """The first few reasons, so that a model with 80 refused convs still gets a readable line."""
    text = "; ".join(list(reasons.values())[:shown])
    return text + (f"; and {len(reasons) - shown} more convs" if len(reasons) > shown else "")


def _check_ratio(name: str, ratio: Any) -> float:
    if not isinstance(ratio, (int, float)) or not math.isfinite(ratio) or not 0.0 <= ratio < 1.0:
        raise ConfigError(f"prune.ratios: the ratio of {name!r} must be in [0, 1), got {ratio!r}")
    return float(ratio)


def resolve_ratios(model: keras.Model, request: PruneRequest, chains, reasons) -> dict[str, float]:
    """Conv name → share of filters removed, from a uniform sparsity, a list, a dict or a preset."""
    names = list(chains)
    if not names:
        detail = _some_reasons(reasons) or "it has no Conv2D layer"
        raise ConfigError(f"prune.method {request.method}: model {model.name!r} has no conv whose "
                          f"filters can be removed ({detail})")
    spec: Sequence[float] | dict[str, float] | None = request.ratios
    key = "prune.ratios"
    if request.preset is not None:
        spec, key = preset_ratios(request.preset), "prune.preset"
    if spec is None:
        return {n: request.sparsity for n in names}
    if isinstance(spec, dict):
        for name in spec:
            if name in reasons:
                raise ConfigError(f"{key}: cannot remove filters of {reasons[name]}")
            if name not in chains:
                raise ConfigError(f"{key}: model {model.name!r} has no prunable conv {name!r}; "
                                  f"prunable: {', '.join(names)}")
        return {n: _check_ratio(n, spec.get(n, 0.0)) for n in names}
    if len(spec) != len(names):
        raise ConfigError(f"prune.ratios: got {len(spec)} ratios, but model {model.name!r} has "
                          f"{len(names)} prunable conv layers: {', '.join(names)}")
    return {n: _check_ratio(n, r) for n, r in zip(names, spec)}


def kept_count(filters_n: int, ratio: float) -> int:
    return max(1, min(filters_n, math.floor(filters_n * (1.0 - ratio) + 1e-9)))


def l1_keep(kernel: np.ndarray, n_keep: int, rng: np.random.Generator | None = None) -> np.ndarray:
    """Sorted indices of the ``n_keep`` filters with the largest L1 norm (over kh, kw, C_in)."""
    norms = np.abs(kernel).reshape(-1, kernel.shape[-1]).sum(axis=0)
    return np.sort(np.argsort(-norms, kind="stable")[:n_keep])


def random_keep(kernel: np.ndarray, n_keep: int, rng: np.random.Generator) -> np.ndarray:
    return np.sort(rng.choice(kernel.shape[-1], size=n_keep, replace=False))


def _plan(model: keras.Model, request: PruneRequest):
    """(plain model, chains, unprunable reasons, conv → ratio): every refusal comes from here, before
    any weight is touched, so :func:`check_model` can run it on an untrained model."""
    plain = W.strip(model)
    chains, reasons = _analyse(plain)
    return plain, chains, reasons, resolve_ratios(plain, request, chains, reasons)


def check_options(request: PruneRequest) -> None:
    if request.preset is not None:
        preset_ratios(request.preset)


def check_model(model: keras.Model, request: PruneRequest) -> None:
    _plan(model, request)


def _prune_filters(model: keras.Model, request: PruneRequest, choose) -> PruneResult:
    plain, chains, reasons, ratios = _plan(model, request)
    layers = graph.layers_by_name(plain)
    keep, rows = {}, []
    for index, (name, ratio) in enumerate(ratios.items()):
        kernel = layers[name].get_weights()[0]
        n = kernel.shape[-1]
        kept = choose(kernel, kept_count(n, ratio), np.random.default_rng([request.seed, index]))
        if len(kept) < n:
            keep[name] = kept
        rows.append({"layer": name, "ratio": ratio, "filters_before": int(n), "filters_after": len(kept),
                     "shape_before": list(kernel.shape), "kept_filters": [int(i) for i in kept]})
    smaller = filters.rebuild(plain, chains, keep) if keep else W.copy_model(plain)
    smaller_layers = graph.layers_by_name(smaller)
    for row in rows:
        row["shape_after"] = list(smaller_layers[row["layer"]].get_weights()[0].shape)
    return PruneResult(model=smaller, structured=True, report=_report(model, smaller, request, rows, reasons))


def _report(before, after, request: PruneRequest, rows, reasons) -> dict[str, Any]:
    removed = sum(r["filters_before"] - r["filters_after"] for r in rows)
    total = sum(r["filters_before"] for r in rows)
    sizes = size_report(before, after)
    kernels_before = sparsity_report(before)["size"]
    kernels_after = sparsity_report(after)["size"]
    return {
        "method": request.method, "structured": True, "schedule": request.schedule,
        "target_sparsity": request.sparsity, "seed": request.seed, "preset": request.preset,
        "layers": rows, "filter_ratio": removed / total if total else 0.0,
        "filters_before": total, "filters_after": total - removed,
        "sparsity": 1.0 - kernels_after / kernels_before if kernels_before else 0.0,
        "unprunable": reasons, **sizes,
    }


CHECKS = {"check_options": check_options, "check_model": check_model}


@register("l1_filter", structured=True, options=("ratios", "preset"), **CHECKS)
def l1_filter(model: keras.Model, request: PruneRequest) -> PruneResult:
    """Remove the conv filters with the smallest L1 norm (Li et al. 2017), then rebuild."""
    return _prune_filters(model, request, l1_keep)


@register("random_filter", structured=True, options=("ratios", "preset"), **CHECKS)
def random_filter(model: keras.Model, request: PruneRequest) -> PruneResult:
    """Remove randomly chosen conv filters at the same per-layer ratios (seeded)."""
    return _prune_filters(model, request, random_keep)
