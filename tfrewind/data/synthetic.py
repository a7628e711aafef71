"""``synthetic``: seeded, learnable CIFAR-shaped images (32×32×3, 10 classes), generated offline.

Why: benchmarks and tests need CIFAR shapes without CIFAR. Each class is a fixed random pattern
plus noise, so a network can learn it and accuracy means something.
"""

from __future__ import annotations

import numpy as np

from .._keras import tf
from ..config import DataConfig
from .registry import DATASETS, RawSplits

SHAPE = (32, 32, 3)
CLASSES = 10
SIZES = {"train": 2560, "validation": 256, "test": 512}


def _make(n: int, rng: np.random.Generator, prototypes: np.ndarray):
    labels = rng.integers(0, CLASSES, size=n)
    noise = rng.normal(0.0, 0.25, size=(n, *SHAPE))
    images = np.clip(prototypes[labels] + noise, 0.0, 1.0).astype(np.float32)
    return tf.data.Dataset.from_tensor_slices((images, labels.astype(np.int64)))


@DATASETS.register("synthetic")
def synthetic(config: DataConfig) -> RawSplits:
    rng = np.random.default_rng(1234)
    prototypes = rng.uniform(0.2, 0.8, size=(CLASSES, *SHAPE))
    return RawSplits(
        train=_make(SIZES["train"], rng, prototypes),
        validation=_make(SIZES["validation"], rng, prototypes),
        test=_make(SIZES["test"], rng, prototypes),
        train_examples=SIZES["train"],
        input_shape=SHAPE,
        num_classes=CLASSES,
    )
