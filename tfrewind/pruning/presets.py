"""Named per-layer filter ratios of Li et al. 2017 ("Pruning Filters for Efficient ConvNets").

Taken from the L1-norm pruning scripts the paper (Le & Hua 2021) reuses
(``rethinking-network-pruning/cifar/l1-norm-pruning``: ``res56prune.py``, ``res110prune.py``,
``vggprune.py``). There, conv ``layer_id`` counts every conv from 1 (the stem); in a CIFAR
ResNet the first conv of global block ``i`` (0-based) is layer ``2 + 2i``; only these are
pruned, at the ratio of their stage, except the "skip" layers found sensitive. Names below are
our layer names (``s{stage}b{block}_conv1``, VGG ``conv{i}``).
"""

from __future__ import annotations

from ..errors import ConfigError


def _resnet(depth: int, stage_ratios: tuple[float, float, float], skip: set[int]) -> dict[str, float]:
    per_stage = (depth - 2) // 6
    ratios = {}
    for i in range(3 * per_stage):
        layer_id = 2 + 2 * i
        stage, block = divmod(i, per_stage)
        ratios[f"s{stage + 1}b{block + 1}_conv1"] = 0.0 if layer_id in skip else stage_ratios[stage]
    return ratios


def _vgg16_a() -> dict[str, float]:
    """VGG-16-pruned-A: half the filters of conv1 and conv8–conv13 (cfg 32, 64, …, 256 × 6)."""
    return {f"conv{i}": (0.5 if i == 1 or i >= 8 else 0.0) for i in range(1, 14)}


PRESETS: dict[str, dict[str, float]] = {
    "resnet56-A": _resnet(56, (0.1, 0.1, 0.1), {16, 20, 38, 54}),
    "resnet56-B": _resnet(56, (0.6, 0.3, 0.1), {16, 18, 20, 34, 38, 54}),
    "resnet110-A": _resnet(110, (0.5, 0.0, 0.0), {36}),
    "resnet110-B": _resnet(110, (0.5, 0.4, 0.3), {36, 38, 74}),
    "vgg16-A": _vgg16_a(),
}
"""Preset name → {conv layer name: share of its filters removed}."""


def preset_ratios(name: str) -> dict[str, float]:
    """The named preset's ratios, or a one-line error listing the presets."""
    if name not in PRESETS:
        raise ConfigError(f"prune.preset: {name!r} is not allowed; choose one of: {', '.join(sorted(PRESETS))}")
    return PRESETS[name]
