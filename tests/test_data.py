"""Datasets: each source yields the right shapes through the real tf.data / tfds paths."""

from __future__ import annotations

import importlib
import socket

import numpy as np
import pytest
import tensorflow_datasets as tfds

from tfrewind.config import DataConfig
from tfrewind.data import DATASETS, load_data
from tfrewind.errors import ConfigError, DataUnavailableError


def _first_batch(dataset):
    images, labels = next(iter(dataset))
    return images.numpy(), labels.numpy()


def test_digits_is_real_offline_data_with_disjoint_splits(digits_bundle):
    bundle = digits_bundle
    assert bundle.input_shape == (8, 8, 1) and bundle.num_classes == 10
    images, labels = _first_batch(bundle.train)
    assert images.shape == (64, 8, 8, 1) and labels.shape == (64,)
    assert abs(images.mean()) < 0.3 and 0.7 < images.std() < 1.3  # normalised
    sizes = [sum(int(y.shape[0]) for _, y in split) for split in (bundle.train, bundle.validation, bundle.test)]
    assert sum(sizes) == 1797 and sizes[0] == bundle.train_examples
    assert sizes[2] > 300 and sizes[1] > 100  # a held-out validation split that is not the test split


def test_digits_test_split_does_not_depend_on_seed():
    a = load_data(DataConfig(name="digits"), seed=0)
    b = load_data(DataConfig(name="digits"), seed=7)
    np.testing.assert_array_equal(_first_batch(a.test)[1], _first_batch(b.test)[1])
    assert not np.array_equal(_first_batch(a.train)[1], _first_batch(b.train)[1])  # order follows the seed


def test_digits_upscaled_keeps_the_same_images_and_splits(digits_bundle):
    bundle = load_data(DataConfig(name="digits", batch_size=64, image_size=32), seed=0)
    assert bundle.input_shape == (32, 32, 1) and bundle.train_examples == digits_bundle.train_examples
    images, labels = _first_batch(bundle.test)
    small, small_labels = _first_batch(digits_bundle.test)
    assert images.shape == (64, 32, 32, 1)
    np.testing.assert_array_equal(labels, small_labels)  # the same test images, only larger
    assert abs(images.mean()) < 0.3 and 0.7 < images.std() < 1.3  # normalised at the new size
    # each 8×8 pixel becomes a 4×4 patch: averaging the patches gives back (nearly) the small image
    pooled = images.reshape(64, 8, 4, 8, 4).mean(axis=(2, 4))
    assert np.corrcoef(pooled.ravel(), small.ravel())[0, 1] > 0.95


def test_cifar_style_augmentation_changes_images_but_not_labels():
    bundle = load_data(DataConfig(name="synthetic", batch_size=8, augment="cifar", shuffle_buffer=1), seed=0)
    plain = load_data(DataConfig(name="synthetic", batch_size=8, augment="none", shuffle_buffer=1), seed=0)
    augmented, labels = _first_batch(bundle.train)
    original, labels_plain = _first_batch(plain.train)
    np.testing.assert_array_equal(labels, labels_plain)
    assert augmented.shape == original.shape == (8, 32, 32, 3)
    assert not np.allclose(augmented, original)


@pytest.mark.parametrize("name, shape, extra", [
    ("cifar10", (32, 32, 3), {}),
    ("cifar100", (32, 32, 3), {}),
    ("mnist", (28, 28, 1), {}),
    ("fashion_mnist", (28, 28, 1), {}),
    ("imagenette", (32, 32, 3), {"image_size": 32}),
])
def test_tfds_datasets_through_mock_data(name, shape, extra):
    with tfds.testing.mock_data(num_examples=40):
        bundle = load_data(DataConfig(name=name, batch_size=16, **extra), seed=0)
        images, labels = _first_batch(bundle.train)
        test_images, _ = _first_batch(bundle.test)
    assert bundle.input_shape == shape
    assert images.shape == (16, *shape) and test_images.shape[1:] == shape
    assert images.dtype == np.float32 and labels.dtype == np.int64
    assert labels.max() < bundle.num_classes


def test_imagenette_without_size_asks_for_one():
    with tfds.testing.mock_data(num_examples=4):
        with pytest.raises(ConfigError, match="image_size"):
            load_data(DataConfig(name="imagenette"))


def _closed_local_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_unprepared_dataset_offline_says_how_to_provide_it(tmp_path, monkeypatch):
    with pytest.raises(DataUnavailableError, match="--data-dir"):
        load_data(DataConfig(name="cifar10", data_dir=str(tmp_path), download=False))
    # Download allowed but no network: a quick, clear error instead of minutes of retries. The download
    # host is a closed local port, so the probe fails on any machine, the ones with network included.
    source = importlib.import_module("tfrewind.data.tfds_source")  # the package re-exports a function of that name
    monkeypatch.setattr(source, "DOWNLOAD_HOST", ("127.0.0.1", _closed_local_port()))
    with pytest.raises(DataUnavailableError, match="network is unreachable.*tfds build cifar10"):
        load_data(DataConfig(name="cifar10", data_dir=str(tmp_path)))


def test_unknown_dataset_name():
    with pytest.raises(ConfigError, match="unknown dataset"):
        load_data(DataConfig(name="no_such_dataset_xyz"))


def test_image_folder_with_users_own_classes(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for cls in ("cat", "dog", "fox"):
        (tmp_path / cls).mkdir()
        for i in range(10):
            pixels = rng.integers(0, 255, size=(20, 20, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(tmp_path / cls / f"{i}.png")
    bundle = load_data(DataConfig(name="image_folder", data_dir=str(tmp_path), image_size=16, batch_size=4))
    images, labels = _first_batch(bundle.train)
    assert bundle.num_classes == 3 and bundle.input_shape == (16, 16, 3)
    assert images.shape == (4, 16, 16, 3)
    counts = [sum(int(y.shape[0]) for _, y in s) for s in (bundle.train, bundle.validation, bundle.test)]
    assert sum(counts) == 30 and all(c > 0 for c in counts)


def test_image_folder_errors(tmp_path):
    with pytest.raises(ConfigError, match="data-dir"):
        load_data(DataConfig(name="image_folder"))
    with pytest.raises(DataUnavailableError, match="does not exist"):
        load_data(DataConfig(name="image_folder", data_dir=str(tmp_path / "missing")))


def test_registry_lists_offline_sources():
    assert {"digits", "synthetic", "image_folder"} <= set(DATASETS.names())
