"""How many channels each group keeps: fixed ratios, or a MACs target; then which ones, by score.

Ratios: one share per prunable group (uniform ``prune.sparsity``, a list in group order, a dict
by layer name, or a preset). A group of ``n`` channels keeps ``floor(n · (1 − ratio))``, at least
one, as ``int(out_channels * (1 - p))`` in Li et al.'s code; ``round_to`` then rounds the kept
*channels* up to a multiple (8 or 16 suit SIMD kernels).

A MACs target (``prune.macs``: the share of the dense MACs to keep) is solved by bisection on one
number: the uniform ratio of every group (``allocation: uniform``), or a global threshold on
scores normalised by each group's mean (``global``: groups of redundant channels lose more).
Either way the MACs are those of the rebuilt model, computed without building it
(:func:`.surgery.estimated_macs`), and no group loses more than :data:`MAX_RATIO` of its channels
(a layer cut to one channel rarely recovers). The ``random`` criterion under a global target takes
its per-group counts from ``l1`` — the paper's random baseline prunes at the same ratios.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

from ..errors import ConfigError
from .channels import ChannelGraph, Group
from .flops import macs_per_layer
from .surgery import estimated_macs

MAX_RATIO = 0.9
"""The largest share of one group's channels a MACs target may remove."""


def channels_per_unit(cg: ChannelGraph, group: Group) -> int:
    """Channels of the leader per group unit (1, or a grouped conv's group width)."""
    return max(1, len(cg.out_maps[group.leader]) // max(1, len(group.units)))


def kept_count(cg: ChannelGraph, group: Group, ratio: float, round_to: int) -> int:
    """Units a group keeps at ``ratio``, the kept channels rounded up to a multiple of ``round_to``."""
    n = len(group.units)
    keep = max(1, min(n, math.floor(n * (1.0 - ratio) + 1e-9)))
    per_unit = channels_per_unit(cg, group)
    step = round_to // math.gcd(round_to, per_unit)
    return min(n, -(-keep // step) * step)


def keep_top(scores: np.ndarray, count: int) -> np.ndarray:
    """Sorted indices of the ``count`` highest scores (ties: the lower index stays)."""
    return np.sort(np.argsort(-scores, kind="stable")[:count])


def removed_for(groups: list[Group], kept: dict[str, np.ndarray]) -> set[int]:
    out: set[int] = set()
    for group in groups:
        if group.leader in kept:
            mask = np.ones(len(group.units), dtype=bool)
            mask[kept[group.leader]] = False
            out.update(group.units[mask].tolist())
    return out


def by_ratios(cg: ChannelGraph, groups: list[Group], ratios: dict[str, float], scores: dict[str, np.ndarray],
              round_to: int) -> dict[str, np.ndarray]:
    """Group leader → kept channel indices at the given ratios."""
    return {g.leader: keep_top(scores[g.leader], kept_count(cg, g, ratios.get(g.leader, 0.0), round_to))
            for g in groups}


def _bisect(macs_at: Callable[[float], int], target: int, high: float, steps: int = 20) -> float:
    """The smallest parameter in [0, high] whose MACs are ≤ target (MACs fall as it grows)."""
    low = 0.0
    for _ in range(steps):
        middle = (low + high) / 2
        if macs_at(middle) <= target:
            high = middle
        else:
            low = middle
    return high


def for_macs(cg: ChannelGraph, groups: list[Group], scores: dict[str, np.ndarray], share: float,
             allocation: str, round_to: int, count_scores: dict[str, np.ndarray] | None = None
             ) -> dict[str, np.ndarray]:
    """Group leader → kept channel indices so that the rebuilt model has ≤ ``share`` of the dense MACs."""
    dense = macs_per_layer(cg.model)
    total = sum(dense.values())
    target = int(share * total)
    count_scores = count_scores or scores

    def uniform(ratio: float) -> dict[str, np.ndarray]:
        return by_ratios(cg, groups, {g.leader: ratio for g in groups}, scores, round_to)

    normalised = {g.leader: count_scores[g.leader] / max(float(np.mean(count_scores[g.leader])), 1e-12)
                  for g in groups}

    def global_(threshold: float) -> dict[str, np.ndarray]:
        ratios = {g.leader: min(MAX_RATIO, float(np.mean(normalised[g.leader] < threshold))) for g in groups}
        return by_ratios(cg, groups, ratios, scores, round_to)

    choose, high = (uniform, MAX_RATIO) if allocation == "uniform" else \
        (global_, max(float(np.max(s)) for s in normalised.values()) + 1.0)

    def macs_at(parameter: float) -> int:
        return estimated_macs(cg, removed_for(groups, choose(parameter)), dense)

    best = macs_at(high)
    if best > target:
        raise ConfigError(_unreachable(cg, share, best / total if total else 1.0))
    return choose(_bisect(macs_at, target, high))


def _unreachable(cg: ChannelGraph, share: float, reached: float) -> str:
    blocked = [g.reason for g in cg.groups if g.reason is not None]
    detail = f"; blocked: {blocked[0]}" + (f" (and {len(blocked) - 1} more groups)" if len(blocked) > 1 else "") \
        if blocked else ""
    return (f"prune.macs {share}: model {cg.model.name!r} reaches at best {reached:.3f} of its dense MACs "
            f"with at most {MAX_RATIO:.0%} of each prunable group removed{detail}")
