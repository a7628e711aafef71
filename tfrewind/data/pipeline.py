"""The shared input pipeline: normalise → cache → shuffle → augment → batch → prefetch.

Why this order: decoding and normalisation are done once and cached (when the split fits in
memory); shuffling and augmentation come after the cache so that each epoch sees new orders and
crops; prefetch overlaps input with training. Augmentation follows the paper for CIFAR (pad 4,
random crop, horizontal flip); seeds make it repeatable.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np

from .._keras import tf
from ..config import DataConfig
from .registry import RawSplits

CACHE_LIMIT_BYTES = 4 * 2**30
STATS_SAMPLE = 5000
AUTOTUNE = tf.data.AUTOTUNE


@dataclass
class DataBundle:
    """Batched pipelines for the three splits, plus the facts models and schedules need."""

    train: tf.data.Dataset
    validation: tf.data.Dataset
    test: tf.data.Dataset
    train_plain: tf.data.Dataset
    """Training images, normalised, unshuffled and not augmented (calibration, statistics)."""
    input_shape: tuple[int, int, int]
    num_classes: int
    train_examples: int
    batch_size: int
    name: str
    class_names: Sequence[str] | None = None

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(self.train_examples / self.batch_size)

    def representative_images(self, count: int = 100) -> Iterator[np.ndarray]:
        """Single images (batch of 1) for TFLite full-integer calibration."""
        for image, _ in self.train_plain.unbatch().take(count):
            yield image.numpy()[None, ...]


def build_pipelines(raw: RawSplits, config: DataConfig, seed: int) -> DataBundle:
    mean, std = _stats(raw)
    normalise = _normaliser(mean, std)
    cache = _fits_in_memory(raw)
    prepared = {}
    for split in ("train", "validation", "test"):
        ds = getattr(raw, split).map(normalise, num_parallel_calls=AUTOTUNE)
        prepared[split] = ds.cache() if cache else ds
    augment = _augmenter(config.augment, raw.input_shape, seed)
    batch = config.batch_size
    train = prepared["train"].shuffle(min(config.shuffle_buffer, max(raw.train_examples, 1)), seed=seed,
                                      reshuffle_each_iteration=True)
    if augment is not None:
        train = train.map(augment, num_parallel_calls=AUTOTUNE)
    return DataBundle(
        train=train.batch(batch).prefetch(AUTOTUNE),
        validation=prepared["validation"].batch(batch).prefetch(AUTOTUNE),
        test=prepared["test"].batch(batch).prefetch(AUTOTUNE),
        train_plain=prepared["train"].batch(batch),
        input_shape=tuple(raw.input_shape),
        num_classes=raw.num_classes,
        train_examples=raw.train_examples,
        batch_size=batch,
        name=config.name,
        class_names=raw.class_names,
    )


def _stats(raw: RawSplits) -> tuple[np.ndarray, np.ndarray]:
    if raw.mean is not None and raw.std is not None:
        return np.asarray(raw.mean, np.float32), np.asarray(raw.std, np.float32)
    images = np.stack([image.numpy() for image, _ in raw.train.take(STATS_SAMPLE)])
    axes = tuple(range(images.ndim - 1))
    return images.mean(axis=axes).astype(np.float32), np.maximum(images.std(axis=axes), 1e-6).astype(np.float32)


def _normaliser(mean: np.ndarray, std: np.ndarray):
    mean_t, std_t = tf.constant(mean), tf.constant(std)

    def normalise(image, label):
        return (image - mean_t) / std_t, label

    return normalise


def _fits_in_memory(raw: RawSplits) -> bool:
    height, width, channels = raw.input_shape
    return raw.train_examples * height * width * channels * 4 <= CACHE_LIMIT_BYTES


def _augmenter(mode: str, shape: Sequence[int], seed: int):
    height, width, channels = shape
    if mode == "auto":
        mode = "cifar" if (height, width, channels) == (32, 32, 3) else "none"
    if mode == "none":
        return None
    pad = max(1, height // 8)  # 4 pixels for 32×32 images, as in the paper
    flip = mode == "cifar"

    def augment(image, label):
        padded = tf.image.pad_to_bounding_box(image, pad, pad, height + 2 * pad, width + 2 * pad)
        image = tf.image.random_crop(padded, (height, width, channels), seed=seed)
        if flip:
            image = tf.image.random_flip_left_right(image, seed=seed + 1)
        return image, label

    return augment
