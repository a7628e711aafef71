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


# ----------------------------------------------------------------------------- ImageNet (imagenet2012)


def _coordinates(height: int, width: int):
    """An image whose channels 0/1 hold each pixel's row/column: a crop shows which region it took."""
    import tensorflow as tf

    rows, cols = np.meshgrid(np.arange(height, dtype=np.float32), np.arange(width, dtype=np.float32), indexing="ij")
    return tf.constant(np.stack([rows, cols, np.zeros_like(rows)], axis=-1))


def test_random_resized_crops_take_8_to_100_percent_at_torchvision_aspect_ratios():
    from tfrewind.data.crops import random_resized_crop

    image = _coordinates(300, 400)
    areas, flips = [], 0
    for position in range(60):
        crop = random_resized_crop(7, position, image, (32, 32)).numpy()
        rows, cols = crop[..., 0], crop[..., 1]
        height, width = rows.max() - rows.min() + 1, np.abs(cols[:, -1] - cols[:, 0]).max() + 1
        areas.append(height * width / (300 * 400))
        assert 3 / 4 - 0.1 < width / height < 4 / 3 + 0.1
        flips += bool(cols[0, 0] > cols[0, -1])
        np.testing.assert_array_equal(crop, random_resized_crop(7, position, image, (32, 32)).numpy())  # repeatable
    assert 0.07 < min(areas) < 0.3 and max(areas) > 0.6 and max(areas) <= 1.01
    assert 10 < flips < 50  # horizontal flips about half of the time


def test_evaluation_view_is_resize_256_then_center_crop_224():
    from tfrewind.data.crops import center_crop

    crop = center_crop(_coordinates(300, 400), (224, 224)).numpy()
    assert crop.shape == (224, 224, 3)
    # short side 300 → 256 (×0.853): the 224 crop spans 224/0.853 ≈ 262 original rows around the center
    span = crop[-1, 0, 0] - crop[0, 0, 0]
    assert 255 < span < 263
    assert abs((crop[0, 0, 0] + crop[-1, 0, 0]) / 2 - 149.5) < 1 and abs((crop[0, 0, 1] + crop[0, -1, 1]) / 2 - 199.5) < 1


def test_imagenet2012_through_mock_data_crops_every_split_to_the_model_size():
    config = DataConfig(name="imagenet2012", batch_size=8, image_size=32, augment="imagenet", validation_fraction=0.1)
    with tfds.testing.mock_data(num_examples=24):  # images of random sizes, as ImageNet's
        bundle = load_data(config, seed=0)
        batches = [_first_batch(split) for split in (bundle.train, bundle.validation, bundle.test, bundle.train_plain)]
        again = _first_batch(load_data(config, seed=0).train)
    assert bundle.input_shape == (32, 32, 3) and bundle.num_classes == 1000
    assert all(images.shape == (8, 32, 32, 3) and labels.max() < 1000 for images, labels in batches)
    np.testing.assert_array_equal(batches[0][0], again[0])  # same seed, same crops
    train, plain = batches[0][0], batches[3][0]
    assert not np.allclose(train, plain)  # random-resized crops for training, center crops otherwise


def test_imagenet_test_split_is_its_labelled_validation_split():
    from tfrewind.data.tfds_source import SPLITS, _split_names

    # ImageNet's own test split has no labels (−1): test on validation, hold validation out of train
    assert _split_names(SPLITS["imagenet2012"], 0.01) == ("train[:99%]", "train[99%:]", "validation")


def test_imagenet2012_without_its_manual_files_says_which_are_missing(tmp_path, capsys):
    from clirun import run_cli

    manual = tmp_path / "manual"
    manual.mkdir()
    (manual / "ILSVRC2012_img_train.tar").write_bytes(b"")
    with pytest.raises(DataUnavailableError, match=r"ILSVRC2012_img_val\.tar not in .*manual"):
        load_data(DataConfig(name="imagenet2012", data_dir=str(tmp_path / "tfds"), image_size=224,
                             manual_dir=str(manual), download=False))
    code, _, err = run_cli(["train", "--dataset", "imagenet2012", "--data-dir", tmp_path / "tfds", "--model",
                            "resnet18", "--set", "data.image_size=224", "--epochs", "1", "--out", tmp_path / "run"],
                           capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    default_manual = str(tmp_path / "tfds" / "downloads" / "manual")
    assert "ILSVRC2012_img_train.tar, ILSVRC2012_img_val.tar not in " + default_manual in err
    assert "data.manual_dir" in err
