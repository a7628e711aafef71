"""Any image-classification dataset of tensorflow-datasets, by name (``cifar10``, ``mnist``, …).

Splits: ``train`` minus a held-out tail for validation (unless the dataset has its own
``validation`` split *and* a ``test`` split), and ``test`` (or ``validation`` when there is no test
split, as for imagenette). Why the offline check: an unprepared dataset with no network makes
``tfds.load`` retry for minutes; we try the prepared data first and, when a download would be
needed, probe the network in seconds and say how to provide the data instead.

Manual-download datasets (``imagenet2012``) are prepared from the files in ``data.manual_dir`` (no
network involved); when they are missing, one line names them and where they are expected. With
``data.augment: imagenet`` the images keep their own sizes here: the pipeline crops them
(:mod:`tfrewind.data.crops`).
"""

from __future__ import annotations

import socket
from pathlib import Path

from .._keras import tf
from ..config import DataConfig
from ..errors import ConfigError, DataUnavailableError
from .registry import RawSplits

# Per-channel statistics used by the paper's code (CIFAR); others are estimated from the data.
KNOWN_STATS = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    "imagenet2012": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),  # torchvision's, as in the paper's code
}
SPLITS = {"imagenet2012": {"train", "validation"}}
"""Splits to use where the dataset's others are unusable: ImageNet's ``test`` split has no labels
(−1), so its ``validation`` split is the test set here and validation is held out from ``train``."""
MANUAL_FILES = {"imagenet2012": ("ILSVRC2012_img_train.tar", "ILSVRC2012_img_val.tar")}
"""Files a manual-download dataset needs in ``data.manual_dir`` (train and the split we test on)."""
CATALOGUE_EXAMPLES = {"cifar10": (50_000, 10_000), "cifar100": (50_000, 10_000), "imagenet2012": (1_281_167, 50_000)}
"""(train, test) examples of the paper's datasets, as the tensorflow-datasets catalogue lists them:
what :func:`catalogue_sizes` falls back on before the data is prepared (tfds knows sizes only after)."""
DOWNLOAD_HOST = ("storage.googleapis.com", 443)


def tfds_source(config: DataConfig) -> RawSplits:
    import tensorflow_datasets as tfds

    name = config.name
    builder_info = _load_info(tfds, name, config)
    features = builder_info.features
    if "image" not in features or "label" not in features:
        raise ConfigError(f"data.name: tensorflow-datasets {name!r} is not an image-classification "
                          "dataset (needs 'image' and 'label' features)")
    # Metadata without split info (e.g. under ``tfds.testing.mock_data``): assume train/test.
    splits = SPLITS.get(_base(name)) or set(builder_info.splits.keys()) or {"train", "test"}
    train_split, val_split, test_split = _split_names(splits, config.validation_fraction)
    loaded = {split: _load_split(tfds, name, split, config) for split in (train_split, val_split, test_split)}
    shape = _input_shape(features["image"].shape, config, name)
    num_train = _count(loaded[train_split])
    mean, std = KNOWN_STATS.get(_base(name), (None, None))
    to_float = _decoder(shape, None if config.augment == "imagenet" else config.image_size)
    return RawSplits(
        train=loaded[train_split].map(to_float, num_parallel_calls=tf.data.AUTOTUNE),
        validation=loaded[val_split].map(to_float, num_parallel_calls=tf.data.AUTOTUNE),
        test=loaded[test_split].map(to_float, num_parallel_calls=tf.data.AUTOTUNE),
        train_examples=int(num_train),
        input_shape=shape,
        num_classes=int(features["label"].num_classes),
        mean=mean,
        std=std,
    )


def _split_names(splits: set[str], validation_fraction: float) -> tuple[str, str, str]:
    if "train" not in splits:
        raise ConfigError(f"data.name: the dataset has no 'train' split (it has {sorted(splits)})")
    if "test" in splits and "validation" in splits:
        return "train", "validation", "test"
    test = "test" if "test" in splits else "validation" if "validation" in splits else None
    if test is None:
        raise ConfigError(f"data.name: the dataset has no 'test' or 'validation' split (it has {sorted(splits)})")
    held_out = max(1, int(round(validation_fraction * 100)))
    return f"train[:{100 - held_out}%]", f"train[{100 - held_out}%:]", test


def _load_info(tfds, name: str, config: DataConfig):
    """Prepared data first; download only if allowed and the network answers."""
    try:
        _, info = tfds.load(name, split="train", data_dir=config.data_dir, download=False, with_info=True)
        return info
    except tfds.core.registered.DatasetNotFoundError:
        raise ConfigError(f"data.name: unknown dataset {name!r}; use digits, synthetic, image_folder "
                          "or a tensorflow-datasets name such as cifar10, mnist, fashion_mnist") from None
    except (AssertionError, FileNotFoundError, tf.errors.NotFoundError):
        pass  # not prepared in data_dir
    where = config.data_dir or "~/tensorflow_datasets"
    how = (f"prepare it on a machine with network access (`tfds build {name} --data_dir DIR`), copy DIR "
           "here and pass --data-dir DIR")
    builder = tfds.builder(name, data_dir=config.data_dir)
    if builder.MANUAL_DOWNLOAD_INSTRUCTIONS:
        return _prepare_manual(tfds, builder, name, config, where)
    if not config.download:
        raise DataUnavailableError(f"dataset {name!r} is not prepared in {where} and data.download is false; {how}")
    if not _network_reachable():
        raise DataUnavailableError(f"dataset {name!r} is not prepared in {where} and the network is unreachable; {how}")
    builder.download_and_prepare()
    return builder.info


def _prepare_manual(tfds, builder, name: str, config: DataConfig, where: str):
    """Build a manual-download dataset from its files (no network), or say in one line which are missing."""
    manual = Path(config.manual_dir).expanduser() if config.manual_dir else \
        Path(str(builder.data_dir_root)) / "downloads" / "manual"
    needed = MANUAL_FILES.get(_base(name))
    missing = [f for f in needed if not (manual / f).is_file()] if needed else \
        ([] if manual.is_dir() and any(manual.iterdir()) else ["its files"])
    if missing:
        instructions = " ".join(str(builder.MANUAL_DOWNLOAD_INSTRUCTIONS).split())
        raise DataUnavailableError(
            f"dataset {name!r} is not prepared in {where} and its manual download is missing: {', '.join(missing)} "
            f"not in {manual}; put them there or pass --set data.manual_dir=DIR ({instructions})")
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=str(manual)))
    return builder.info


def _load_split(tfds, name: str, split: str, config: DataConfig) -> tf.data.Dataset:
    return tfds.load(name, split=split, data_dir=config.data_dir, download=False, as_supervised=True,
                     shuffle_files=False)


def _input_shape(image_shape, config: DataConfig, name: str) -> tuple[int, int, int]:
    height, width, channels = image_shape
    if config.image_size is not None:
        return (config.image_size, config.image_size, int(channels))
    if height is None or width is None:
        raise ConfigError(f"data.image_size: dataset {name!r} has images of varying size; "
                          "set data.image_size (e.g. --set data.image_size=160)")
    return (int(height), int(width), int(channels))


def _decoder(shape: tuple[int, int, int], image_size: int | None):
    """Images to float32 in [0, 1], resized to ``image_size`` if given; ``None`` keeps each image's size."""
    def to_float(image, label):
        image = tf.image.convert_image_dtype(image, tf.float32)
        if image_size is not None:
            image = tf.image.resize(image, (shape[0], shape[1]))
            image = tf.ensure_shape(image, shape)
        return tf.ensure_shape(image, (None, None, shape[2])), tf.cast(label, tf.int64)

    return to_float


def catalogue_sizes(config: DataConfig) -> tuple[tuple[int, int, int], int, int, int, int] | None:
    """(input shape, classes, train, validation, test examples) of a dataset :data:`CATALOGUE_EXAMPLES` knows,
    as :func:`tfds_source` would split it, without its data (sizing a study before preparing it)."""
    known = CATALOGUE_EXAMPLES.get(_base(config.name))
    if known is None:
        return None
    import tensorflow_datasets as tfds

    features = tfds.builder(config.name, data_dir=config.data_dir).info.features
    total, test = known
    held_out = max(1, int(round(config.validation_fraction * 100)))  # as _split_names: every one holds out
    validation = total * held_out // 100
    shape = _input_shape(features["image"].shape, config, config.name)
    return shape, int(features["label"].num_classes), total - validation, validation, test


def _base(name: str) -> str:
    """``imagenet2012:5.1.0`` → ``imagenet2012``."""
    return name.split(":")[0].split("/")[0]


def _count(dataset: tf.data.Dataset) -> int:
    known = int(dataset.cardinality())
    return known if known >= 0 else int(dataset.reduce(0, lambda n, _: n + 1))


def _network_reachable(timeout: float = 3.0) -> bool:
    try:
        with socket.create_connection(DOWNLOAD_HOST, timeout=timeout):
            return True
    except OSError:
        return False
