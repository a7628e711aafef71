"""Unstructured methods on tfmot wrappers: magnitude, global_magnitude, random, m_by_n.

Flow of every method: strip any existing wrappers (remembering their masks, so iterative rounds
keep old zeros zero), wrap the Conv/Dense layers of a copy with a :class:`FixedMask` schedule,
choose masks, write them into the wrappers. tfmot then keeps applying them through training and
never recomputes them. ``gradual`` instead hands magnitude pruning to tfmot's PolynomialDecay.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._keras import keras, tf, tfmot
# tfmot's m:n layout of a kernel, which raises for kernels it cannot lay out (imported after _keras,
# which selects tf_keras before TensorFlow loads)
from tensorflow_model_optimization.python.core.sparsity.keras.pruning_utils import weights_rearrange
from ..errors import ConfigError
from . import masks as M
from . import wrappers as W
from .registry import PruneRequest, PruneResult, register
from .report import size_report, sparsity_report
from .schedules import FixedMask, gradual_schedule

POLICIES = {"xnnpack": tfmot.sparsity.keras.PruneForLatencyOnXNNPack}
"""``prune.policy`` → tfmot's pruning policy (which layers it may wrap)."""


def _select(model: keras.Model, policy: str | None):
    """Which layers to wrap: all Conv/Dense, or those tfmot's XNNPack policy allows (1×1 convs)."""
    if policy is None:
        return None
    chosen = POLICIES[policy]()
    try:
        chosen.ensure_model_supports_pruning(model)
    except ValueError as exc:
        raise ConfigError(f"prune.policy {policy}: {str(exc).splitlines()[0]}") from None
    return chosen.allow_pruning


def _layers_to_prune(model: keras.Model, request: PruneRequest) -> list[keras.layers.Layer]:
    """The plain layers :func:`_prepare` wraps (what :func:`wrappers.wrap` selects), or a one-line error."""
    select = _select(model, request.policy)
    layers = [layer for layer in W.prunable_layers(model) if select is None or select(layer)]
    if not layers:
        by = f" that prune.policy {request.policy} allows" if request.policy else ""
        raise ConfigError(f"prune.method {request.method}: model {model.name!r} has no Conv/Dense layer{by} to prune")
    return layers


def _prepare(model: keras.Model, request: PruneRequest, schedule, m_by_n=None):
    """(wrapped copy, old masks or None, kernels of the wrapped layers)."""
    old = W.masks(model) if W.is_wrapped(model) else None
    plain = W.strip(model)
    chosen = {layer.name for layer in _layers_to_prune(plain, request)}
    wrapped = W.wrap(plain, schedule, lambda layer: layer.name in chosen, sparsity_m_by_n=m_by_n)
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


def _global_zeros(kernels: dict[str, np.ndarray], sparsity: float, old) -> dict[str, int]:
    return M.zero_counts(M.global_magnitude(kernels, sparsity, old)[0])


def _layer_zeros(kernels: dict[str, np.ndarray], sparsity: float, old) -> dict[str, int]:
    return M.zero_counts(M.magnitude(kernels, {n: sparsity for n in kernels}, old))


REFERENCES = {"global_magnitude": _global_zeros, "magnitude": _layer_zeros, "uniform": _layer_zeros}
"""``prune.ratios_from`` → the zeros per layer that reference method would leave."""


def reference_zeros(kernels: dict[str, np.ndarray], request: PruneRequest, old) -> dict[str, int]:
    """Zeros per layer that the reference method (``ratios_from``) would leave."""
    return REFERENCES[request.ratios_from](kernels, request.sparsity, old)


def _m_by_n_error(name: str, m_by_n: tuple[int, int], exc: Exception) -> ConfigError:
    m, n = m_by_n
    return ConfigError(f"prune.method m_by_n: layer {name!r} cannot take {m}:{n} sparsity "
                       f"({str(exc).splitlines()[0]})")


def _check_m_by_n_layers(layers: list[keras.layers.Layer], m_by_n: tuple[int, int]) -> None:
    """tfmot lays each kernel out as rows of input channels for the m:n mask (``weights_rearrange``,
    the function its mask update calls); a kernel it cannot lay out fails at the first mask update."""
    for layer in layers:
        try:
            weights_rearrange(tf.zeros(W.kernel(layer).shape))  # only the shape counts: no variable is read
        except (ValueError, TypeError) as exc:
            raise _m_by_n_error(layer.name, m_by_n, exc) from None


# ----------------------------------------------------------------------------- checks before pruning


def _check_choice(key: str, value: Any, allowed) -> None:
    if value not in allowed:
        raise ConfigError(f"prune.{key}: {value!r} is not allowed; choose one of: {', '.join(allowed)}")


def check_options(request: PruneRequest) -> None:
    """Policy, reference and m:n pattern values (each method reads only its own; defaults pass)."""
    if request.policy is not None:
        _check_choice("policy", request.policy, POLICIES)
    _check_choice("ratios_from", request.ratios_from, REFERENCES)
    pattern = tuple(request.m_by_n)
    if len(pattern) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) for v in pattern) \
            or not 0 < pattern[0] < pattern[1]:
        raise ConfigError(f"prune.m_by_n: need two integers 0 < m < n, got {request.m_by_n}")


def check_model(model: keras.Model, request: PruneRequest) -> None:
    """What pruning this model would refuse: a policy the model does not fit, nothing to prune,
    kernels the m:n pattern cannot lay out."""
    layers = _layers_to_prune(W.strip(model), request)
    if request.method == "m_by_n":
        _check_m_by_n_layers(layers, request.m_by_n)


CHECKS = {"check_options": check_options, "check_model": check_model}


@register("magnitude", structured=False, supports_gradual=True, options=("policy",), **CHECKS)
def magnitude(model: keras.Model, request: PruneRequest) -> PruneResult:
    """Layer-wise magnitude: every Conv/Dense layer at the target sparsity."""
    if request.schedule == "gradual":
        return _gradual(model, request)
    wrapped, old, kernels = _prepare(model, request, FixedMask(request.sparsity))
    W.set_masks(wrapped, M.magnitude(kernels, {n: request.sparsity for n in kernels}, old))
    return _result(model, wrapped, request)


@register("global_magnitude", structured=False, options=("policy",), **CHECKS)
def global_magnitude(model: keras.Model, request: PruneRequest) -> PruneResult:
    """One magnitude threshold across all Conv/Dense layers (the paper's unstructured setting)."""
    wrapped, old, kernels = _prepare(model, request, FixedMask(request.sparsity))
    new, threshold = M.global_magnitude(kernels, request.sparsity, old)
    W.set_masks(wrapped, new, thresholds={n: threshold for n in new})
    return _result(model, wrapped, request, threshold=threshold)


@register("random", structured=False, options=("policy", "ratios_from"), **CHECKS)
def random(model: keras.Model, request: PruneRequest) -> PruneResult:
    """Random masks with exactly the per-layer ratios of prune.ratios_from (seeded)."""
    wrapped, old, kernels = _prepare(model, request, FixedMask(request.sparsity))
    zeros = reference_zeros(kernels, request, old)
    W.set_masks(wrapped, M.random(kernels, zeros, request.seed, old))
    return _result(model, wrapped, request, ratios_from=request.ratios_from)


@register("m_by_n", structured=False, options=("policy", "m_by_n"), **CHECKS)
def m_by_n(model: keras.Model, request: PruneRequest) -> PruneResult:
    """tfmot's m-by-n structured sparsity (2:4 by default) along input channels.

    tfmot computes the masks itself (its m_by_n rule fires at pruning step 1): we run that step now.

    tfmot fires again at the first training step, on the already-masked kernel, which gives the
    same mask back; the FixedMask schedule stops any other update.
    """
    m, n = request.m_by_n
    wrapped, old, _ = _prepare(model, request, FixedMask(m / n), m_by_n=(m, n))
    for name, wrapper in W.wrappers(wrapped).items():
        try:
            wrapper.pruning_step.assign(1)
            wrapper.pruning_obj.conditional_mask_update()
        except (ValueError, TypeError) as exc:
            raise _m_by_n_error(name, (m, n), exc) from None
        finally:
            wrapper.pruning_step.assign(-1)
    if old:
        W.set_masks(wrapped, {n_: W.masks(wrapped)[n_] * old[n_] for n_ in old})
    W.apply_masks(wrapped)
    return _result(model, wrapped, request, m_by_n=[m, n])
