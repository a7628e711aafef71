"""The pruning-method registry and the request/result types every method shares.

Why a request object: the pipeline resolves the config once (target sparsity of this round, seed,
gradual steps, options) and every method reads the same fields; adding a method is adding one
``@register(name, ...)`` entry with a ``run(model, request) -> PruneResult`` function, the
:data:`OPTIONS` it reads, and the checks that let a pipeline refuse bad options before training.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from .._keras import keras
from ..choices import PRUNE_METHODS
from ..errors import ConfigError
from ..registry import Registry


@dataclass(frozen=True)
class PruneRequest:
    """Everything a method needs, already validated."""

    method: str
    sparsity: float
    seed: int = 0
    ratios: Sequence[float] | dict[str, float] | None = None
    """Structured: one ratio per prunable conv (list) or layer name → ratio (dict, e.g. a preset)."""
    ratios_from: str = "global_magnitude"
    schedule: str = "one_shot"
    begin_step: int = 0
    end_step: int | None = None
    frequency: int = 100
    m_by_n: tuple[int, int] = (2, 4)
    policy: str | None = None
    """``"xnnpack"``: tfmot's PruneForLatencyOnXNNPack (prune only 1×1 convs of a supported graph)."""
    preset: str | None = None
    macs: float | None = None
    """Channel methods: the share of the dense MACs to keep (instead of ratios)."""
    allocation: str = "uniform"
    """Channel methods under a MACs target: ``uniform`` ratio or ``global`` ranking."""
    round_to: int = 1
    """Channel methods: kept channel counts are multiples of this."""
    ignored_layers: tuple[str, ...] = ()
    """Channel methods: layers whose channels all stay."""
    batches: Any = None
    """Data criteria (taylor, hrank): an iterable of (x, y) training batches."""


@dataclass
class PruneResult:
    """The pruned model (wrapped for unstructured methods, physically smaller for filter methods)."""

    model: keras.Model
    structured: bool
    report: dict[str, Any] = field(default_factory=dict)


OPTIONS: dict[str, str] = {
    "ratios": "per-layer filter ratios",
    "preset": "named per-layer filter ratios, like prune.ratios",
    "ratios_from": "whose per-layer ratios random pruning copies",
    "policy": "tfmot's choice of the layers to prune",
    "m_by_n": "the m:n sparsity pattern",
    "macs": "a MACs target for channel pruning",
    "allocation": "how a MACs target is shared among channel groups",
    "round_to": "channel counts rounded to a multiple",
    "ignored_layers": "layers whose channels channel pruning keeps",
}
"""Request options only some methods read → what they are. Given to another method (set to other
than :class:`PruneRequest`'s default), they are an error: silently ignoring them would train and
report something the user did not ask for."""


@dataclass(frozen=True)
class Method:
    name: str
    structured: bool
    run: Callable[[keras.Model, PruneRequest], PruneResult]
    supports_gradual: bool = False
    options: tuple[str, ...] = ()
    """The :data:`OPTIONS` this method reads."""
    check_options: Callable[[PruneRequest], None] | None = None
    """Refuses bad option values (names of presets, policies, …) before any model is seen."""
    check_model: Callable[[keras.Model, PruneRequest], None] | None = None
    """Refuses what ``run`` would refuse about this model (ratio counts, layer names, layers the
    method cannot prune), with the same functions ``run`` uses but without pruning: cheap enough
    to run on the untrained model before original training."""


METHODS: Registry[Method] = PRUNE_METHODS
"""Declared in :mod:`tfrewind.choices` (so ``--help`` lists the methods without TensorFlow)."""


def register(name: str, structured: bool, supports_gradual: bool = False,
             options: tuple[str, ...] = (), check_options: Callable[[PruneRequest], None] | None = None,
             check_model: Callable[[keras.Model, PruneRequest], None] | None = None):
    """Decorator: register ``run`` as pruning method ``name`` (see :class:`Method` for the rest)."""
    unknown = set(options) - set(OPTIONS)
    if unknown:
        raise ValueError(f"pruning method {name!r}: unknown options {sorted(unknown)}")

    def add(run: Callable[[keras.Model, PruneRequest], PruneResult]):
        METHODS.register(name)(Method(name, structured, run, supports_gradual, tuple(options),
                                      check_options, check_model))
        return run

    return add


def check_request(method: Method, request: PruneRequest) -> None:
    """Options this method does not read are refused, then the method checks the values of its own."""
    defaults = {f.name: f.default for f in dataclasses.fields(PruneRequest)}
    for key, what in OPTIONS.items():
        if key not in method.options and getattr(request, key) != defaults[key]:
            users = [m for m in METHODS.names() if key in METHODS.get(m).options]
            raise ConfigError(f"prune.{key}: method {method.name!r} does not use it ({what}); it applies to "
                              f"{', '.join(users)}: drop it or choose one of those methods")
    if method.check_options is not None:
        method.check_options(request)
