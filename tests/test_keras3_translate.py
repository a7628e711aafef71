"""Keras 3 in, Keras 3 out: models built with ``import keras`` cross to tf_keras and back exactly.

Every check is made here, independently of the translation's own check: weights are compared
layer by layer, outputs on inputs the translation never saw, files reloaded with Keras 3 itself.
"""

from __future__ import annotations

import numpy as np
import pytest

from tfrewind._keras import keras as tf_keras
from tfrewind.config import PruneConfig
from tfrewind.errors import TranslationError
from tfrewind.keras3 import to_keras3, to_tf_keras
from tfrewind.models import load_model_file
from tfrewind.pruning import prune, strip

keras = pytest.importorskip("keras")


@pytest.fixture(autouse=True)
def _keras3_seed():
    keras.utils.set_random_seed(0)


def residual_concat_model():
    """A functional model with a residual Add, a Concatenate, a nested Sequential and `x * (x * 0.5)` (ops)."""
    inputs = keras.Input((8, 8, 3), name="image")
    x = keras.layers.Conv2D(8, 3, padding="same", name="stem")(inputs)
    x = keras.layers.BatchNormalization(name="stem_bn")(x)
    x = keras.layers.ReLU(name="stem_relu")(x)
    y = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="branch")(x)
    x = keras.layers.Add(name="residual")([x, y])
    inner = keras.Sequential([keras.Input((8, 8, 16)), keras.layers.Conv2D(4, 1, name="inner_conv")], name="inner")
    x = inner(keras.layers.Concatenate(name="concat")([x, y]))
    x = x * (x * 0.5)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    return keras.Model(inputs, keras.layers.Dense(10, name="logits")(x), name="residual_concat")


def fresh_inputs(shape, seed=7):
    return np.random.default_rng(seed).uniform(-2, 2, (5, *shape)).astype(np.float32)


def all_weights(model) -> dict[str, list[np.ndarray]]:
    """Layer name → weights, nested models' layers included (what a user would compare)."""
    out = {}
    for layer in model.layers:
        if hasattr(layer, "layers"):
            out.update(all_weights(layer))
        elif layer.weights:
            out[layer.name] = [np.asarray(w) for w in layer.get_weights()]
    return out


def test_functional_model_crosses_to_tf_keras_with_the_same_weights_and_outputs():
    model = residual_concat_model()
    legacy = to_tf_keras(model)
    assert isinstance(legacy, tf_keras.Model)
    ours, theirs = all_weights(legacy), all_weights(model)
    assert ours.keys() == theirs.keys() and "inner_conv" in ours
    for name in theirs:
        assert all(np.array_equal(a, b) for a, b in zip(ours[name], theirs[name])), name
    x = fresh_inputs((8, 8, 3))
    assert np.max(np.abs(legacy(x).numpy() - np.asarray(model(x)))) <= 1e-5


def test_pruned_model_returns_to_keras3_with_its_zeros(tmp_path):
    """Keras 3 → tfmot magnitude pruning → stripped → Keras 3 file: the zeros are the pruned ones."""
    model = residual_concat_model()
    pruned = strip(prune(model, PruneConfig(method="magnitude", sparsity=0.5), seed=0).model)
    back = to_keras3(pruned)
    back.save(tmp_path / "pruned.keras")
    reloaded = keras.saving.load_model(tmp_path / "pruned.keras")
    assert type(reloaded).__module__.startswith("keras.")  # a Keras 3 model, loaded by Keras 3
    mine = all_weights(reloaded)
    for name, weights in all_weights(pruned).items():
        for a, b in zip(weights, mine[name]):
            assert np.array_equal(a, b), name
    kernel = mine["branch"][0]
    assert np.mean(kernel == 0) >= 0.5 - 1 / kernel.size
    x = fresh_inputs((8, 8, 3))
    assert np.max(np.abs(np.asarray(reloaded(x)) - pruned(x).numpy())) <= 1e-5


@keras.saving.register_keras_serializable(package="mine")
class Doubler(keras.layers.Layer):
    def call(self, x):
        return 2 * x


def _with(layer):
    inputs = keras.Input((4,))
    return keras.Model(inputs, keras.layers.Dense(2)(layer(inputs)))


@pytest.mark.parametrize("layer, needle", [
    (lambda: Doubler(name="my_doubler"), "'my_doubler' (custom class"),
    (lambda: keras.layers.Lambda(lambda x: x + 1, name="plus_one"), "'plus_one' (a Lambda"),
    (lambda: keras.layers.Dense(4, lora_rank=2, name="adapted"), "'adapted' (Dense): lora_rank=2"),
])
def test_a_layer_without_an_exact_twin_is_refused_in_one_line_naming_it(layer, needle):
    with pytest.raises(TranslationError) as info:
        to_tf_keras(_with(layer()))
    assert needle in str(info.value) and "\n" not in str(info.value)


def test_a_custom_layer_file_is_refused_by_the_cli_before_anything_is_written(tmp_path, capsys):
    from clirun import run_cli

    _with(Doubler(name="my_doubler")).save(tmp_path / "custom.keras")
    code, _, err = run_cli(["train", "--model", tmp_path / "custom.keras", "--out", tmp_path / "run"], capsys)
    assert code == 2 and "my_doubler" in err and "custom class" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "run").exists()


def test_a_keras3_h5_file_loads_as_tf_keras(tmp_path):
    """tf_keras alone fails on it (`InputLayer … batch_shape`); the translation takes it."""
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(3, activation="relu"), keras.layers.Dense(2)])
    model.save(tmp_path / "k3.h5")
    legacy = load_model_file(tmp_path / "k3.h5")
    assert isinstance(legacy, tf_keras.Sequential)
    x = fresh_inputs((6,))
    assert np.max(np.abs(legacy(x).numpy() - np.asarray(model(x)))) <= 1e-5


def test_mobilenet_v2_application_crosses_both_ways():
    """Depthwise convs, ReLU6, ZeroPadding, residual Adds: MobileNetV2 at 32×32, alpha 0.35."""
    model = keras.applications.MobileNetV2(input_shape=(32, 32, 3), alpha=0.35, weights=None, classes=10)
    legacy = to_tf_keras(model)
    back = to_keras3(legacy)
    x = fresh_inputs((32, 32, 3))
    assert len(legacy.layers) == len(model.layers)
    assert np.max(np.abs(np.asarray(back(x)) - np.asarray(model(x)))) <= 1e-5


def test_a_subclassed_keras3_model_handed_to_prune_is_refused_in_one_line():
    class Mine(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(2)

        def call(self, x):
            return self.dense(x)

    model = Mine()
    model(np.ones((1, 3), np.float32))
    with pytest.raises(TranslationError, match="subclassed") as info:
        prune(model, PruneConfig(method="magnitude", sparsity=0.5), seed=0)
    assert "\n" not in str(info.value)


def _application_layers_model():
    """The Keras 3 pieces applications use beyond keras.layers: ConvNeXt's LayerScale,
    InceptionResNetV2's CustomScaleLayer, MobileNetV3's hard_silu/hard_sigmoid activations."""
    from keras.src.applications.convnext import LayerScale
    from keras.src.applications.inception_resnet_v2 import CustomScaleLayer

    inputs = keras.Input((6, 6, 4))
    x = keras.layers.Conv2D(4, 1, name="conv")(inputs)
    x = LayerScale(0.5, 4, name="scale")(x)
    x = CustomScaleLayer(0.17, name="mix")([inputs, x])
    x = keras.layers.Activation("hard_silu", name="hswish")(x)
    x = keras.layers.Activation("hard_sigmoid", name="hsigmoid")(x)
    return keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(x), name="application_layers")


def test_application_layers_cross_both_ways_and_reload_from_a_tfrewind_stage_file(tmp_path):
    from tfrewind.models import save_model_atomic

    model = _application_layers_model()
    model.get_layer("scale").set_weights([np.array([0.5, -1.0, 2.0, 0.25], np.float32)])
    legacy = to_tf_keras(model)
    reloaded = load_model_file(save_model_atomic(legacy, tmp_path / "stage.keras"))  # as the pipeline does
    back = to_keras3(reloaded)
    x = fresh_inputs((6, 6, 4))
    want = np.asarray(model(x))
    assert np.max(np.abs(reloaded(x).numpy() - want)) <= 1e-5
    assert np.max(np.abs(np.asarray(back(x)) - want)) <= 1e-5
