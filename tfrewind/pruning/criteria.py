"""Importance criteria for channel groups, one registry: a criterion scores every channel of a group.

Each criterion scores the output channels of each *source* layer of a group (its filters); a
channel shared by several sources (a residual stream) gets the mean of their scores, a unit held
by several positions of one source (a grouped conv's whole group) the sum over them. Higher means
more important (kept). Criteria that need data (``taylor``, ``hrank``, in :mod:`.data_criteria`)
read a few batches from :class:`ScoreInput`; the others only read weights.

* ``l1`` — L1 norm of each filter (Li et al. 2017, "Pruning Filters for Efficient ConvNets").
* ``l2`` — L2 norm of each filter.
* ``random`` — seeded uniform scores: the paper's random baseline, at the same per-group ratios.
* ``fpgm`` — distance of each filter to the others (He et al. 2019, geometric median): filters
  near the median are replaceable.
* ``bn_scale`` — |γ| of the batch norm after the channels (network slimming, Liu et al. 2017).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from ..registry import Registry
from .channels import ChannelGraph, Group


class Unscorable(Exception):
    """A criterion cannot score this group (e.g. ``bn_scale`` without a BN): it keeps its channels."""


@dataclass
class ScoreInput:
    """What a criterion may read: the analysed model, the seed, and (data criteria) batches."""

    cg: ChannelGraph
    seed: int = 0
    batches: Any = None
    """An iterable of ``(x, y)`` batches from the training data, or None."""
    cache: dict[str, Any] = field(default_factory=dict)
    """What a criterion computes once for all groups (data criteria: one pass over the batches)."""


Criterion = Callable[[ScoreInput, Group], np.ndarray]
CRITERIA: Registry[Criterion] = Registry("channel criterion", ordered=True)
"""Criterion name → function(score input, group) → one score per group channel (higher = kept)."""


def filters(layer, kind: str) -> np.ndarray:
    """A source layer's filters as rows: (output channels, fan-in)."""
    weights = layer.get_weights()
    kernel = weights[1] if kind.startswith("SeparableConv") else weights[0]
    if kind.endswith("Transpose"):
        kernel = np.moveaxis(kernel, -2, -1)
    return kernel.reshape(-1, kernel.shape[-1]).T


def per_unit(si: ScoreInput, group: Group, position_scores: Callable[[str], np.ndarray]) -> np.ndarray:
    """Aggregate per-position scores of each source into one score per group channel."""
    index = {unit: i for i, unit in enumerate(group.units.tolist())}
    total = np.zeros(len(group.units))
    sources = np.zeros(len(group.units))
    for source in group.sources:
        scores = np.asarray(position_scores(source), dtype=np.float64)
        units = np.array([index[u] for u in si.cg.out_maps[source].tolist()])
        summed = np.bincount(units, weights=scores, minlength=len(group.units))
        total += summed
        sources += np.bincount(units, minlength=len(group.units)) > 0
    return total / np.maximum(sources, 1)


def _filter_criterion(score_rows: Callable[[np.ndarray], np.ndarray]) -> Criterion:
    def criterion(si: ScoreInput, group: Group) -> np.ndarray:
        kinds = si.cg.graph.layers
        return per_unit(si, group, lambda s: score_rows(filters(si.cg.layers[s], kinds[s]["class_name"])))
    return criterion


def _fpgm_rows(rows: np.ndarray) -> np.ndarray:
    """Sum of Euclidean distances from each filter to all others (small: near the geometric median)."""
    squared = (rows ** 2).sum(axis=1)
    distances = np.sqrt(np.maximum(squared[:, None] + squared[None, :] - 2.0 * rows @ rows.T, 0.0))
    return distances.sum(axis=1)


CRITERIA.register("l1")(_filter_criterion(lambda rows: np.abs(rows).sum(axis=1)))
CRITERIA.register("l2")(_filter_criterion(lambda rows: np.sqrt((rows ** 2).sum(axis=1))))
CRITERIA.register("fpgm")(_filter_criterion(_fpgm_rows))


@CRITERIA.register("random")
def _random(si: ScoreInput, group: Group) -> np.ndarray:
    index = [g.leader for g in si.cg.groups].index(group.leader)
    return np.random.default_rng([si.seed, index]).random(len(group.units))


@CRITERIA.register("bn_scale")
def _bn_scale(si: ScoreInput, group: Group) -> np.ndarray:
    """|γ| of every BatchNormalization holding the group's channels, averaged over them."""
    units = set(group.units.tolist())
    index = {unit: i for i, unit in enumerate(group.units.tolist())}
    total, count = np.zeros(len(group.units)), np.zeros(len(group.units))
    for name, entry in si.cg.graph.layers.items():
        if entry["class_name"] != "BatchNormalization" or name not in si.cg.rules:
            continue
        channel_map = si.cg.out_maps[name]
        if not units.intersection(channel_map.tolist()):
            continue
        layer = si.cg.layers[name]
        gamma = np.abs(layer.gamma.numpy()) if layer.scale else np.ones(len(channel_map))
        for position, unit in enumerate(channel_map.tolist()):
            if unit in index:
                total[index[unit]] += gamma[position]
                count[index[unit]] += 1
    if not count.all():
        raise Unscorable(f"{group.leader!r}: no BatchNormalization holds its channels, so bn_scale "
                         "cannot score them")
    return total / count
