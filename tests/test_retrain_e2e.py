"""The whole loop: `tfrewind train --prune ... --schedule S` for every schedule, read back from TensorBoard."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tbreader import read_scalars
from clirun import run_cli, run_ok
from paper_schedules import multistep_lr, nptm_slr_epoch_lrs, torch_one_cycle
from tfrewind._keras import keras
from tfrewind.cli import main
from tfrewind.config import PruneConfig
from tfrewind.models import build_model, load_model_file
from tfrewind.pruning import masks, prune, wrappers
from tfrewind.pruning.wrappers import all_layers
from tfrewind.retraining import rewind_weights

SCHEDULES = ["fine_tune", "lr_rewind", "weight_rewind", "scaled_lr_restart", "one_cycle"]
ORIGINAL_EPOCHS, BUDGET = 4, 3


def original_lr(epoch: int) -> float:
    """The dense run's schedule (the defaults): lr 0.1, ×0.1 at 50 % and 75 % of 4 epochs (epochs 2 and 3)."""
    return multistep_lr(epoch, 0.1, [2, 3])


def expected_lr(schedule: str, step: int, steps_per_epoch: int) -> float:
    """The retraining LR at optimizer step ``step`` of a 3-epoch budget, from the paper's definitions."""
    epoch = step // steps_per_epoch
    final, peak = original_lr(ORIGINAL_EPOCHS - 1), max(original_lr(e) for e in range(ORIGINAL_EPOCHS))
    if schedule == "fine_tune":  # the last LR of original training, constant
        return final
    if schedule in ("lr_rewind", "weight_rewind"):  # the last E epochs of the original schedule
        return original_lr(ORIGINAL_EPOCHS - BUDGET + epoch)
    if schedule == "scaled_lr_restart":  # 3 epochs: no warm-up epoch (int(0.3) = 0), stepped per epoch
        return nptm_slr_epoch_lrs(BUDGET, init_lr=final, peak_lr=peak)[epoch]
    return torch_one_cycle(step, BUDGET * steps_per_epoch, peak)[0]


def kernels(model) -> dict[str, np.ndarray]:
    """Every Conv/Dense kernel of a model, by the name of the layer that owns it (inside a pruning wrapper too)."""
    found = {}
    for layer in model.layers:
        inner = getattr(layer, "layer", layer)
        if hasattr(inner, "kernel"):
            found[inner.name] = inner.kernel.numpy()
    return found


@pytest.fixture(scope="module")
def dense_run(dense_digits_run):
    """4 dense epochs, lr ×0.1 after epochs 2 and 3 (the default 50 %/75 %), shared with test_train_cli (conftest)."""
    return dense_digits_run


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_train_with_each_schedule(dense_run, tmp_path, schedule):
    out = tmp_path / schedule
    run_ok(["train", "--pretrained", str(dense_run), "--epochs", "4", "--prune", "global_magnitude",
            "--sparsity", "0.5", "--schedule", schedule, "--budget", "3", "--out", str(out), "--quiet",
            "--export", "none"])
    retrain = json.loads((out / "retrain" / "metrics.json").read_text())
    pruned = json.loads((out / "prune" / "metrics.json").read_text())
    assert retrain["budget_epochs"] == 3 and retrain["schedule"] == schedule
    assert 0.0 <= pruned["test_accuracy"] <= 1.0 and retrain["test_accuracy"] > 0.3
    # The LR curve TensorBoard shows is the schedule's formula (derived here from the paper, not the code).
    steps_per_epoch = json.loads((dense_run / "original" / "schedule.json").read_text())["steps_per_epoch"]
    expected = [expected_lr(schedule, epoch * steps_per_epoch, steps_per_epoch) for epoch in range(BUDGET)]
    logged = [v for _, v in read_scalars(out / "tensorboard" / "retrain" / "train")["epoch_learning_rate"]]
    np.testing.assert_allclose(logged, expected, rtol=1e-5)
    per_step = read_scalars(out / "tensorboard" / "retrain" / "schedule")["step_learning_rate"]
    assert len(per_step) >= 3
    np.testing.assert_allclose([v for _, v in per_step],
                               [expected_lr(schedule, step, steps_per_epoch) for step, _ in per_step], rtol=1e-5)
    assert per_step[-1][0] >= (BUDGET - 1) * steps_per_epoch  # the per-step log covers the last epoch
    # Sparsity is exact: half of all kernel weights are zero, on the pruning mask, in every logged epoch.
    retrained = kernels(load_model_file(out / "retrain" / "model_stripped.keras"))
    mask_zeros = {name: k == 0 for name, k in kernels(load_model_file(out / "prune" / "model.keras")).items()}
    assert sum(int((k == 0).sum()) for k in retrained.values()) * 2 == sum(k.size for k in retrained.values())
    sparsity = read_scalars(out / "tensorboard" / "retrain" / "sparsity")
    assert {tag.split("/")[-1] for tag in sparsity} == set(retrained)
    for name, kernel in retrained.items():
        np.testing.assert_array_equal(kernel == 0, mask_zeros[name])  # the same weights stay pruned
        series = [v for _, v in sparsity[f"sparsity/{name}"]]
        assert len(series) >= BUDGET and all(v == series[0] for v in series), name
        assert series[0] == pytest.approx((kernel == 0).mean(), abs=1e-7), name
    assert all(abs(v - pruned_layer) < 0.2 for tag, series in sparsity.items()
               for pruned_layer in [series[0][1]] for _, v in series)


def test_weight_rewinding_restores_earlier_weights_under_the_mask():
    model = build_model("small_cnn", (8, 8, 1), 10)
    pruned = prune(model, PruneConfig(method="global_magnitude", sparsity=0.7), seed=0).model
    before = masks(pruned)
    earlier = build_model("small_cnn", (8, 8, 1), 10)  # other initial weights stand for epoch T − E
    rewind_weights(pruned, earlier)
    after = masks(pruned)
    earlier_layers = {layer.name: layer for layer in earlier.layers}
    for name, wrapper in wrappers(pruned).items():
        np.testing.assert_array_equal(before[name], after[name])  # the mask is kept
        kernel = wrapper.layer.kernel.numpy()
        expected = earlier_layers[wrapper.layer.name].kernel.numpy() * after[name]
        np.testing.assert_array_equal(kernel, expected)  # surviving weights rewound, pruned stay zero


def test_a_missing_rewind_epoch_lists_the_kept_epochs_by_their_file_names(tmp_path):
    """The names the checkpointer writes are read back by the same rule (5-digit epochs included)."""
    from tfrewind.callbacks import rewind_checkpoint_path
    from tfrewind.errors import CheckpointError
    from tfrewind.retraining import rewind_epoch_checkpoint

    for epoch in (12000, 0, 3):
        rewind_checkpoint_path(tmp_path, epoch).write_bytes(b"")
    (tmp_path / "epoch_notes.weights.h5").write_bytes(b"")  # not a checkpoint name: ignored
    assert rewind_epoch_checkpoint(tmp_path, 3) == rewind_checkpoint_path(tmp_path, 3)
    with pytest.raises(CheckpointError, match=r"kept: \[0, 3, 12000\]"):
        rewind_epoch_checkpoint(tmp_path, 5)


def test_weight_rewind_without_checkpoint_is_a_clear_error(dense_run, tmp_path, capsys):
    for path in (dense_run / "original" / "checkpoints").glob("epoch_0001*"):
        path.rename(path.with_name("moved_" + path.name))
    try:
        with pytest.raises(SystemExit) as exit_info:
            main(["train", "--pretrained", str(dense_run), "--epochs", "4", "--prune", "global_magnitude",
                  "--schedule", "weight_rewind", "--budget", "3", "--out", str(tmp_path / "wr"), "--quiet"])
        assert exit_info.value.code == 2
        assert "epoch 1" in capsys.readouterr().err
    finally:
        for path in (dense_run / "original" / "checkpoints").glob("moved_*"):
            path.rename(path.with_name(path.name[len("moved_"):]))


def test_schedule_preview_csv_and_png(tmp_path, capsys):
    run_ok(["schedule", "--schedule", "lr_rewind", "--budget", "72"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "epoch,lr,momentum" and len(lines) == 73
    assert float(lines[1].split(",")[1]) == pytest.approx(0.01) and float(lines[33].split(",")[1]) == pytest.approx(0.001)
    run_ok(["schedule", "--schedule", "one_cycle", "--budget", "45%", "--steps-per-epoch", "5", "--per-step"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "step,lr,momentum" and len(lines) == 72 * 5 + 1
    png = tmp_path / "s.png"
    run_ok(["schedule", "--schedule", "all", "--format", "png", "--out", str(png), "--steps-per-epoch", "10"])
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_prune_then_retrain_commands(dense_run, tmp_path, capsys):
    pruned = tmp_path / "pruned.keras"
    run_ok(["prune", str(dense_run / "original" / "model.keras"), "--prune", "l1_filter", "--sparsity", "0.5",
            "--out", str(pruned)])
    report = json.loads(pruned.with_suffix(".json").read_text())["report"]
    assert report["params_after"] < report["params_before"] and report["flops_after"] < report["flops_before"]
    run_ok(["retrain", str(pruned), "--pretrained", str(dense_run), "--epochs", "4", "--schedule", "one_cycle",
            "--budget", "2", "--out", str(tmp_path / "rt"), "--quiet"])
    metrics = json.loads((tmp_path / "rt" / "retrain" / "metrics.json").read_text())
    assert metrics["schedule"] == "one_cycle" and len(metrics["history"]["loss"]) == 2


def test_weight_rewind_after_filter_pruning_slices_the_checkpoint(dense_run, tmp_path):
    """WR on a physically smaller model: epoch-(T−E) weights sliced to the kept filters."""
    from tfrewind.pruning import kept_filters

    out = tmp_path / "wr_l1"
    run_ok(["train", "--pretrained", str(dense_run), "--epochs", "4", "--prune", "l1_filter", "--sparsity", "0.5",
            "--schedule", "weight_rewind", "--budget", "1", "--out", str(out), "--quiet", "--export", "none"])
    kept = kept_filters(json.loads((out / "prune" / "metrics.json").read_text())["report"])
    retrained = load_model_file(out / "retrain" / "model.keras")
    metrics = json.loads((out / "retrain" / "metrics.json").read_text())
    assert metrics["schedule_details"]["rewind_to_epoch"] == 3
    for name, indices in kept.items():  # the rewound weights were sliced to the smaller shapes
        assert retrained.get_layer(name).kernel.shape[-1] == len(indices)
    # Right after the retrain stage's rewind step (run on the pruned model as the run saved it), the
    # model holds the weights after original epoch 3 cut to the kept filters, sliced here by hand.
    from tfrewind.config import load_config
    from tfrewind.rewind import rewind_to_epoch as _rewind  # the step retrain_stage runs before fit
    from tfrewind.rundir import RunDir

    pruned = load_model_file(out / "prune" / "model.keras")
    at_epoch_4 = {layer.name: [w.numpy() for w in layer.weights] for layer in pruned.layers}
    _rewind(RunDir(out), load_config(out / "config.yaml"), pruned, 3)
    dense = load_model_file(dense_run / "original" / "model.keras")
    dense.load_weights(dense_run / "original" / "checkpoints" / "epoch_0003.weights.h5")
    expected = sliced_small_cnn(dense, kept)
    assert set(kept) <= set(expected) and any(len(kept[n]) < dense.get_layer(n).filters for n in kept)
    for layer in pruned.layers:
        if not layer.weights:
            continue
        for got, want in zip(layer.get_weights(), expected[layer.name], strict=True):
            np.testing.assert_array_equal(got, want, err_msg=layer.name)
    assert any(not np.array_equal(a, b) for name in expected for a, b in zip(at_epoch_4[name], expected[name])), \
        "epoch 3 and epoch 4 weights are the same: this check could not tell rewinding from skipping it"


def sliced_small_cnn(dense, kept: dict[str, list[int]]) -> dict[str, list[np.ndarray]]:
    """small_cnn's weights (conv1..4 → bn1..4, then fc after global pooling) cut to the kept output
    channels of each conv, and each layer's input channels to the kept outputs of the conv before it."""
    sliced, inputs = {}, None
    for index in range(1, 5):
        conv, bn = f"conv{index}", f"bn{index}"
        outputs = np.asarray(kept.get(conv, range(dense.get_layer(conv).filters)))
        (kernel,) = dense.get_layer(conv).get_weights()  # use_bias=False
        kernel = kernel if inputs is None else kernel[:, :, inputs, :]
        sliced[conv] = [kernel[..., outputs]]
        sliced[bn] = [w[outputs] for w in dense.get_layer(bn).get_weights()]  # gamma, beta, moving mean/var
        inputs = outputs
    kernel, bias = dense.get_layer("fc").get_weights()
    sliced["fc"] = [kernel[inputs, :], bias]
    return sliced


def test_paper_preset_through_the_cli(tmp_path):
    """`--set prune.preset=resnet56-A` reaches the filter surgery (ResNet-56 on tiny synthetic data)."""
    from tfrewind.models import build_model, save_model_atomic

    model_path = save_model_atomic(build_model("resnet56", (32, 32, 3), 10), tmp_path / "r56.keras")
    out = tmp_path / "r56_pruned.keras"
    run_ok(["prune", str(model_path), "--prune", "l1_filter", "--out", str(out), "--config",
            str(_yaml(tmp_path, "prune:\n  preset: resnet56-A\n"))])
    report = json.loads(out.with_suffix(".json").read_text())["report"]
    assert report["preset"] == "resnet56-A" and report["params_after"] < report["params_before"]


def _yaml(tmp_path, text):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return path


def test_retrain_command_rewinds_a_filter_pruned_file(dense_run, tmp_path, capsys):
    """`retrain MODEL_pruned.keras --schedule weight_rewind` slices the checkpoint with the kept filters
    that `prune` wrote beside the file; without them it refuses in one line."""
    from tfrewind.models import load_model_file

    pruned = tmp_path / "model_pruned.keras"
    run_ok(["prune", dense_run / "original" / "model.keras", "--prune", "l1_filter", "--sparsity", "0.5",
            "--out", pruned])
    out = tmp_path / "wr"
    run_ok(["retrain", pruned, "--pretrained", dense_run, "--epochs", "4", "--schedule", "weight_rewind",
            "--budget", "1", "--out", out, "--quiet"])
    metrics = json.loads((out / "retrain" / "metrics.json").read_text())
    assert metrics["schedule_details"]["rewind_to_epoch"] == 3
    report = json.loads(pruned.with_suffix(".json").read_text())["report"]
    retrained = load_model_file(out / "retrain" / "model.keras")
    for row in report["layers"]:
        assert retrained.get_layer(row["layer"]).kernel.shape[-1] == len(row["kept_filters"])
    # Pruned again: the record keeps indices of the dense model, so the checkpoint still slices right.
    twice = tmp_path / "model_pruned_pruned.keras"
    run_ok(["prune", pruned, "--prune", "l1_filter", "--sparsity", "0.5", "--out", twice])
    record = json.loads(twice.with_suffix(".json").read_text())
    for row in report["layers"]:
        dense_kept = record["kept_filters"][row["layer"]]
        assert set(dense_kept) < set(row["kept_filters"]) and len(dense_kept) == len(row["kept_filters"]) // 2
    run_ok(["retrain", twice, "--pretrained", dense_run, "--epochs", "4", "--schedule", "weight_rewind",
            "--budget", "1", "--out", tmp_path / "wr_twice", "--quiet"])
    pruned.with_suffix(".json").unlink()
    capsys.readouterr()
    code, _, err = run_cli(["retrain", pruned, "--pretrained", dense_run, "--epochs", "4", "--schedule",
                            "weight_rewind", "--budget", "1", "--out", tmp_path / "wr2", "--quiet"], capsys)
    assert code == 2 and ".json that `tfrewind prune` wrote" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_weight_rewinding_reaches_the_layers_of_a_nested_model():
    """Unstructured masks inside a nested backbone: rewinding restores its layers, masks kept."""
    from test_pruning_filters import randomise_bn
    from test_pruning_graph import small_nested

    pruned = prune(small_nested(), PruneConfig(method="magnitude", sparsity=0.5), seed=0).model
    before = masks(pruned)
    assert {"stem", "b_conv", "head"} <= set(before)
    keras.utils.set_random_seed(1)
    earlier = randomise_bn(small_nested())  # other weights stand for epoch T − E
    rewind_weights(pruned, earlier)
    earlier_layers = {layer.name: layer for layer in all_layers(earlier)}
    for name, wrapper in wrappers(pruned).items():
        np.testing.assert_array_equal(masks(pruned)[name], before[name])
        expected = earlier_layers[name].kernel.numpy() * before[name]
        np.testing.assert_array_equal(wrapper.layer.kernel.numpy(), expected)
    bn = next(layer for layer in all_layers(pruned) if layer.name == "b_bn")
    np.testing.assert_array_equal(bn.get_weights()[0], earlier_layers["b_bn"].get_weights()[0])
