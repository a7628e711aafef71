"""Soft filter pruning (SFP): zeroed at every retraining epoch's end, removed physically when retraining ends."""

from __future__ import annotations

import json

import numpy as np
import pytest

from clirun import run_cli, run_ok
from tfrewind._keras import keras
from tfrewind.config import PruneConfig
from tfrewind.models import build_model, load_model_file
from tfrewind.optim import PaperSGD
from tfrewind.pruning import SoftFilterPruning, kept_filters, prune, remove_zeroed

CONVS = ["conv1", "conv2", "conv3", "conv4"]


def relu_outputs(model: keras.Model, images: np.ndarray, training: bool = False) -> dict[str, np.ndarray]:
    """What each small_cnn conv block hands on (after BN and ReLU): what the next layers read."""
    probe = keras.Model(model.inputs, [model.get_layer(f"relu{i}").output for i in range(1, 5)])
    return {conv: out.numpy() for conv, out in zip(CONVS, probe(images, training=training))}


def dropped(kept: dict[str, list[int]], model: keras.Model) -> dict[str, np.ndarray]:
    return {conv: np.setdiff1d(np.arange(model.get_layer(conv).filters), kept[conv]) for conv in CONVS}


class KernelsAtEpochEnd(keras.callbacks.Callback):
    """Placed before the SFP callback: the kernels as training left them, before SFP zeroes them."""

    def __init__(self):
        super().__init__()
        self.kernels: list[dict[str, np.ndarray]] = []

    def on_epoch_end(self, epoch, logs=None):
        self.kernels.append({conv: self.model.get_layer(conv).kernel.numpy() for conv in CONVS})


class ZeroedAtEpochEnd(keras.callbacks.Callback):
    """Placed after the SFP callback: which channels it zeroed, their filters, and what the blocks output."""

    def __init__(self, sfp: SoftFilterPruning, images: np.ndarray):
        super().__init__()
        self.sfp, self.images = sfp, images
        self.epochs: list[tuple[dict, dict, dict]] = []

    def on_epoch_end(self, epoch, logs=None):
        self.epochs.append((self.sfp.kept_filters(),
                            {conv: self.model.get_layer(conv).kernel.numpy() for conv in CONVS},
                            relu_outputs(self.model, self.images)))


def test_sfp_zeroes_filters_each_epoch_lets_them_regrow_and_removes_them_exactly(digits_bundle):
    data = digits_bundle
    images = next(iter(data.test))[0].numpy()
    dense = build_model("small_cnn", (8, 8, 1), 10)
    dense.compile(PaperSGD(0.1, momentum=0.9), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    dense.fit(data.train, epochs=1, verbose=0)  # trained batch norms: β ≠ 0, as SFP meets them
    result = prune(dense, PruneConfig(method="l1_filter", sparsity=0.5, schedule="soft"), seed=0)
    model, plan = result.model, kept_filters(result.report)
    assert [model.get_layer(c).filters for c in CONVS] == [32, 32, 64, 64]  # full shape while retraining
    for conv, channels in dropped(plan, model).items():
        assert len(channels) == model.get_layer(conv).filters // 2
        assert not model.get_layer(conv).kernel.numpy()[..., channels].any(), conv
    model.compile(PaperSGD(0.01, momentum=0.9), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    sfp = SoftFilterPruning("l1", plan)
    before, after = KernelsAtEpochEnd(), ZeroedAtEpochEnd(sfp, images)
    history = model.fit(data.train, epochs=2, callbacks=[before, sfp, after], verbose=0)
    assert len(history.history["soft_recovered"]) == 2
    (first, kernels_1, _), (last, kernels_2, outputs_2) = after.epochs
    for conv, channels in dropped(first, model).items():
        assert len(first[conv]) == len(plan[conv])  # the plan's count
        assert not kernels_1[conv][..., channels].any() and kernels_1[conv][..., first[conv]].any(), conv
        # Epoch 1: the filters the prune stage zeroed grew back (SFP: they may recover) ...
        regrown = np.abs(before.kernels[0][conv][..., dropped(plan, model)[conv]]).sum(axis=(0, 1, 2))
        assert (regrown > 0).any(), conv
        # ... epoch 2, the last, fine-tuned without epoch 1's choice: exactly zero all along, downstream too.
        assert last[conv] == first[conv]
        assert not before.kernels[1][conv][..., channels].any() and not kernels_2[conv][..., channels].any()
        assert not outputs_2[conv][..., channels].any() and outputs_2[conv][..., last[conv]].any(), conv
    as_trained = model(images, training=False).numpy()
    smaller, removal = remove_zeroed(model, sfp.kept_filters())
    assert [smaller.get_layer(c).filters for c in CONVS] == [len(plan[c]) for c in CONVS]
    assert smaller.count_params() < model.count_params() == dense.count_params()
    np.testing.assert_allclose(smaller(images, training=False), as_trained, atol=1e-5)
    assert removal["rebuild_max_abs_diff"] <= 1e-5 and removal["outputs_changed_by_removal"] <= 1e-5
    for conv, channels in dropped(last, model).items():  # a training-mode call (last: it updates BN statistics)
        assert not relu_outputs(model, images, training=True)[conv][..., channels].any(), conv


def test_soft_schedule_through_the_pipeline(tmp_path):
    """`train --prune-schedule soft`: the prune stage zeroes, retraining keeps the full shape, the result is smaller."""
    out = tmp_path / "sfp"
    run_ok(["train", "--prune", "taylor_filter", "--sparsity", "0.5", "--prune-schedule", "soft", "--epochs", "2",
            "--budget", "2", "--schedule", "fine_tune", "--out", out, "--quiet", "--export", "tflite"])
    prune_metrics = json.loads((out / "prune" / "metrics.json").read_text())
    plan = kept_filters(prune_metrics["report"])
    assert prune_metrics["report"]["soft"] and prune_metrics["report"]["schedule"] == "soft"
    pruned = load_model_file(out / "prune" / "model.keras")
    for conv, indices in plan.items():  # full shape, the planned channels' filters zero
        kernel = pruned.get_layer(conv).kernel.numpy()
        assert kernel.shape[-1] == 2 * len(indices) and not np.delete(kernel, indices, axis=-1).any()
    metrics = json.loads((out / "retrain" / "metrics.json").read_text())
    soft = metrics["soft_pruning"]
    assert len(metrics["history"]["soft_recovered"]) == 2
    assert soft["rebuild_max_abs_diff"] <= 1e-5 and soft["params_after"] < soft["params_before"]
    assert soft["kept_filters"] == json.loads((out / "retrain" / "soft_pruning.json").read_text())["kept"]
    assert soft["outputs_changed_by_removal"] <= 1e-5  # the last epoch already ran without them
    assert metrics["test_accuracy"] == pytest.approx(soft["test_accuracy_before_removal"], abs=1.5 / 360)
    final = load_model_file(out / "retrain" / "model.keras")
    assert {c: final.get_layer(c).filters for c in plan} == {c: len(i) for c, i in soft["kept_filters"].items()} \
        == {c: len(i) for c, i in plan.items()}
    assert final.count_params() == soft["params_after"]
    assert json.loads((out / "export" / "metrics.json").read_text())["params"] == soft["params_after"]


@pytest.mark.parametrize("command", ["prune", "retrain"])
def test_prune_and_retrain_commands_refuse_the_soft_schedule(tmp_path, capsys, command):
    """SFP lives in `train`: `prune` does not retrain, `retrain` has no prune stage to take the plan from."""
    path = tmp_path / "cnn.keras"
    build_model("small_cnn", (8, 8, 1), 10).save(path)
    config = tmp_path / "soft.yaml"
    config.write_text("prune:\n  method: l1_filter\n  schedule: soft\n")
    code, out, err = run_cli([command, path, "--config", config, "--out", tmp_path / "out"], capsys)
    lines = [line for line in err.splitlines() if line.startswith("tfrewind:")]
    assert code == 2 and len(lines) == 1 and "prune.schedule soft" in lines[0] and "Traceback" not in err + out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cnn.keras", "soft.yaml"]
