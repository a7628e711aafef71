"""Every registered model builds with the data's shape and trains one step; user files load."""

from __future__ import annotations

import numpy as np
import pytest

from tfrewind._keras import keras
from tfrewind.errors import ConfigError, ModelFileError
from tfrewind.models import MODELS, build_model, load_model_file, save_model_atomic
from tfrewind.optim import PaperSGD

SMALL = {"small_cnn": (8, 8, 1), "resnet20": (8, 8, 3), "resnet32": (8, 8, 3), "resnet56": (8, 8, 3),
         "resnet110": (8, 8, 3), "vgg16": (8, 8, 3), "vgg19": (8, 8, 3), "mobilenet_v2": (32, 32, 3),
         "resnet50": (32, 32, 3)}
SLOW = {"resnet110", "resnet50", "vgg19"}


def _one_step(model: keras.Model, shape) -> float:
    model.compile(optimizer=PaperSGD(0.01, momentum=0.9, weight_decay=1e-4),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x = np.random.default_rng(0).normal(size=(4, *shape)).astype("float32")
    y = np.arange(4) % 10
    before = [w.copy() for w in model.get_weights()]
    history = model.fit(x, y, epochs=1, batch_size=4, verbose=0)
    changed = any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    assert changed, "one training step changed no weight"
    return history.history["loss"][0]


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in SMALL])
def test_registered_model_builds_and_trains_one_step(name):
    assert name in MODELS
    shape = SMALL[name]
    model = build_model(name, shape, 10)
    assert model.input_shape[1:] == shape
    assert model.output_shape[-1] == 10
    assert np.isfinite(_one_step(model, shape))


def test_all_registered_models_are_covered():
    assert set(MODELS.names()) == set(SMALL)


def test_resnet_sizes_match_the_paper():
    # He et al.: ResNet-20 0.27M, ResNet-56 0.85M parameters on CIFAR-10.
    assert 0.26e6 < build_model("resnet20", (32, 32, 3), 10).count_params() < 0.28e6
    assert 0.84e6 < build_model("resnet56", (32, 32, 3), 10).count_params() < 0.87e6


def test_unknown_model_lists_choices():
    with pytest.raises(ConfigError, match="resnet20"):
        build_model("resnet21", (8, 8, 1), 10)


def test_applications_need_32_pixels():
    with pytest.raises(ConfigError, match="image_size"):
        build_model("mobilenet_v2", (8, 8, 3), 10)


def test_user_model_file_roundtrip(tmp_path):
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(4, 3, name="c")(inputs)
    x = keras.layers.Flatten()(x)
    outputs = keras.layers.Dense(10)(x)
    model = keras.Model(inputs, outputs)
    for suffix in (".keras", ".h5"):
        path = save_model_atomic(model, tmp_path / f"user{suffix}")
        loaded = build_model(str(path), (8, 8, 1), 10)
        x = np.ones((1, 8, 8, 1), "float32")
        np.testing.assert_allclose(loaded(x).numpy(), model(x).numpy(), atol=1e-6)
    with pytest.raises(ModelFileError, match="classes"):
        build_model(str(tmp_path / "user.keras"), (8, 8, 1), 3)


def test_bad_model_files(tmp_path):
    with pytest.raises(ModelFileError, match="does not exist"):
        load_model_file(tmp_path / "missing.keras")
    corrupt = tmp_path / "corrupt.keras"
    corrupt.write_bytes(b"not a zip archive")
    with pytest.raises(ModelFileError, match="corrupt"):
        load_model_file(corrupt)
    truncated = tmp_path / "trunc.h5"
    truncated.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 20)
    with pytest.raises(ModelFileError, match="could not be loaded"):
        load_model_file(truncated)
    wrong = tmp_path / "model.pt"
    wrong.write_bytes(b"x")
    with pytest.raises(ModelFileError, match=".keras or .h5"):
        load_model_file(wrong)


def test_damaged_keras3_file_is_refused_in_one_line(tmp_path):
    """A Keras 3 file is translated to tf_keras (tests/test_keras3_translate.py); one without weights is not."""
    import json
    import zipfile

    path = tmp_path / "k3.keras"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("metadata.json", json.dumps({"keras_version": "3.15.1"}))
        archive.writestr("config.json", "{}")
    with pytest.raises(ModelFileError, match="Keras 3 could not load it") as info:
        load_model_file(path)
    assert "\n" not in str(info.value)
