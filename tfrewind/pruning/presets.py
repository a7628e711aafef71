"""Named per-layer filter ratios of Li et al. 2017 ("Pruning Filters for Efficient ConvNets").

Taken from the L1-norm pruning scripts the paper (Le & Hua 2021) reuses
(``rethinking-network-pruning/cifar/l1-norm-pruning``: ``res56prune.py``, ``res110prune.py``,
``vggprune.py``). There, conv ``layer_id`` counts every conv from 1 (the stem); in a CIFAR
ResNet the first conv of global block ``i`` (0-based) is layer ``2 + 2i``; only these are
pruned, at the ratio of their stage, except the "skip" layers found sensitive. Names below are
our layer names (``s{stage}b{block}_conv1``, VGG ``conv{i}``). The ImageNet ResNet-34 presets come
from the paper's own ``norm-pruning/imagenet/l1-norm-pruning/res34prune.py`` (github.com/lehduong/NPTM):
A and B as in ``rethinking-network-pruning/imagenet/l1-norm-pruning/prune.py`` (Li et al.'s), plus the
paper's higher compression ratios C and D.
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


def _resnet_imagenet(blocks: tuple[int, ...], stage_ratios: tuple[float, ...], skip: set[int]) -> dict[str, float]:
    """ImageNet ResNet presets (NPTM ``norm-pruning/imagenet/l1-norm-pruning/res34prune.py``).

    There, ``layer_id`` counts the 3×3 convs from 1 (the stem; 1×1 projections are not counted), so
    the first conv of global block ``i`` (0-based) is again layer ``2 + 2i``; its stage is the stage of
    that block (ids ≤ 6, ≤ 14, ≤ 26, rest for ResNet-34). Each keeps ``int(n · (1 − ratio))`` filters.
    Names are torchvision's (``layer{stage}_{block}_conv1``, block 0-based), as in
    :mod:`tfrewind.models.resnet_imagenet`.
    """
    ratios, i = {}, 0
    for stage, count in enumerate(blocks):
        for block in range(count):
            layer_id = 2 + 2 * i
            ratios[f"layer{stage + 1}_{block}_conv1"] = 0.0 if layer_id in skip else stage_ratios[stage]
            i += 1
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
    # NPTM res34prune.py: skip lists and stage ratios of versions A, B (Li et al.), C and D (the paper's).
    "resnet34-A": _resnet_imagenet((3, 4, 6, 3), (0.3, 0.3, 0.3, 0.0), {2, 8, 14, 16, 26, 28, 30, 32}),
    "resnet34-B": _resnet_imagenet((3, 4, 6, 3), (0.5, 0.6, 0.4, 0.0), {2, 8, 14, 16, 26, 28, 30, 32}),
    "resnet34-C": _resnet_imagenet((3, 4, 6, 3), (0.5, 0.5, 0.5, 0.5), {2, 8, 14, 16, 26, 32}),
    "resnet34-D": _resnet_imagenet((3, 4, 6, 3), (0.4, 0.4, 0.5, 0.5), {32}),
}
"""Preset name → {conv layer name: share of its filters removed}."""


def preset_ratios(name: str) -> dict[str, float]:
    """The named preset's ratios, or a one-line error listing the presets."""
    if name not in PRESETS:
        raise ConfigError(f"prune.preset: {name!r} is not allowed; choose one of: {', '.join(sorted(PRESETS))}")
    return PRESETS[name]
