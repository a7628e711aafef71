"""Reliability: kill and resume to the same result, deterministic runs, invariants enforced, damaged files named.

The kill test runs `tfrewind train` in subprocesses (SIGKILL needs a process to kill); everything
else runs the CLI in-process. Runs use `digits`, a few epochs and `--deterministic`.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from clirun import run_cli

REPO = Path(__file__).resolve().parents[1]
ARGS = ["train", "--epochs", "8", "--batch-size", "32", "--sparsity", "0.7", "--schedule", "weight_rewind",
        "--budget", "4", "--seed", "3", "--deterministic", "--export", "none", "--quiet"]


@pytest.fixture(scope="module", autouse=True)
def _determinism_off_afterwards():
    yield
    from tfrewind.training import set_seed

    set_seed(0, deterministic=False)  # --deterministic runs in this process must not leak into other tests


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted run (in-process) with the kill test's exact command."""
    out = tmp_path_factory.mktemp("reference") / "run"
    code, _, _ = run_cli([*ARGS, "--out", out])
    assert code == 0
    return out


def outcome(run: Path) -> dict:
    from tfrewind.models import load_model_file
    from tfrewind.pruning import masks

    stages = {}
    for stage in ("original", "prune", "retrain"):
        metrics = json.loads((run / stage / "metrics.json").read_text())
        metrics.pop("seconds", None)
        stages[stage] = metrics
    model = load_model_file(run / "retrain" / "model.keras")
    return {"metrics": stages, "masks": masks(model), "weights": model.get_weights()}


def assert_same_outcome(a: dict, b: dict) -> None:
    assert a["metrics"] == b["metrics"]
    assert a["masks"].keys() == b["masks"].keys()
    for name in a["masks"]:
        np.testing.assert_array_equal(a["masks"][name], b["masks"][name])
    assert len(a["weights"]) == len(b["weights"])
    for x, y in zip(a["weights"], b["weights"]):
        np.testing.assert_array_equal(x, y)


# ------------------------------------------------------------------------------------- kill and resume


# The real CLI in a child process that SIGKILLs itself as soon as STAGE's history.json holds EPOCHS
# epochs: a fixed kill point, where polling from this process would race the run's progress (a
# loaded machine could let the run finish before the signal lands).
KILL_AFTER = """
import os, signal, sys
from tfrewind.callbacks import HistoryLog
from tfrewind.cli import main

stage, epochs = sys.argv.pop(1), int(sys.argv.pop(1))
record = HistoryLog.on_epoch_end

def on_epoch_end(self, epoch, logs=None):
    record(self, epoch, logs)
    if self.path.parent.name == stage and epoch + 1 >= epochs:
        os.kill(os.getpid(), signal.SIGKILL)

HistoryLog.on_epoch_end = on_epoch_end
main()
"""


def _run_until_killed(out: Path, stage: str, epochs: int) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2"}
    command = [sys.executable, "-c", KILL_AFTER, stage, str(epochs), *ARGS, "--out", str(out)]
    done = subprocess.run(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          timeout=1800)  # a hang guard only
    assert done.returncode == -signal.SIGKILL, f"exit {done.returncode}: {done.stderr.decode()[-2000:]}"


@pytest.mark.slow
def test_sigkill_during_original_and_retraining_then_resume_gives_the_same_result(reference, tmp_path, capsys):
    out = tmp_path / "run"
    # 1. SIGKILL during original training, right after epoch 3 (its rewind checkpoint is on disk, its
    #    resume backup not yet).
    _run_until_killed(out, "original", 3)
    assert (out / "original" / "checkpoints" / "epoch_0003.weights.h5").exists()
    assert not (out / "original" / "metrics.json").exists()
    # 2. The same command again resumes; SIGKILL once retraining has finished two epochs.
    _run_until_killed(out, "retrain", 2)
    assert (out / "original" / "metrics.json").exists() and not (out / "retrain" / "metrics.json").exists()
    assert not (out / "original" / "backup").exists()  # a finished stage drops its resume backup
    damaged = tmp_path / "damaged"
    shutil.copytree(out, damaged)
    # 3. --resume finishes it: the same metrics (every epoch's history included), masks and weights.
    code, _, err = run_cli([*ARGS, "--out", out, "--resume"], capsys)
    assert code == 0, err
    assert_same_outcome(outcome(out), outcome(reference))
    assert len(outcome(out)["metrics"]["original"]["history"]["loss"]) == 8
    # A damaged resume backup is named, with the way out — not a TensorFlow traceback.
    (data_file,) = (damaged / "retrain" / "backup" / "chief").glob("ckpt-*.data-*")
    content = bytearray(data_file.read_bytes())
    content[len(content) // 2: len(content) // 2 + 64] = b"\xff" * 64
    data_file.write_bytes(bytes(content))
    code, _, err = run_cli([*ARGS, "--out", damaged], capsys)
    assert code == 2 and "Traceback" not in err
    assert "backup checkpoint" in err and "unreadable" in err and "delete" in err


def test_two_deterministic_runs_give_identical_weights_and_metrics(tmp_path):
    runs = []
    for name in ("a", "b"):
        code, _, _ = run_cli(["train", "--epochs", "3", "--budget", "2", "--sparsity", "0.6", "--seed", "5",
                              "--deterministic", "--export", "none", "--quiet", "--out", tmp_path / name])
        assert code == 0
        runs.append(outcome(tmp_path / name))
    assert_same_outcome(*runs)


# ------------------------------------------------------------------------------------- damaged files


def _unfinished_copy(reference: Path, tmp_path: Path) -> Path:
    """The reference run with retraining not yet done (as if killed right after pruning)."""
    copy = tmp_path / "copy"
    shutil.copytree(reference, copy)
    shutil.rmtree(copy / "retrain")
    return copy


def test_damaged_rewind_checkpoint_is_a_clear_error(reference, tmp_path, capsys):
    run = _unfinished_copy(reference, tmp_path)
    (run / "original" / "checkpoints" / "epoch_0004.weights.h5").write_bytes(b"\x89HDF\r\n" + b"\0" * 100)
    code, _, err = run_cli([*ARGS, "--out", run], capsys)
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert "epoch_0004.weights.h5" in err and "unreadable" in err


def test_damaged_stage_model_is_a_clear_error(reference, tmp_path, capsys):
    run = _unfinished_copy(reference, tmp_path)
    model = run / "prune" / "model.keras"
    model.write_bytes(model.read_bytes()[: model.stat().st_size // 2])
    code, _, err = run_cli([*ARGS, "--out", run], capsys)
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert "model.keras" in err and "delete" in err and "prune" in err


# ------------------------------------------------------------------------------------- divergence


def poison(model) -> None:
    """Make the model's loss NaN on any CPU: every unit of the logits layer gets a NaN bias.

    Why the bias of the last layer: logits = features · W + b, and x + NaN is NaN in IEEE arithmetic
    whatever x is, so no kernel (oneDNN or not, AVX-512 or not) can turn it back into a number.
    A NaN earlier in the network is not enough: NaN · 0 and max(NaN, 0) depend on the CPU's kernels.
    """
    from tfrewind._keras import tf

    bias = model.layers[-1].bias
    bias.assign(tf.fill(bias.shape, float("nan")))


def test_nan_loss_stops_the_run_with_a_clear_message_and_guides_the_retry(tmp_path, capsys):
    from tfrewind.models import build_model, save_model_atomic

    # A model whose loss is NaN from the first batch on every CPU (see poison); a huge --lr only
    # diverges if the overflow outruns whatever the CPU's kernels make of the NaNs on the way.
    model = build_model("small_cnn", (8, 8, 1), 10)
    poison(model)
    bad_model = save_model_atomic(model, tmp_path / "diverging.keras")
    out = tmp_path / "run"
    code, _, err = run_cli(["train", "--model", bad_model, "--prune", "none", "--epochs", "2", "--export", "none",
                            "--quiet", "--out", out], capsys)
    lines = err.strip().splitlines()
    assert code == 2 and "Traceback" not in err and len(lines) == 1, err
    assert "loss became" in lines[0] and "lower the learning rate" in lines[0] and "--out" in lines[0]
    assert (out / "original" / "diverged.json").exists() and not (out / "original" / "metrics.json").exists()
    # The user lowers the LR on the same directory: refused, and told why and what to do.
    code, _, err = run_cli(["train", "--model", bad_model, "--prune", "none", "--epochs", "2", "--lr", "0.05",
                            "--export", "none", "--quiet", "--out", out], capsys)
    assert code == 2 and "diverged" in err and "train.lr" in err and "another --out" in err


def test_the_poison_reaches_the_loss_whatever_the_layers_before_the_logits_compute():
    """The NaN guard test must not rest on how a CPU's kernels propagate NaN (conv → BN → ReLU turned a
    NaN kernel into a finite loss on an AVX-512 machine): whatever features reach the logits layer —
    zeros, huge or ordinary values — every logit and the loss are NaN after :func:`poison`."""
    from tfrewind._keras import keras
    from tfrewind.models import build_model

    model = build_model("small_cnn", (8, 8, 1), 10)
    poison(model)
    head = model.layers[-1]
    width = head.input_shape[-1]
    labels = np.arange(4) % 10
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    for features in (np.zeros((4, width)), np.full((4, width), 1e30),
                     np.random.default_rng(0).normal(size=(4, width))):
        logits = head(features.astype("float32")).numpy()
        assert np.isnan(logits).all()
        assert not np.isfinite(loss(labels, logits).numpy())


def test_nan_guard_keeps_the_last_good_backup(digits_bundle, tmp_path):
    from tfrewind._keras import keras, tf
    from tfrewind.errors import TrainingDivergedError
    from tfrewind.models import build_model
    from tfrewind.schedules import ConstantLR
    from tfrewind.training import StageSchedule, compile_model, fit_stage

    class Poison(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 2:
                poison(self.model)

    model = build_model("small_cnn", (8, 8, 1), 10)
    schedule = StageSchedule(ConstantLR(0.05), epochs=4)
    compile_model(model, schedule, 1e-4)
    with pytest.raises(TrainingDivergedError, match="epoch 3"):
        fit_stage(model, digits_bundle, schedule, stage="original", stage_dir=tmp_path / "stage",
                  log_dir=tmp_path / "tb", callbacks=[Poison()], verbose=0)
    latest = tf.train.latest_checkpoint(str(tmp_path / "stage" / "backup" / "chief"))
    reader = tf.train.load_checkpoint(latest)
    values = [reader.get_tensor(n) for n in reader.get_variable_to_shape_map()]
    floats = [v for v in values if np.asarray(v).dtype.kind == "f"]
    assert floats and all(np.isfinite(v).all() for v in floats)  # the epoch-2 backup, before the NaN
    assert json.loads((tmp_path / "stage" / "history.json").read_text())["epochs"].keys() == {"0", "1"}


def test_a_stage_killed_after_its_last_epoch_resumes_without_training_again(digits_bundle, tmp_path):
    from tfrewind.models import build_model
    from tfrewind.schedules import ConstantLR
    from tfrewind.training import StageSchedule, compile_model, evaluate, fit_stage

    schedule = StageSchedule(ConstantLR(0.05), epochs=2)
    first = build_model("small_cnn", (8, 8, 1), 10)
    compile_model(first, schedule, 1e-4)
    done = fit_stage(first, digits_bundle, schedule, stage="s", stage_dir=tmp_path / "s", log_dir=tmp_path / "tb",
                     verbose=0)
    # A new process (fresh model) before metrics.json: the backup holds epoch 2, nothing is retrained.
    second = build_model("small_cnn", (8, 8, 1), 10)
    compile_model(second, schedule, 1e-4)
    again = fit_stage(second, digits_bundle, schedule, stage="s", stage_dir=tmp_path / "s", log_dir=tmp_path / "tb",
                      verbose=0)
    assert again["history"] == done["history"] and len(done["history"]["loss"]) == 2
    # The same weights, bit for bit (comparing two evaluations instead would also compare two runs of
    # the CPU's kernels, which op determinism is off for here).
    for restored, trained in zip(second.get_weights(), first.get_weights()):
        np.testing.assert_array_equal(restored, trained)
    assert evaluate(second, digits_bundle) == pytest.approx(evaluate(first, digits_bundle), rel=1e-6)


# ------------------------------------------------------------------------------------- input pipeline


def test_an_epochs_order_and_augmentation_depend_only_on_seed_and_epoch():
    from tfrewind.config import DataConfig
    from tfrewind.data import load_data

    config = DataConfig(name="synthetic", batch_size=64, augment="cifar")

    def first_batches(bundle):
        images, labels = next(iter(bundle.train))
        return images.numpy(), labels.numpy()

    walked = load_data(config, seed=4)
    passes = [first_batches(walked) for _ in range(3)]  # epochs 0, 1, 2 in one process
    fresh = load_data(config, seed=4)
    fresh.clock.pin(2)  # a resumed process starting at epoch 2
    np.testing.assert_array_equal(first_batches(fresh)[0], passes[2][0])
    np.testing.assert_array_equal(first_batches(fresh)[1], passes[2][1])
    assert not np.array_equal(passes[0][1], passes[1][1])  # yet every epoch has its own order
    other_seed = load_data(config, seed=5)
    other_seed.clock.pin(2)
    assert not np.array_equal(first_batches(other_seed)[1], passes[2][1])


# ------------------------------------------------------------------------------------- sparsity invariants


def _pruned_small_cnn(sparsity=0.7):
    from tfrewind.config import PruneConfig
    from tfrewind.models import build_model
    from tfrewind.pruning import prune

    return prune(build_model("small_cnn", (8, 8, 1), 10), PruneConfig(method="global_magnitude", sparsity=sparsity),
                 seed=0).model


def _fit_with(model, bundle, callbacks, epochs=2):
    from tfrewind.pruning import pruning_callbacks
    from tfrewind.schedules import ConstantLR
    from tfrewind.training import StageSchedule, compile_model

    compile_model(model, StageSchedule(ConstantLR(0.01)), 0.0)
    model.fit(bundle.train.take(3), epochs=epochs, verbose=0, callbacks=[*pruning_callbacks(model), *callbacks])


@pytest.mark.parametrize("fixed_masks", [True, False])
def test_sparsity_monitor_catches_pruned_weights_coming_back(digits_bundle, fixed_masks):
    from tfrewind._keras import keras
    from tfrewind.monitor import SparsityInvariantError, SparsityMonitor
    from tfrewind.pruning import wrappers

    class Regrow(keras.callbacks.Callback):  # a buggy callback that un-prunes one weight
        def on_epoch_end(self, epoch, logs=None):
            wrapper = next(iter(wrappers(self.model).values()))
            kernel, mask, _ = wrapper.pruning_vars[0]
            flat = mask.numpy().reshape(-1)
            index = int(np.flatnonzero(flat == 0)[0])
            flat[index] = 1.0
            mask.assign(flat.reshape(mask.shape))
            values = kernel.numpy().reshape(-1)
            values[index] = 0.5
            kernel.assign(values.reshape(kernel.shape))

    model = _pruned_small_cnn()
    with pytest.raises(SparsityInvariantError, match="came back|mask changed"):
        _fit_with(model, digits_bundle, [Regrow(), SparsityMonitor(None, fixed_masks=fixed_masks)])


def test_sparsity_monitor_ignores_raw_kernel_values_tfmot_masks_before_use(digits_bundle):
    from tfrewind._keras import keras
    from tfrewind.monitor import SparsityMonitor
    from tfrewind.pruning import sparsity_report, wrappers

    class RawNoise(keras.callbacks.Callback):  # what an optimizer step leaves before the next forward pass
        def on_epoch_end(self, epoch, logs=None):
            for wrapper in wrappers(self.model).values():
                kernel = wrapper.pruning_vars[0][0]
                kernel.assign(kernel + 1e-3)

    model = _pruned_small_cnn()
    before = sparsity_report(model)["sparsity"]
    _fit_with(model, digits_bundle, [RawNoise(), SparsityMonitor(None)])  # no error
    assert sparsity_report(model)["sparsity"] == pytest.approx(before)


def test_sparsity_targets_are_checked_to_one_weight():
    from tfrewind.monitor import SparsityInvariantError, check_sparsity_targets

    check_sparsity_targets({"conv": 0.70}, {"conv": 0.70 + 0.5 / 1000}, {"conv": 1000}, "after retrain")
    with pytest.raises(SparsityInvariantError, match="conv 69.00 %"):
        check_sparsity_targets({"conv": 0.69}, {"conv": 0.70}, {"conv": 1000}, "after retrain")
    with pytest.raises(SparsityInvariantError, match="missing"):
        check_sparsity_targets({}, {"conv": 0.70}, {"conv": 1000}, "after retrain")
    check_sparsity_targets({"conv": 0.75}, {"conv": 0.70}, {"conv": 1000}, "int8 file", at_least=True)


def test_export_check_compares_the_file_with_the_pruned_model():
    from tfrewind.export.report import ExportReport, LayerReport
    from tfrewind.monitor import SparsityInvariantError
    from tfrewind.targets import check_export_sparsity

    report = ExportReport(model="m", format="tflite", quantize="none", encoding="", encoding_reason="")
    report.layers = [LayerReport("conv", "Conv2D", 1000, 0, keras_sparsity=0.7, file_sparsity=0.7)]
    check_export_sparsity(report, {"conv": (0.7, 1000)})
    report.layers[0].file_sparsity = 0.2  # the converter densified the pruned weights
    with pytest.raises(SparsityInvariantError, match="tflite file"):
        check_export_sparsity(report, {"conv": (0.7, 1000)})


def test_resume_removes_the_temporary_files_of_interrupted_writes(tmp_path):
    from tfrewind.config import load_config
    from tfrewind.rundir import RunDir

    config = load_config(None, {"out": str(tmp_path / "run")})
    run = RunDir.prepare(config)
    leftovers = [run.path / "original" / ".model.keras.k2j3.keras",
                 run.path / "original" / "checkpoints" / ".epoch_0003.weights.h5.x9.weights.h5",
                 run.path / "retrain" / ".metrics.json.a1.tmp"]
    for path in leftovers:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"half")
    (run.path / "original" / "metrics.json").write_text("{}")
    RunDir.prepare(config)  # reopened (resume)
    assert not any(path.exists() for path in leftovers)
    assert (run.path / "original" / "metrics.json").exists() and (run.path / "config.yaml").exists()
