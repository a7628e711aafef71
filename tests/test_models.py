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
         "mobilenet_v2_035": (32, 32, 1), "resnet50": (32, 32, 3), "resnet18": (32, 32, 3)}
SLOW = {"resnet110", "resnet50", "vgg19", "resnet18", "mobilenet_v2_035"}  # the 0.35 one trains like mobilenet_v2
BUILT_ELSEWHERE = {"resnet34"}
"""Built by test_imagenet_resnets_are_torchvisions; its builder is resnet18's (a step costs ~30 s here)."""
DEEPER = {"resnet32": "resnet20", "resnet56": "resnet20", "resnet110": "resnet20", "vgg19": "vgg16",
          "resnet50": "mobilenet_v2", "mobilenet_v2_035": "mobilenet_v2"}
"""Further models of one builder (resnet_cifar, vgg_cifar, the applications wrapper) whose first model,
the value, takes the traced step: they run the same ``train_step`` eagerly. Tracing dominates one step
(resnet110: ~28 CPU s traced, ~7 eager) and adds nothing the traced step of the builder did not show."""


def _one_step(model: keras.Model, shape, eager: bool = False) -> float:
    model.compile(optimizer=PaperSGD(0.01, momentum=0.9, weight_decay=1e-4),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), run_eagerly=eager)
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
    assert np.isfinite(_one_step(model, shape, eager=name in DEEPER))


def test_all_registered_models_are_covered():
    assert set(MODELS.names()) == set(SMALL) | BUILT_ELSEWHERE
    assert set(DEEPER) < set(SMALL) and not set(DEEPER.values()) & set(DEEPER)  # every builder traced once


def test_resnet_sizes_match_the_paper():
    # He et al.: ResNet-20 0.27M, ResNet-56 0.85M parameters on CIFAR-10.
    assert 0.26e6 < build_model("resnet20", (32, 32, 3), 10).count_params() < 0.28e6
    assert 0.84e6 < build_model("resnet56", (32, 32, 3), 10).count_params() < 0.87e6


def _torchvision_resnet_params(blocks: tuple[int, ...], classes: int = 1000) -> int:
    """torchvision's ``sum(p.numel() for p in resnet.parameters())``, counted from its architecture:
    7×7 stem + BN, BasicBlocks (two 3×3 convs + BNs, a 1×1 projection + BN where the shape changes), fc."""
    total, c_in = 7 * 7 * 3 * 64 + 2 * 64, 64
    for width, count in zip((64, 128, 256, 512), blocks):
        for block in range(count):
            total += 9 * c_in * width + 2 * width + 9 * width * width + 2 * width
            if block == 0 and c_in != width:
                total += c_in * width + 2 * width
            c_in = width
    return total + 512 * classes + classes


@pytest.fixture(scope="module")
def resnet34():
    return build_model("resnet34", (224, 224, 3), 1000)


@pytest.mark.parametrize("name, blocks, torchvision", [("resnet18", (2, 2, 2, 2), 11_689_512),
                                                       ("resnet34", (3, 4, 6, 3), 21_797_672)])
def test_imagenet_resnets_are_torchvisions(name, blocks, torchvision, request):
    model = request.getfixturevalue("resnet34") if name == "resnet34" else build_model(name, (224, 224, 3), 1000)
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)  # BN moving stats are not parameters
    assert trainable == _torchvision_resnet_params(blocks) == torchvision
    # torchvision's feature-map sizes: 112 after the stem, 56 after the max pool, then 56/28/14/7 per stage
    sizes = {layer: model.get_layer(layer).output_shape[1] for layer in
             ("relu", "maxpool", "layer1_0_relu2", "layer2_0_relu2", "layer3_0_relu2", "layer4_0_relu2")}
    assert sizes == {"relu": 112, "maxpool": 56, "layer1_0_relu2": 56, "layer2_0_relu2": 28,
                     "layer3_0_relu2": 14, "layer4_0_relu2": 7}


# Filters removed per block of ResNet-34 (first convs, blocks 0-based per stage), read off NPTM's
# norm-pruning/imagenet/l1-norm-pruning/res34prune.py: skip lists and stage ratios of each version.
RES34_PRUNED = {
    "A": {0.3: ["layer1_1", "layer1_2", "layer2_1", "layer2_2", "layer3_1", "layer3_2", "layer3_3", "layer3_4"]},
    "B": {0.5: ["layer1_1", "layer1_2"], 0.6: ["layer2_1", "layer2_2"],
          0.4: ["layer3_1", "layer3_2", "layer3_3", "layer3_4"]},
    "C": {0.5: ["layer1_1", "layer1_2", "layer2_1", "layer2_2", "layer3_1", "layer3_2", "layer3_3", "layer3_4",
                "layer4_0", "layer4_1"]},
    "D": {0.4: ["layer1_0", "layer1_1", "layer1_2", "layer2_0", "layer2_1", "layer2_2", "layer2_3"],
          0.5: ["layer3_0", "layer3_1", "layer3_2", "layer3_3", "layer3_4", "layer3_5", "layer4_0", "layer4_1"]},
}


@pytest.mark.parametrize("version", sorted(RES34_PRUNED))
def test_resnet34_presets_resolve_on_the_model(version, resnet34):
    from tfrewind.config import PruneConfig
    from tfrewind.pruning import PRESETS, check

    preset = f"resnet34-{version}"
    expected = {f"{block}_conv1": ratio for ratio, blocks in RES34_PRUNED[version].items() for block in blocks}
    assert {name: r for name, r in PRESETS[preset].items() if r} == expected
    for method in ("l1_filter", "random_filter"):  # what a run checks before original training
        check(resnet34, PruneConfig(method=method, preset=preset), seed=0, preset=preset)
    with pytest.raises(ConfigError, match="no conv or dense layer .layer1_0_conv1"):  # CIFAR ResNets: other names
        check(build_model("resnet20", (8, 8, 3), 10), PruneConfig(method="l1_filter", preset=preset), seed=0,
              preset=preset)


def test_mobilenet_v2_035_is_keras_width_035_with_fresh_batch_norm_statistics():
    # Keras documents MobileNetV2 at alpha 0.35 (1,000 classes) with 1.66 M parameters (any input size).
    model = build_model("mobilenet_v2_035", (32, 32, 3), 1000)
    assert 1.6e6 < model.count_params() < 1.7e6
    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert norms and {layer.momentum for layer in norms} == {0.9}  # not Keras' 0.999 (stale after pruning)
    with pytest.raises(ConfigError, match="image_size"):
        build_model("mobilenet_v2_035", (8, 8, 1), 10)


def test_unknown_model_lists_choices():
    with pytest.raises(ConfigError, match="resnet20"):
        build_model("resnet21", (8, 8, 1), 10)


@pytest.mark.parametrize("name", ["mobilenet_v2", "resnet18"])
def test_imagenet_models_need_32_pixels(name):
    with pytest.raises(ConfigError, match="image_size"):
        build_model(name, (8, 8, 3), 10)


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
