"""`tfrewind train` end to end on digits: run directory, TensorBoard files, checkpoints, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from tbreader import read_scalars
from clirun import DENSE_RUN_ARGS, run_cli, run_ok


@pytest.fixture(scope="module")
def dense_run(dense_digits_run):
    """``DENSE_RUN_ARGS``: 4 epochs, ×0.1 after epochs 2 and 3, no pruning, TFLite export (shared, see conftest)."""
    return dense_digits_run


def test_run_directory_holds_everything(dense_run):
    config = yaml.safe_load((dense_run / "config.yaml").read_text())
    assert config["train"]["epochs"] == 4 and config["data"]["name"] == "digits"
    metrics = json.loads((dense_run / "original" / "metrics.json").read_text())
    assert 0.5 < metrics["test_accuracy"] <= 1.0  # a real model learned real digits
    assert len(metrics["history"]["loss"]) == 4
    assert (dense_run / "original" / "model.keras").exists()


def test_the_run_ends_with_a_verified_tflite_export(dense_run):
    report = json.loads((dense_run / "export" / "export.json").read_text())
    assert report["format"] == "tflite" and report["verification"]["passed"]
    assert (dense_run / "export" / "model.tflite").stat().st_size > 10_000
    assert json.loads((dense_run / "export" / "metrics.json").read_text())["test_accuracy"] > 0.5


def test_export_command(dense_run, tmp_path, capsys):
    code, out, err = run_cli(["export", str(dense_run), "--quantize", "int8", "--out", str(tmp_path / "x")], capsys)
    assert code == 0, err
    assert "verification" in out and list((tmp_path / "x").glob("*.tflite"))
    report = json.loads((tmp_path / "x" / "export.json").read_text())
    assert report["quantize"] == "int8" and report["files"][0]["bytes"] < report["reference"]["bytes"]
    code, _, err = run_cli(["export", str(tmp_path / "missing")], capsys)
    assert code == 2 and "does not exist" in err
    code, _, err = run_cli(["export", str(dense_run), "--format", "keras", "--quantize", "int8"], capsys)
    assert code == 2 and "export.quantize" in err


def test_recorded_schedule_is_the_one_used(dense_run):
    record = json.loads((dense_run / "original" / "schedule.json").read_text())
    assert record["epochs"] == 4
    np.testing.assert_allclose(record["lr_per_epoch"], [0.1, 0.1, 0.01, 0.001], rtol=1e-5)
    from tfrewind.retraining import OriginalRecord

    schedule = OriginalRecord.from_file(dense_run / "original" / "schedule.json").schedule
    steps = record["steps_per_epoch"]
    assert float(schedule(2 * steps - 1)) == pytest.approx(0.1)
    assert float(schedule(2 * steps)) == pytest.approx(0.01)


def test_rewind_checkpoints_hold_each_epochs_weights(dense_run):
    from tfrewind.models import load_model_file

    checkpoints = sorted((dense_run / "original" / "checkpoints").glob("epoch_*.weights.h5"))
    assert [p.name[:10] for p in checkpoints] == [f"epoch_{e:04d}" for e in range(5)]
    model = load_model_file(dense_run / "original" / "model.keras")
    final = [w.copy() for w in model.get_weights()]
    model.load_weights(checkpoints[-1])
    assert all(np.array_equal(a, b) for a, b in zip(final, model.get_weights()))
    model.load_weights(checkpoints[0])
    assert not all(np.array_equal(a, b) for a, b in zip(final, model.get_weights()))


def test_tensorboard_files_read_back(dense_run):
    train = read_scalars(dense_run / "tensorboard" / "original" / "train")
    assert len(train["epoch_loss"]) == 4 and len(train["epoch_accuracy"]) == 4
    assert [round(v, 5) for _, v in train["epoch_learning_rate"]] == [0.1, 0.1, 0.01, 0.001]
    assert all(v == pytest.approx(0.9) for _, v in train["epoch_momentum"])
    validation = read_scalars(dense_run / "tensorboard" / "original" / "validation")
    assert len(validation["epoch_accuracy"]) == 4
    per_step = read_scalars(dense_run / "tensorboard" / "original" / "schedule")
    assert len(per_step["step_learning_rate"]) >= 4 * 4


def test_same_command_again_skips_the_finished_stage(dense_run, capsys):
    before = (dense_run / "original" / "metrics.json").read_text()
    run_ok([*DENSE_RUN_ARGS, "--out", str(dense_run)])
    assert (dense_run / "original" / "metrics.json").read_text() == before


def test_other_config_on_same_run_dir_is_refused(dense_run, capsys):
    code, _, err = run_cli(["train", "--epochs", "5", "--out", str(dense_run), "--quiet", "--prune", "none"], capsys)
    assert code == 2 and "train.epochs" in err and "Traceback" not in err


@pytest.mark.parametrize("args, needle", [
    (["--dataset", "no_such_set_xyz"], "unknown dataset"),
    (["--model", "resnet21"], "unknown model"),
    (["--model", "missing/model.keras"], "does not exist"),
    (["--epochs", "0"], "train.epochs"),
    (["--lr", "-0.1"], "train.lr"),
    (["--batch-size", "-4"], "data.batch_size"),
    (["--set", "train.nope=1"], "unknown config key"),
    (["--set", "novalue"], "KEY=VALUE"),
    (["--epochs", "many"], "many"),
    (["--bn-momentum", "1.5"], "model.bn_momentum"),
    (["--bn-epsilon", "0"], "model.bn_epsilon"),
    (["--model", "mobilenet_v2", "--bn-momentum", "0.99"], "keeps its own batch norm"),
    (["--prune", "l1_filter", "--recalibrate-bn", "-3"], "prune.recalibrate_bn"),
    (["--config", "missing.yaml"], "does not exist"),
])
def test_bad_input_exits_2_with_one_line(tmp_path, capsys, monkeypatch, args, needle):
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(["train", *args], capsys)
    assert code == 2
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert needle in lines[0] and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_help_explains_options(capsys):
    code, out, _ = run_cli(["train", "--help"], capsys)
    assert code == 0
    for flag in ("--dataset", "--data-dir", "--model", "--epochs", "--batch-size", "--lr", "--seed",
                 "--deterministic", "--out", "--config"):
        assert flag in out
