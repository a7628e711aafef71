"""The pruning-method registry and the request/result types every method shares.

Why a request object: the pipeline resolves the config once (target sparsity of this round, seed,
gradual steps, options) and every method reads the same fields; adding a method is adding one
``@METHODS.register(name)`` entry with a ``run(model, request) -> PruneResult`` function.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from .._keras import keras
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


@dataclass
class PruneResult:
    """The pruned model (wrapped for unstructured methods, physically smaller for filter methods)."""

    model: keras.Model
    structured: bool
    report: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Method:
    name: str
    structured: bool
    run: Callable[[keras.Model, PruneRequest], PruneResult]
    supports_gradual: bool = False
    description: str = ""


METHODS: Registry[Method] = Registry("pruning method")


def register(name: str, structured: bool, supports_gradual: bool = False, description: str = ""):
    """Decorator: register ``run`` as pruning method ``name``."""

    def add(run: Callable[[keras.Model, PruneRequest], PruneResult]):
        METHODS.register(name)(Method(name, structured, run, supports_gradual, description))
        return run

    return add
