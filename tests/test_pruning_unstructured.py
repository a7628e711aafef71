"""Unstructured pruning on tfmot wrappers: targets, one global threshold, random baselines with the
reference's per-layer ratios, and masks that stay fixed through training, saving and stripping."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from tfrewind._keras import keras
from tfrewind.config import PruneConfig
from tfrewind.errors import ConfigError
from tfrewind.models import MODELS, load_model_file
from tfrewind.pruning import (iterative_plan, iterative_targets, masks, prune, pruning_callbacks,
                              sparsity_report, strip, wrappers)

L = keras.layers


def resnet20():
    return MODELS.get("resnet20")((8, 8, 3), 10)


def user_model() -> keras.Model:
    """A user's functional model with a branch, a Dense head and no batch norm."""
    inputs = keras.Input((8, 8, 2))
    a = L.Conv2D(6, 3, padding="same", activation="relu", name="stem")(inputs)
    b = L.Conv2D(6, 1, name="branch")(a)
    x = L.Concatenate(name="cat")([a, b])
    x = L.Flatten(name="flat")(x)
    outputs = L.Dense(5, name="head")(x)
    return keras.Model(inputs, outputs, name="user")


def effective(model) -> dict[str, np.ndarray]:
    """Kernel values as the wrapped model computes with them."""
    ms = masks(model)
    return {name: w.layer.get_weights()[0] * ms[name] for name, w in wrappers(model).items()}


def fit_a_few_steps(model, shape, steps=3):
    model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(1)
    x = rng.normal(size=(4 * steps, *shape)).astype("float32")
    y = rng.integers(0, model.output_shape[-1], size=4 * steps)
    model.fit(x, y, batch_size=4, epochs=2, verbose=0, callbacks=pruning_callbacks(model))


@pytest.mark.parametrize("build", [resnet20, user_model])
def test_magnitude_reaches_target_in_every_layer_and_prunes_the_smallest(build):
    model = build()
    result = prune(model, PruneConfig(method="magnitude", sparsity=0.6), seed=0)
    assert not result.structured
    for row in result.report["layers"]:
        assert abs(row["sparsity"] - 0.6) <= 1.0 / row["size"] + 1e-9, row["layer"]
    original = {l.name: l.get_weights()[0] for l in model.layers if l.name in wrappers(result.model)}
    for name, mask in masks(result.model).items():
        w = np.abs(original[name])
        assert w[mask == 1].min() >= w[mask == 0].max(), name


def test_only_conv_and_dense_are_wrapped_and_names_stay_findable():
    model = resnet20()
    pruned = prune(model, PruneConfig(method="magnitude", sparsity=0.5), seed=0).model
    convs_and_dense = {l.name for l in model.layers if isinstance(l, (L.Conv2D, L.Dense))}
    assert set(wrappers(pruned)) == convs_and_dense
    assert isinstance(pruned.get_layer("bn0"), L.BatchNormalization)
    assert isinstance(pruned.get_layer("s1b1_add"), L.Add)


def test_pruning_leaves_the_callers_model_dense():
    model = resnet20()
    before = [w.copy() for w in model.get_weights()]
    prune(model, PruneConfig(method="global_magnitude", sparsity=0.9), seed=0)
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))


def test_global_magnitude_uses_one_threshold_across_layers():
    model = resnet20()
    result = prune(model, PruneConfig(method="global_magnitude", sparsity=0.8), seed=0)
    threshold = result.report["threshold"]
    kept, pruned = [], []
    original = {l.name: l.get_weights()[0] for l in model.layers if l.get_weights()}
    for name, mask in masks(result.model).items():
        w = np.abs(original[name])
        kept.append(w[mask == 1])
        pruned.append(w[mask == 0])
    assert np.concatenate(kept).min() >= threshold >= np.concatenate(pruned).max()
    assert result.report["sparsity"] == pytest.approx(0.8, abs=1e-4)
    json.loads(json.dumps(result.report))  # goes into metrics.json as is
    ratios = [row["sparsity"] for row in result.report["layers"]]
    assert max(ratios) - min(ratios) > 0.1, "one threshold should give different per-layer ratios"


@pytest.mark.parametrize("reference", ["global_magnitude", "magnitude", "uniform"])
def test_random_masks_copy_the_reference_ratios_and_depend_on_the_seed(reference):
    model = resnet20() if reference == "global_magnitude" else MODELS.get("small_cnn")((8, 8, 1), 10)
    ref_method = "magnitude" if reference == "uniform" else reference
    ref = prune(model, PruneConfig(method=ref_method, sparsity=0.7), seed=0)
    config = PruneConfig(method="random", sparsity=0.7, ratios_from=reference)
    a, b, a_again = (prune(model, config, seed=s) for s in (1, 2, 1))
    ref_zeros = {n: int((m == 0).sum()) for n, m in masks(ref.model).items()}
    for result in (a, b):
        assert {n: int((m == 0).sum()) for n, m in masks(result.model).items()} == ref_zeros
    ma, mb, ma2 = masks(a.model), masks(b.model), masks(a_again.model)
    assert all(not np.array_equal(ma[n], mb[n]) for n in ma if ref_zeros[n] > 0)
    assert all(np.array_equal(ma[n], ma2[n]) for n in ma)
    assert any(not np.array_equal(ma[n], masks(ref.model)[n]) for n in ma)


def test_masks_and_zeros_survive_training_saving_loading_and_strip(tmp_path):
    model = MODELS.get("small_cnn")((8, 8, 1), 10)
    pruned = prune(model, PruneConfig(method="random", sparsity=0.75), seed=3).model
    before = masks(pruned)
    fit_a_few_steps(pruned, (8, 8, 1))
    after = masks(pruned)
    assert all(np.array_equal(before[n], after[n]) for n in before)
    for name, w in wrappers(pruned).items():
        assert np.all(w.layer.get_weights()[0][before[name] == 0] == 0), name
    x = np.random.default_rng(2).normal(size=(3, 8, 8, 1)).astype("float32")
    expected = pruned.predict(x, verbose=0)
    for suffix in (".keras", ".h5"):
        path = tmp_path / f"pruned{suffix}"
        pruned.save(path)
        loaded = load_model_file(path)
        assert all(np.array_equal(before[n], m) for n, m in masks(loaded).items())
        np.testing.assert_allclose(loaded.predict(x, verbose=0), expected, atol=1e-6)
        fit_a_few_steps(loaded, (8, 8, 1), steps=2)  # a reloaded model keeps its masks in training
        assert all(np.array_equal(before[n], m) for n, m in masks(loaded).items())
    plain = strip(pruned)
    assert not wrappers(plain)
    for name, mask in before.items():
        assert np.all(plain.get_layer(name).get_weights()[0][mask == 0] == 0), name
    np.testing.assert_allclose(plain.predict(x, verbose=0), expected, atol=1e-6)
    assert sparsity_report(plain)["sparsity"] == pytest.approx(sparsity_report(pruned)["sparsity"])


def test_iterative_rounds_reach_the_target_and_keep_old_zeros():
    targets = iterative_targets(0.9, 3)
    assert targets[-1] == pytest.approx(0.9)
    kept = [1.0, *(1.0 - t for t in targets)]
    assert [kept[i + 1] / kept[i] for i in range(3)] == pytest.approx([0.1 ** (1 / 3)] * 3)
    plans = iterative_plan(PruneConfig(method="global_magnitude", sparsity=0.9, rounds=3), structured=False)
    assert [p.sparsity for p in plans] == pytest.approx(targets)

    model = MODELS.get("small_cnn")((8, 8, 1), 10)
    current, previous = model, None
    for method, plan in zip(["global_magnitude", "random", "magnitude"], plans):
        plan.method = method
        current = prune(current, plan, seed=0).model
        now = masks(current)
        if previous is not None:
            assert all(np.all(now[n][previous[n] == 0] == 0) for n in now), f"{method} revived a weight"
        previous = now
        fit_a_few_steps(current, (8, 8, 1), steps=1)
    assert sparsity_report(current)["sparsity"] == pytest.approx(0.9, abs=2e-3)


def test_gradual_prunes_during_training_to_the_target():
    model = MODELS.get("small_cnn")((8, 8, 1), 10)
    config = PruneConfig(method="magnitude", sparsity=0.5, schedule="gradual")
    result = prune(model, config, seed=0, begin_step=0, end_step=4, frequency=1)
    assert result.report["sparsity"] == 0.0
    fit_a_few_steps(result.model, (8, 8, 1), steps=3)  # 6 steps ≥ end_step
    for row in sparsity_report(result.model)["layers"]:
        assert abs(row["sparsity"] - 0.5) <= 1.0 / row["size"] + 1e-9, row["layer"]


def test_m_by_n_leaves_two_zeros_in_every_four_input_channels():
    model = MODELS.get("small_cnn")((8, 8, 1), 10)
    result = prune(model, PruneConfig(method="m_by_n"), seed=0)
    before = masks(result.model)
    fit_a_few_steps(result.model, (8, 8, 1), steps=1)  # tfmot re-derives 2:4 masks at step 1
    assert all(np.array_equal(before[n], m) for n, m in masks(result.model).items())
    assert result.report["sparsity"] == pytest.approx(0.5, abs=0.02)
    for name, k in effective(result.model).items():
        if k.ndim == 4 and k.shape[2] % 4 == 0:
            groups = np.moveaxis(k, 2, -1).reshape(-1, 4)
            assert np.all((groups == 0).sum(axis=1) >= 2), name


def test_xnnpack_policy_refuses_a_model_it_cannot_accelerate():
    with pytest.raises(ConfigError, match="xnnpack"):
        prune(resnet20(), PruneConfig(method="magnitude", sparsity=0.5), seed=0, policy="xnnpack")


@pytest.mark.parametrize("bad", [0.0, 1.0, -0.2, 1.5, math.nan, math.inf])
def test_bad_sparsity_is_a_config_error(bad):
    model = MODELS.get("small_cnn")((8, 8, 1), 10)
    with pytest.raises(ConfigError, match="sparsity"):
        prune(model, PruneConfig(method="magnitude", sparsity=bad), seed=0)
    with pytest.raises(ConfigError, match="target_sparsity"):
        prune(model, PruneConfig(method="random", sparsity=0.5), seed=0, target_sparsity=bad)


def test_unusable_combinations_are_config_errors():
    model = MODELS.get("small_cnn")((8, 8, 1), 10)
    with pytest.raises(ConfigError, match="magnitude"):
        prune(model, PruneConfig(method="nonsense"), seed=0)
    with pytest.raises(ConfigError, match="gradual"):
        prune(model, PruneConfig(method="global_magnitude", schedule="gradual"), seed=0, end_step=10)
    with pytest.raises(ConfigError, match="ratios"):
        prune(model, PruneConfig(method="magnitude", ratios=[0.5] * 5), seed=0)
    with pytest.raises(ConfigError, match="ratios_from"):
        prune(model, PruneConfig(method="random", ratios_from="l1_filter"), seed=0)
