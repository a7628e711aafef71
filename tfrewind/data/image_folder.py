"""``image_folder``: the user's own classes, one sub-folder per class (``image_dataset_from_directory``).

Layout: ``DIR/train/<class>/*.jpg`` and ``DIR/test/<class>/*`` — or just ``DIR/<class>/*``, from
which a fixed 20 % test split is held out. Validation is always taken from the training images.
"""

from __future__ import annotations

from pathlib import Path

from .._keras import keras, tf
from ..config import DataConfig
from ..errors import ConfigError, DataUnavailableError
from .registry import DATASETS, RawSplits

DEFAULT_SIZE = 64
SPLIT_SEED = 0


def _from_directory(directory: Path, size: int, **kwargs) -> tf.data.Dataset:
    return keras.utils.image_dataset_from_directory(
        directory, image_size=(size, size), batch_size=None, shuffle=True, seed=SPLIT_SEED,
        label_mode="int", **kwargs)


@DATASETS.register("image_folder")
def image_folder(config: DataConfig) -> RawSplits:
    if not config.data_dir:
        raise ConfigError("data.data_dir: image_folder needs --data-dir pointing at a folder of class sub-folders")
    root = Path(config.data_dir)
    if not root.is_dir():
        raise DataUnavailableError(f"image folder {str(root)!r} does not exist")
    size = config.image_size or DEFAULT_SIZE
    has_split = (root / "train").is_dir() and (root / "test").is_dir()
    train_root = root / "train" if has_split else root
    fraction = config.validation_fraction
    try:
        if has_split:
            test = _from_directory(root / "test", size)
            train = _from_directory(train_root, size, validation_split=fraction, subset="training")
            val = _from_directory(train_root, size, validation_split=fraction, subset="validation")
        else:  # hold out 20 % as test, then a share of the rest as validation
            rest = _from_directory(train_root, size, validation_split=0.2, subset="training")
            test = _from_directory(train_root, size, validation_split=0.2, subset="validation")
            rest_count = int(rest.cardinality())
            n_val = max(1, int(round(fraction * rest_count)))
            val, train = rest.take(n_val), rest.skip(n_val)
    except ValueError as exc:
        raise DataUnavailableError(f"image folder {str(root)!r}: {exc}") from None
    class_names = sorted(p.name for p in train_root.iterdir() if p.is_dir() and p.name not in ("train", "test"))
    channels = 3

    def scale(image, label):
        return tf.ensure_shape(image / 255.0, (size, size, channels)), tf.cast(label, tf.int64)

    return RawSplits(
        train=train.map(scale), validation=val.map(scale), test=test.map(scale),
        train_examples=int(train.cardinality()) if int(train.cardinality()) > 0 else _count(train),
        input_shape=(size, size, channels), num_classes=len(class_names),
    )


def _count(dataset: tf.data.Dataset) -> int:
    return int(dataset.reduce(0, lambda n, _: n + 1))
