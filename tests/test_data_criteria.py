"""Channel criteria that read training data: taylor (first-order Taylor) and hrank (feature-map rank)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from clirun import run_cli
from tfrewind._keras import keras
from tfrewind.config import PruneConfig
from tfrewind.errors import ConfigError
from tfrewind.models import build_model
from tfrewind.pruning import prune
from tfrewind.pruning.channels import analyse
from tfrewind.pruning.criteria import CRITERIA, ScoreInput
from tfrewind.pruning.wrappers import all_layers

L = keras.layers
USELESS = 5
"""The channel of conv2 each test makes useless."""


@pytest.fixture(scope="module")
def batches(digits_bundle):
    return digits_bundle.first_batches(3)


def with_useless_channel(model: keras.Model, layer: str = "conv2") -> keras.Model:
    """Zero one filter: its output is a constant map, it adds nothing the next layers can use."""
    kernel = model.get_layer(layer).kernel.numpy()
    kernel[..., USELESS] = 0.0
    model.get_layer(layer).kernel.assign(kernel)
    return model


def scores(model: keras.Model, criterion: str, batches, layer: str = "conv2") -> np.ndarray:
    cg = analyse(model)
    return CRITERIA.get(criterion)(ScoreInput(cg, 0, batches), cg.group_of(layer))


@pytest.mark.parametrize("criterion", ["taylor", "hrank"])
def test_scores_repeat_and_rank_a_useless_channel_lowest(batches, criterion):
    model = with_useless_channel(build_model("small_cnn", (8, 8, 1), 10))
    first, again = scores(model, criterion, batches), scores(model, criterion, batches)
    np.testing.assert_array_equal(first, again)
    assert first.shape == (32,)
    others = np.delete(first, USELESS)
    assert first[USELESS] < others.min() and others.min() > 0.0
    other_batches = batches[1:]  # the scores do read the data
    assert not np.array_equal(scores(model, criterion, other_batches), first)


@pytest.mark.parametrize("method", ["taylor_filter", "hrank_filter"])
def test_data_criteria_prune_exactly_and_drop_the_useless_channel(batches, method):
    model = with_useless_channel(build_model("small_cnn", (8, 8, 1), 10))
    result = prune(model, PruneConfig(method=method, sparsity=0.5), seed=0, batches=batches)
    again = prune(model, PruneConfig(method=method, sparsity=0.5), seed=0, batches=iter(batches))
    report = result.report
    assert report["criterion"] == method.split("_")[0]
    assert report["rebuild_max_abs_diff"] <= 1e-5
    kept = {row["layer"]: row["kept_filters"] for row in report["layers"]}
    assert kept == {row["layer"]: row["kept_filters"] for row in again.report["layers"]}
    assert USELESS not in kept["conv2"] and len(kept["conv2"]) == 16
    assert result.model.get_layer("conv2").kernel.shape[-1] == 16


def test_data_criteria_without_batches_are_refused_in_one_line():
    model = build_model("small_cnn", (8, 8, 1), 10)
    with pytest.raises(ConfigError, match="taylor.*training data"):
        prune(model, PruneConfig(method="taylor_filter", sparsity=0.5), seed=0)
    with pytest.raises(ConfigError, match="hrank.*no batches"):
        prune(model, PruneConfig(method="hrank_filter", sparsity=0.5), seed=0, batches=[])


def nested_model() -> keras.Model:
    """A backbone model nested in an outer one: hrank must see the backbone's inner feature maps."""
    inner_in = keras.Input((8, 8, 4))
    x = L.Conv2D(6, 3, padding="same", name="inner_conv")(inner_in)
    x = L.BatchNormalization(name="inner_bn")(x)
    x = L.ReLU(name="inner_relu")(x)
    backbone = keras.Model(inner_in, x, name="backbone")
    inputs = keras.Input((8, 8, 1))
    y = L.Conv2D(4, 3, padding="same", name="stem")(inputs)
    y = backbone(y)
    y = L.GlobalAveragePooling2D(name="gap")(y)
    return keras.Model(inputs, L.Dense(10, name="fc")(y))


def test_hrank_reads_feature_maps_inside_nested_models_and_restores_every_layer(batches):
    model = nested_model()
    with_useless_channel(model.get_layer("backbone"), "inner_conv")
    expected = model(batches[0][0], training=False).numpy()
    inner = scores(model, "hrank", batches, "inner_conv")
    assert inner.argmin() == USELESS and inner[USELESS] < np.delete(inner, USELESS).min()
    # Ranks of the maps after BN and ReLU, as HRank's code reads them (a ReLU map has rank ≤ 8 here).
    relu_maps = keras.Model(model.get_layer("backbone").input, model.get_layer("backbone").output)(
        model.get_layer("stem")(batches[0][0]), training=False).numpy()
    first_image = [np.linalg.matrix_rank(relu_maps[0, :, :, c]) for c in range(6)]
    single = scores(model, "hrank", [(batches[0][0][:1], batches[0][1][:1])], "inner_conv")
    np.testing.assert_array_equal(single, first_image)
    assert all("call" not in layer.__dict__ for layer in all_layers(model))
    with pytest.raises(ValueError):  # a batch the model cannot take: the layers are restored all the same
        scores(model, "hrank", [(np.zeros((2, 5, 5, 1), np.float32), np.zeros(2, np.int64))], "inner_conv")
    assert all("call" not in layer.__dict__ for layer in all_layers(model))
    np.testing.assert_array_equal(model(batches[0][0], training=False).numpy(), expected)


def test_taylor_uses_probabilities_when_the_model_ends_in_softmax(batches):
    """The same network with logits or a softmax output has the same loss, hence the same scores."""
    logits = build_model("small_cnn", (8, 8, 1), 10)
    config = logits.get_config()
    config["layers"][-1]["config"]["activation"] = "softmax"
    probabilities = keras.Model.from_config(config)
    probabilities.set_weights(logits.get_weights())
    np.testing.assert_allclose(scores(probabilities, "taylor", batches), scores(logits, "taylor", batches),
                               rtol=1e-4, atol=1e-9)


def test_hrank_refuses_a_dense_group_unless_it_is_ignored(batches):
    inputs = keras.Input((8, 8, 1))
    x = L.Conv2D(8, 3, activation="relu", name="conv1")(inputs)
    x = L.Conv2D(8, 3, name="conv2")(x)
    x = L.Flatten()(x)
    x = L.Dense(16, activation="relu", name="hidden")(x)
    model = keras.Model(inputs, L.Dense(10, name="fc")(x))
    with pytest.raises(ConfigError, match="'hidden'.*no 2-D feature maps"):
        prune(model, PruneConfig(method="hrank_filter", sparsity=0.5), seed=0, batches=batches)
    result = prune(model, PruneConfig(method="hrank_filter", sparsity=0.5, ignored_layers=["hidden"]), seed=0,
                   batches=batches)  # conv2 feeds hidden: it stays whole too
    assert [result.model.get_layer(n).get_config()[k] for n, k in
            [("conv1", "filters"), ("conv2", "filters"), ("hidden", "units")]] == [4, 8, 16]


def test_prune_command_reads_the_dataset_for_data_criteria(tmp_path, capsys):
    path = tmp_path / "cnn.keras"
    with_useless_channel(build_model("small_cnn", (8, 8, 1), 10)).save(path)
    code, _, err = run_cli(["prune", path, "--prune", "taylor_filter", "--sparsity", "0.5"], capsys)
    assert code == 2 and "--dataset" in err and "Traceback" not in err
    assert not (tmp_path / "cnn_pruned.keras").exists()
    code, _, err = run_cli(["prune", path, "--prune", "hrank_filter", "--dataset", "synthetic"], capsys)
    assert code == 2 and "(8, 8, 1)" in err and "(32, 32, 3)" in err
    code, out, _ = run_cli(["prune", path, "--prune", "taylor_filter", "--sparsity", "0.5", "--dataset", "digits"],
                           capsys)
    assert code == 0 and "pruned model" in out
    report = json.loads((tmp_path / "cnn_pruned.json").read_text())["report"]
    assert report["criterion"] == "taylor" and report["rebuild_max_abs_diff"] <= 1e-5
    assert USELESS not in next(r for r in report["layers"] if r["layer"] == "conv2")["kept_filters"]


def test_the_pipeline_reads_the_same_few_batches_and_only_for_data_criteria(digits_bundle):
    """The prune stage and every SFP epoch score on the same training batches: repeatable choices."""
    from tfrewind.pruning import SCORE_BATCHES
    from tfrewind.stages import score_batches

    first, again = score_batches(digits_bundle, "hrank_filter"), score_batches(digits_bundle, "taylor_filter")
    assert len(first) == SCORE_BATCHES and all(len(x) == digits_bundle.batch_size for x, _ in first)
    for (x1, y1), (x2, y2) in zip(first, again):
        np.testing.assert_array_equal(x1, x2)
        np.testing.assert_array_equal(y1, y2)
    assert score_batches(digits_bundle, "l1_filter") is None and score_batches(digits_bundle, "magnitude") is None
