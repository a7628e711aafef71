"""``digits``: scikit-learn's bundled 8×8 handwritten digits (1,797 real images, 10 classes).

Why it is the default: it ships inside scikit-learn, so ``tfrewind train`` runs with no network.
The test split (20 %) and the validation split are fixed (seed 0) so that runs with different
seeds are evaluated on the same images. ``data.image_size`` upscales the images (bilinear) for
networks that need more pixels, e.g. the ``tf_keras.applications`` models (at least 32×32).
"""

from __future__ import annotations

import numpy as np

from .._keras import tf
from ..config import DataConfig
from .registry import DATASETS, RawSplits

TEST_FRACTION = 0.2
SPLIT_SEED = 0


@DATASETS.register("digits")
def digits(config: DataConfig) -> RawSplits:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    images = _resized((bunch.images / 16.0).astype(np.float32)[..., None], config.image_size)
    labels = bunch.target.astype(np.int64)
    x_rest, x_test, y_rest, y_test = train_test_split(
        images, labels, test_size=TEST_FRACTION, stratify=labels, random_state=SPLIT_SEED)
    x_train, x_val, y_train, y_val = train_test_split(
        x_rest, y_rest, test_size=config.validation_fraction, stratify=y_rest, random_state=SPLIT_SEED)
    return RawSplits(
        train=tf.data.Dataset.from_tensor_slices((x_train, y_train)),
        validation=tf.data.Dataset.from_tensor_slices((x_val, y_val)),
        test=tf.data.Dataset.from_tensor_slices((x_test, y_test)),
        train_examples=len(x_train),
        input_shape=images.shape[1:],
        num_classes=10,
        mean=[float(x_train.mean())],
        std=[float(x_train.std())],
    )


def _resized(images: np.ndarray, size: int | None) -> np.ndarray:
    """All 1,797 images resized once (a few MB at 32×32), so the cached pipeline stays as fast."""
    if size is None or size == images.shape[1]:
        return images
    return np.clip(tf.image.resize(images, (size, size), method="bilinear").numpy(), 0.0, 1.0)
