"""Unstructured methods on tfmot wrappers: magnitude, global_magnitude, random, m_by_n.

Flow of every method: strip any existing wrappers (remembering their masks, so iterative rounds
keep old zeros zero), wrap the Conv/Dense layers of a copy with a :class:`FixedMask` schedule,
choose masks, write them into the wrappers. tfmot then keeps applying them through training and
never recomputes them. ``gradual`` instead hands magnitude pruning to tfmot's PolynomialDecay.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._keras import keras, tfmot
from ..errors import ConfigError
from . import masks as M
from . import wrappers as W
from .registry import PruneRequest, PruneResult, register
from .report import size_report, sparsity_report
from .schedules import FixedMask, gradual_schedule

POLICIES = ("xnnpack",)


def _select(model: keras.Model, policy: str | None):
    """Which layers to wrap: all Conv/Dense, or those tfmot's XNNPack policy allows (1×1 convs)."""
    if policy is None:
        return None
    if policy != "xnnpack":
        raise ConfigError(f"prune.policy: {policy!r} is not allowed; choose one of: {', '.join(POLICIES)}")
    chosen = tfmot.sparsity.keras.PruneForLatencyOnXNNPack()
    try:
        chosen.ensure_model_supports_pruning(model)
    except ValueError as exc:
        raise ConfigError(f"prune.policy xnnpack: {str(exc).splitlines()[0]}") from None
    return chosen.allow_pruning


def _prepare(model: keras.Model, request: PruneRequest, schedule, m_by_n=None):
    """(wrapped copy, old masks or None, kernels of the wrapped layers)."""
    old = W.masks(model) if W.is_wrapped(model) else None
    plain = W.strip(model)
    wrapped = W.wrap(plain, schedule, _select(plain, request.policy), sparsity_m_by_n=m_by_n)
    names = set(W.wrappers(wrapped))
    kernels = {n: k for n, k in W.effective_kernels(wrapped).items() if n in names}
    if old is not None:
        old = {n: m for n, m in old.items() if n in names}
    return wrapped, old, kernels


def _result(before: keras.Model, after: keras.Model, request: PruneRequest, **extra: Any) -> PruneResult:
    sparsity = sparsity_report(after)
    report = {
        "method": request.method, "structured": False, "schedule": request.schedule,
        "target_sparsity": request.sparsity, "seed": request.seed,
        "layers": sparsity["layers"], "sparsity": sparsity["sparsity"],
        **size_report(before, after), **extra,
    }
    return PruneResult(model=after, structured=False, report=report)


def _gradual(model: keras.Model, request: PruneRequest) -> PruneResult:
    if request.end_step is None:
        raise ConfigError("prune.schedule gradual: the number of training steps (end_step) is needed")
    schedule = gradual_schedule(request.sparsity, request.begin_step, request.end_step, request.frequency)
    wrapped, old, _ = _prepare(model, request, schedule)
    if old:
        W.set_masks(wrapped, old)
    return _result(model, wrapped, request, begin_step=request.begin_step, end_step=request.end_step,
                   frequency=request.frequency)


@register("magnitude", structured=False, supports_gradual=True,
          description="layer-wise magnitude: every Conv/Dense layer at the target sparsity")
def magnitude(model: keras.Model, request: PruneRequest) -> PruneResult:
    if request.schedule == "gradual":
        return _gradual(model, request)
    wrapped, old, kernels = _prepare(model, request, FixedMask(request.sparsity))
    W.set_masks(wrapped, M.magnitude(kernels, {n: request.sparsity for n in kernels}, old))
    return _result(model, wrapped, request)


@register("global_magnitude", structured=False,
          description="one magnitude threshold across all Conv/Dense layers (the paper's unstructured setting)")
def global_magnitude(model: keras.Model, request: PruneRequest) -> PruneResult:
    wrapped, old, kernels = _prepare(model, request, FixedMask(request.sparsity))
    new, threshold = M.global_magnitude(kernels, request.sparsity, old)
    W.set_masks(wrapped, new, thresholds={n: threshold for n in new})
    return _result(model, wrapped, request, threshold=threshold)


REFERENCES = ("global_magnitude", "magnitude", "uniform")


def reference_zeros(kernels: dict[str, np.ndarray], request: PruneRequest, old) -> dict[str, int]:
    """Zeros per layer that the reference method (``ratios_from``) would leave."""
    ref = request.ratios_from
    if ref == "global_magnitude":
        return M.zero_counts(M.global_magnitude(kernels, request.sparsity, old)[0])
    if ref in ("magnitude", "uniform"):
        return M.zero_counts(M.magnitude(kernels, {n: request.sparsity for n in kernels}, old))
    raise ConfigError(f"prune.ratios_from: {ref!r} is not allowed; choose one of: {', '.join(REFERENCES)}")


@register("random", structured=False,
          description="random masks with exactly the per-layer ratios of prune.ratios_from (seeded)")
def random(model: keras.Model, request: PruneRequest) -> PruneResult:
    wrapped, old, kernels = _prepare(model, request, FixedMask(request.sparsity))
    zeros = reference_zeros(kernels, request, old)
    W.set_masks(wrapped, M.random(kernels, zeros, request.seed, old))
    return _result(model, wrapped, request, ratios_from=request.ratios_from)


@register("m_by_n", structured=False,
          description="tfmot's m-by-n structured sparsity (2:4 by default) along input channels")
def m_by_n(model: keras.Model, request: PruneRequest) -> PruneResult:
    """tfmot computes the masks itself (its m_by_n rule fires at pruning step 1): we run that step now.

    tfmot fires again at the first training step, on the already-masked kernel, which gives the
    same mask back; the FixedMask schedule stops any other update.
    """
    m, n = request.m_by_n
    if not (isinstance(m, int) and isinstance(n, int) and 0 < m < n):
        raise ConfigError(f"prune.m_by_n: need integers 0 < m < n, got {request.m_by_n}")
    wrapped, old, _ = _prepare(model, request, FixedMask(m / n), m_by_n=(m, n))
    for name, wrapper in W.wrappers(wrapped).items():
        try:
            wrapper.pruning_step.assign(1)
            wrapper.pruning_obj.conditional_mask_update()
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"prune.method m_by_n: layer {name!r} cannot take {m}:{n} sparsity "
                              f"({str(exc).splitlines()[0]})") from None
        finally:
            wrapper.pruning_step.assign(-1)
    if old:
        W.set_masks(wrapped, {n_: W.masks(wrapped)[n_] * old[n_] for n_ in old})
    W.apply_masks(wrapped)
    return _result(model, wrapped, request, m_by_n=[m, n])
