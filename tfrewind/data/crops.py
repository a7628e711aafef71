"""ImageNet-style crops (``data.augment: imagenet``): the ResNet recipe the paper's ImageNet code uses.

Training: a random-resized crop (8–100 % of the area, aspect ratio 3/4–4/3) resized to the model's
size, then a horizontal flip with probability ½ (torchvision's ``RandomResizedCrop`` +
``RandomHorizontalFlip``). Evaluation: the short side resized to size·256/224, then the center
crop (``Resize(256)`` + ``CenterCrop(224)``). Why stateless and keyed by (seed, epoch, position):
as for the CIFAR crops (:mod:`tfrewind.data.pipeline`), a resumed run sees the crops an
uninterrupted run sees. When ten tries find no box, TensorFlow's sampler falls back to the whole
image (torchvision's to a center crop of clamped aspect ratio): a rare case that only changes which
pixels one example shows.
"""

from __future__ import annotations

from typing import Sequence

from .._keras import tf

AREA = (0.08, 1.0)
ASPECT = (3.0 / 4.0, 4.0 / 3.0)
EVAL_RESIZE = 256.0 / 224.0


def random_resized_crop(key: tf.Tensor, position: tf.Tensor, image: tf.Tensor, size: Sequence[int]) -> tf.Tensor:
    """One training view of ``image`` (any size), ``size`` = (height, width); the same (key, position) gives
    the same view."""
    seed = tf.stack([tf.cast(key, tf.int64), 2 * tf.cast(position, tf.int64)])
    begin, extent, _ = tf.image.stateless_sample_distorted_bounding_box(
        tf.shape(image), tf.zeros([1, 0, 4], tf.float32), seed=seed, min_object_covered=0.0,
        aspect_ratio_range=ASPECT, area_range=AREA, max_attempts=10, use_image_if_no_bounding_boxes=True)
    crop = tf.image.resize(tf.slice(image, begin, extent), size)
    flip_seed = tf.stack([tf.cast(key, tf.int64), 2 * tf.cast(position, tf.int64) + 1])
    return tf.image.stateless_random_flip_left_right(crop, flip_seed)


def center_crop(image: tf.Tensor, size: Sequence[int]) -> tf.Tensor:
    """The evaluation view: short side to ``size``·256/224 (aspect ratio kept), then the central ``size``."""
    height, width = size
    shape = tf.cast(tf.shape(image)[:2], tf.float32)
    scale = tf.round(float(min(height, width)) * EVAL_RESIZE) / tf.reduce_min(shape)
    resized = tf.image.resize(image, tf.cast(tf.math.floor(shape * scale + 1e-3), tf.int32))  # int(), as torchvision
    new = tf.shape(resized)[:2]
    return tf.image.crop_to_bounding_box(resized, (new[0] - height) // 2, (new[1] - width) // 2, height, width)


def example_augmenter(shape: Sequence[int]):
    """``(key, position, image, label) → (crop, label)`` for the training pipeline, per example (before
    batching: the images differ in size)."""
    height, width, channels = shape

    def augment(key, position, image, label):
        crop = random_resized_crop(key, position, image, (height, width))
        return tf.ensure_shape(crop, (height, width, channels)), label

    return augment


def eval_view(shape: Sequence[int]):
    """``(image, label) → (center crop, label)`` for the evaluation splits and the plain training images."""
    height, width, channels = shape

    def view(image, label):
        return tf.ensure_shape(center_crop(image, (height, width)), (height, width, channels)), label

    return view
