"""The shared input pipeline: normalise → cache → shuffle → augment → batch → prefetch.

Why this order: decoding and normalisation are done once and cached (when the split fits in
memory); shuffling and augmentation come after the cache so that each epoch sees new orders and
crops; prefetch overlaps input with training. Augmentation follows the paper for CIFAR (pad 4,
random crop, horizontal flip); seeds make it repeatable.

Why an epoch clock: a run killed at epoch 7 and resumed must see, in epoch 8, exactly the images,
order and crops an uninterrupted run sees. ``shuffle(reshuffle_each_iteration=True)`` and stateful
random ops depend on how many epochs *this process* has iterated, so instead each epoch's order
(``shuffle`` seeded by (seed, epoch)) and augmentation (stateless crop/flip keyed by (seed, epoch,
position)) are functions of the epoch number held by :class:`EpochClock`. Training pins the clock
to the absolute epoch (:class:`tfrewind.callbacks.DataEpochSync`, after ``BackupAndRestore`` has
restored); used on its own (``model.fit(bundle.train)``) the clock advances with each pass.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np

from .._keras import tf
from ..config import DataConfig
from .crops import eval_view, example_augmenter
from .registry import RawSplits

CACHE_LIMIT_BYTES = 4 * 2**30
STATS_SAMPLE = 5000
AUTOTUNE = tf.data.AUTOTUNE


class EpochClock:
    """The epoch whose order and augmentation the training pipeline serves next.

    Unpinned (default) each new pass over the dataset takes the next epoch; :meth:`pin` fixes the
    epoch explicitly (resumed training), and every pass then serves exactly that epoch.
    """

    def __init__(self) -> None:
        with tf.init_scope():
            self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="tfrewind_data_epoch")
            self.pinned = tf.Variable(False, trainable=False, name="tfrewind_data_epoch_pinned")

    def pin(self, epoch: int) -> None:
        self.pinned.assign(True)
        self.epoch.assign(int(epoch))

    def unpin(self) -> None:
        self.pinned.assign(False)

    def take(self) -> tf.Tensor:
        """Inside tf.data: the epoch of this pass (advancing the clock when it is not pinned)."""
        return tf.cond(self.pinned, lambda: self.epoch.read_value(), lambda: self.epoch.assign_add(1) - 1)


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
    clock: EpochClock | None = None
    """Which epoch ``train`` serves (order and augmentation depend only on seed and epoch)."""

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(self.train_examples / self.batch_size)

    def first_batches(self, count: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """The first ``count`` batches of ``train_plain`` as arrays: the same ones on every call, so
        that channel criteria that read data (taylor, hrank) score repeatably."""
        return [(x.numpy(), y.numpy()) for x, y in self.train_plain.take(count)]

    def representative_images(self, count: int = 100) -> Iterator[np.ndarray]:
        """Single images (batch of 1) for TFLite full-integer calibration."""
        for image, _ in self.train_plain.unbatch().take(count):
            yield image.numpy()[None, ...]


def build_pipelines(raw: RawSplits, config: DataConfig, seed: int) -> DataBundle:
    """With ``augment: imagenet`` the images may differ in size: evaluation splits are center-cropped
    before anything else, training images are cropped per example (:mod:`.crops`) and not cached."""
    crops = config.augment == "imagenet"
    view = eval_view(raw.input_shape) if crops else None
    mean, std = _stats(raw, view)
    normalise = _normaliser(mean, std)
    cache = _fits_in_memory(raw)
    prepared = {}
    for split in ("train", "validation", "test"):
        ds = getattr(raw, split)
        if view is not None and split != "train":
            ds = ds.map(view, num_parallel_calls=AUTOTUNE)
        ds = ds.map(normalise, num_parallel_calls=AUTOTUNE)
        prepared[split] = ds.cache() if cache and not (crops and split == "train") else ds
    augment = example_augmenter(raw.input_shape) if crops else _augmenter(config.augment, raw.input_shape)
    batch = config.batch_size
    clock = EpochClock()
    buffer = min(config.shuffle_buffer, max(raw.train_examples, 1))
    train = _epoch_pipeline(prepared["train"], raw.train_examples, buffer, augment, seed, clock, batch,
                            per_example=crops)
    plain = prepared["train"].map(view, num_parallel_calls=AUTOTUNE) if crops else prepared["train"]
    return DataBundle(
        train=train.prefetch(AUTOTUNE),
        validation=prepared["validation"].batch(batch).prefetch(AUTOTUNE),
        test=prepared["test"].batch(batch).prefetch(AUTOTUNE),
        train_plain=plain.batch(batch),
        input_shape=tuple(raw.input_shape),
        num_classes=raw.num_classes,
        train_examples=raw.train_examples,
        batch_size=batch,
        name=config.name,
        clock=clock,
    )


def epoch_key(seed: int | tf.Tensor, epoch: tf.Tensor) -> tf.Tensor:
    """One int64 per (seed, epoch): the shuffle seed of that epoch and the first half of its augmentation keys."""
    return tf.cast(seed, tf.int64) * 1_000_003 + tf.cast(epoch, tf.int64)


def _epoch_pipeline(ds: tf.data.Dataset, examples: int, buffer: int, augment, seed: int,
                    clock: EpochClock, batch: int, per_example: bool = False) -> tf.data.Dataset:
    """Batches of the epoch ``clock`` gives: order and augmentation a pure function of (seed, epoch).
    ``per_example``: ``augment(key, position, image, label)`` runs before batching, else on batches."""

    def one_epoch(epoch):
        key = epoch_key(seed, epoch)
        shuffled = _seeded_shuffle(ds, buffer, key)
        if augment is None:
            return shuffled
        indexed = shuffled.enumerate()  # position kept for the augmenter
        if per_example:
            return indexed.map(lambda i, example: augment(key, i, *example), num_parallel_calls=AUTOTUNE)
        return indexed.map(lambda i, example: (key, i, example))

    epochs = tf.data.Dataset.from_tensors(tf.constant(0, tf.int64)).map(lambda _: clock.take())
    train = epochs.flat_map(one_epoch).apply(tf.data.experimental.assert_cardinality(examples)).batch(batch)
    if augment is not None and not per_example:
        train = train.map(lambda keys, positions, example: augment(keys[0], positions[0], *example),
                          num_parallel_calls=AUTOTUNE)
    return train


def _stats(raw: RawSplits, view=None) -> tuple[np.ndarray, np.ndarray]:
    if raw.mean is not None and raw.std is not None:
        return np.asarray(raw.mean, np.float32), np.asarray(raw.std, np.float32)
    train = raw.train.map(view) if view is not None else raw.train  # images of one size to stack
    images = np.stack([image.numpy() for image, _ in train.take(STATS_SAMPLE)])
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


def _seeded_shuffle(ds: tf.data.Dataset, buffer: int, seed: tf.Tensor) -> tf.data.Dataset:
    """``ds.shuffle(buffer, seed)`` with a *tensor* seed, independent of TensorFlow's global seed.

    Why the raw op: ``Dataset.shuffle`` mixes the global seed in and fails on a tensor seed when
    the global seed is 0 (its ``seeds == (0, 0)`` check needs a Python bool).
    """
    specs = tf.nest.flatten(ds.element_spec)
    variant = tf.raw_ops.ShuffleDatasetV3(
        input_dataset=tf.data.experimental.to_variant(ds), buffer_size=tf.constant(buffer, tf.int64),
        seed=seed, seed2=tf.constant(0x5EED, tf.int64), seed_generator=tf.raw_ops.DummySeedGenerator(),
        output_types=[s.dtype for s in specs], output_shapes=[s.shape for s in specs],
        reshuffle_each_iteration=False)
    return tf.data.experimental.from_variant(variant, ds.element_spec)


def _augmenter(mode: str, shape: Sequence[int]):
    """Batch augmentation ``(key, first_position, images, labels) → (images, labels)``, or None.

    Stateless and vectorised: each example's crop offsets and flip are drawn from the key
    (seed, epoch) and the batch's position in the epoch, so they never depend on process history;
    one draw and two gathers per batch are faster than per-image random ops.
    """
    height, width, channels = shape
    if mode == "auto":
        mode = "cifar" if (height, width, channels) == (32, 32, 3) else "none"
    if mode == "none":
        return None
    pad = max(1, height // 8)  # 4 pixels for 32×32 images, as in the paper
    flip = mode == "cifar"

    def augment(key, first, images, labels):
        count = tf.shape(images)[0]
        draws = tf.random.stateless_uniform(tf.stack([count, 3]), seed=tf.stack([key, first]),
                                            minval=0, maxval=2**30, dtype=tf.int32)
        padded = tf.pad(images, [[0, 0], [pad, pad], [pad, pad], [0, 0]])
        rows = draws[:, 0:1] % (2 * pad + 1) + tf.range(height)[None, :]
        cols = draws[:, 1:2] % (2 * pad + 1) + tf.range(width)[None, :]
        out = tf.gather(tf.gather(padded, rows, axis=1, batch_dims=1), cols, axis=2, batch_dims=1)
        if flip:
            out = tf.where((draws[:, 2] % 2 == 1)[:, None, None, None], tf.reverse(out, axis=[2]), out)
        out.set_shape([None, height, width, channels])
        return out, labels

    return augment
