"""Mask criteria for unstructured pruning, in NumPy: layer-wise and global magnitude, random.

Why NumPy rather than tfmot's in-graph criterion: masks are chosen once, before (re)training, and
then held fixed; exact counts (``round(size × sparsity)`` zeros per layer, ties broken by position)
make the random baseline's "same number of zeros per layer" exact. Every function keeps existing
zeros (``old`` masks) pruned, so iterative rounds only ever add zeros.

All functions take ``kernels``: layer name → kernel array as the model computes with it.
"""

from __future__ import annotations

import numpy as np

Masks = dict[str, np.ndarray]


def _scores(kernel: np.ndarray, old: np.ndarray | None) -> np.ndarray:
    """|w|, with already-pruned positions scored −1 so they are always pruned first."""
    score = np.abs(kernel.astype(np.float64)).ravel()
    if old is not None:
        score[old.ravel() == 0] = -1.0
    return score


def zeros_for(size: int, sparsity: float) -> int:
    """Number of weights a layer of ``size`` loses at ``sparsity`` (rounded, never all of them)."""
    return int(min(size - 1, max(0, round(size * sparsity))))


def _mask_from_pruned(shape: tuple[int, ...], pruned_flat: np.ndarray) -> np.ndarray:
    mask = np.ones(int(np.prod(shape)), dtype=np.float32)
    mask[pruned_flat] = 0.0
    return mask.reshape(shape)


def magnitude(kernels: dict[str, np.ndarray], sparsity: dict[str, float],
              old: Masks | None = None) -> Masks:
    """Each layer loses its own smallest-|w| share ``sparsity[name]`` (tfmot's criterion, exact count)."""
    out = {}
    for name, k in kernels.items():
        prev = (old or {}).get(name)
        score = _scores(k, prev)
        n_zero = max(zeros_for(k.size, sparsity[name]), int(np.sum(score < 0)))
        pruned = np.argsort(score, kind="stable")[:n_zero]
        out[name] = _mask_from_pruned(k.shape, pruned)
    return out


def global_magnitude(kernels: dict[str, np.ndarray], sparsity: float,
                     old: Masks | None = None) -> tuple[Masks, float]:
    """One threshold over all layers: the globally smallest-|w| share ``sparsity`` is pruned.

    Returns the masks and the threshold: the largest pruned magnitude, so every kept |w| is ≥ it
    and every pruned |w| ≤ it.
    """
    names = list(kernels)
    scores = [_scores(kernels[n], (old or {}).get(n)) for n in names]
    flat = np.concatenate(scores)
    n_zero = max(zeros_for(flat.size, sparsity), int(np.sum(flat < 0)))
    order = np.argsort(flat, kind="stable")
    pruned = np.zeros(flat.size, dtype=bool)
    pruned[order[:n_zero]] = True
    threshold = float(max(flat[order[n_zero - 1]], 0.0)) if n_zero else 0.0
    out, start = {}, 0
    for name, score in zip(names, scores):
        stop = start + score.size
        out[name] = _mask_from_pruned(kernels[name].shape, np.flatnonzero(pruned[start:stop]))
        start = stop
    return out, threshold


def random(kernels: dict[str, np.ndarray], zeros: dict[str, int], seed: int,
           old: Masks | None = None) -> Masks:
    """Uniformly random masks with exactly ``zeros[name]`` zeros per layer (old zeros kept).

    Each layer draws from its own stream ``(seed, layer index)``, so one layer's draw does not
    depend on the others' sizes.
    """
    out = {}
    for index, (name, k) in enumerate(kernels.items()):
        rng = np.random.default_rng([seed, index])
        prev = (old or {}).get(name)
        alive = np.arange(k.size) if prev is None else np.flatnonzero(prev.ravel() != 0)
        dead = np.setdiff1d(np.arange(k.size), alive)
        extra = max(0, min(zeros[name] - dead.size, alive.size - 1))
        chosen = rng.choice(alive, size=extra, replace=False)
        out[name] = _mask_from_pruned(k.shape, np.concatenate([dead, chosen]).astype(int))
    return out


def zero_counts(masks: Masks) -> dict[str, int]:
    return {name: int(np.sum(m == 0)) for name, m in masks.items()}
