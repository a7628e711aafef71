"""Dataset registry and the split container every source returns.

Why split sources from pipelines: a source only knows how to read its images (unbatched, float32
in [0, 1], integer labels) and which three splits exist; the shared pipeline
(:mod:`tfrewind.data.pipeline`) normalises, caches, shuffles, augments, batches and prefetches them
the same way for every dataset, so behaviour does not drift between sources.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

from .._keras import tf
from ..config import DataConfig
from ..registry import Registry


@dataclass
class RawSplits:
    """Unbatched ``(image float32 [0, 1], label int64)`` datasets plus what the model needs."""

    train: tf.data.Dataset
    validation: tf.data.Dataset
    test: tf.data.Dataset
    train_examples: int
    input_shape: tuple[int, int, int]
    num_classes: int
    mean: Sequence[float] | None = None
    """Per-channel mean; ``None`` → estimated from the training images."""
    std: Sequence[float] | None = None


DatasetSource = Callable[[DataConfig], RawSplits]

DATASETS: Registry[DatasetSource] = Registry("dataset")
