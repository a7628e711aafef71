"""What a user sees: one learning-rate (and momentum) curve per stage in TensorBoard, and a console
without TensorFlow's start-up chatter (``--debug`` shows it)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from clirun import run_ok
from tbreader import read_scalars
from test_schedules import torch_one_cycle

REPO = Path(__file__).resolve().parents[1]
LR_TAG = re.compile(r"(^|_)(lr|learning_rate)$")
MOMENTUM_TAG = re.compile(r"(^|_)momentum$")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """3 epochs with ×0.1 steps after epochs 1 and 2, then 50 % pruning and 2 epochs of 1-cycle."""
    out = tmp_path_factory.mktemp("user_sees") / "run"
    run_ok(["train", "--epochs", "3", "--set", "train.milestones=1,2", "--prune", "global_magnitude",
            "--sparsity", "0.5", "--schedule", "one_cycle", "--budget", "2", "--export", "none", "--quiet",
            "--out", out])
    return out


def _epoch_curves(stage_dir: Path, pattern: re.Pattern) -> dict[str, list[float]]:
    """Every per-epoch series of the stage (all its TensorBoard runs) whose tag matches ``pattern``."""
    found = {}
    for run_dir in sorted(p for p in stage_dir.iterdir() if p.is_dir()):
        for tag, series in read_scalars(run_dir).items():
            if pattern.search(tag) and not tag.startswith("step_"):
                found[f"{run_dir.name}/{tag}"] = [value for _, value in series]
    return found


def test_tensorboard_shows_one_exact_learning_rate_and_momentum_curve_per_stage(run):
    steps = json.loads((run / "original" / "metrics.json").read_text())["steps_per_epoch"]
    cycle = [torch_one_cycle(epoch * steps, 2 * steps, 0.1) for epoch in range(2)]  # (lr, momentum) pairs
    expected = {  # the values in force at each epoch's first step, from the schedules' definitions
        "original": ([0.1, 0.01, 0.001], [0.9, 0.9, 0.9]),
        "retrain": ([lr for lr, _ in cycle], [momentum for _, momentum in cycle]),
    }
    for stage, (lrs, momenta) in expected.items():
        lr_curves = _epoch_curves(run / "tensorboard" / stage, LR_TAG)
        assert list(lr_curves) == ["train/epoch_learning_rate"], f"{stage}: {sorted(lr_curves)}"
        assert lr_curves["train/epoch_learning_rate"] == pytest.approx(lrs, rel=1e-5), stage
        momentum_curves = _epoch_curves(run / "tensorboard" / stage, MOMENTUM_TAG)
        assert list(momentum_curves) == ["train/epoch_momentum"], f"{stage}: {sorted(momentum_curves)}"
        assert momentum_curves["train/epoch_momentum"] == pytest.approx(momenta, rel=1e-5), stage
        # The per-step curves (finer, in the stage's schedule/ run) pass through the same points.
        per_step = read_scalars(run / "tensorboard" / stage / "schedule")
        at = dict(per_step["step_learning_rate"])
        assert [at[e * steps] for e in range(len(lrs))] == pytest.approx(lrs, rel=1e-5), stage
        at = dict(per_step["step_momentum"])
        assert [at[e * steps] for e in range(len(momenta))] == pytest.approx(momenta, rel=1e-5), stage


# ------------------------------------------------------------------------------------- the console

NOISE = re.compile(r"^[IWEF]\d{4} |absl::InitializeLog|oneDNN|cuda|cuInit|cpu_feature_guard|rebuild TensorFlow"
                   r"|^WARNING:(tensorflow|absl)|is slow compared to the batch time"
                   r"|XNNPACK delegate|fully_quantize|inference_type", re.IGNORECASE)
AS_INSTALLED = "import sys; from tfrewind.cli import main; sys.argv[0] = 'tfrewind'; main()"  # tfrewind.cli:main


def _fresh_shell_env() -> dict[str, str]:
    """The environment of a user's shell: no TF_CPP_MIN_LOG_LEVEL (the test suite sets one)."""
    env = {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}
    env["PYTHONPATH"] = str(REPO)
    return env


def _tfrewind(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", AS_INSTALLED, *args], cwd=cwd, env=_fresh_shell_env(),
                          capture_output=True, text=True, timeout=900)


def _messages(stderr: str) -> set[str]:
    """Log lines without their time stamp and thread id (``I0000 00:00:17.5  123 port.cc:153] text``)."""
    return {line.split("] ", 1)[-1] for line in stderr.splitlines() if line.strip()}


def test_the_console_shows_results_not_tensorflow_start_up_lines(tmp_path):
    """Training and an int8 export (the TFLite converter and LiteRT print C++ lines of their own)."""
    done = _tfrewind(tmp_path, "train", "--prune", "none", "--epochs", "1", "--quiet", "--out", "run",
                     "--set", "export.quantize=int8")
    assert done.returncode == 0, done.stderr
    assert "run directory:" in done.stdout and "test accuracy" in done.stdout
    noise = [line for line in done.stderr.splitlines() if NOISE.search(line)]
    assert not noise, done.stderr
    assert done.stderr.strip() == "", done.stderr  # a finished --quiet run has nothing else to say
    assert list((tmp_path / "run" / "export").glob("*.tflite"))


def test_an_unexpected_error_is_one_line_without_debug_and_a_traceback_with_it(tmp_path, capsys):
    """A bug (here: a pruning method registered by a user's plug-in that crashes) must not end in a
    traceback; --debug shows it."""
    from clirun import run_cli
    from tfrewind.models import build_model
    from tfrewind.pruning.registry import METHODS, register

    @register("crashing_test", structured=False)
    def crashing(model, request):
        raise RuntimeError("plug-in bug\nsecond line")

    try:
        model = tmp_path / "m.keras"
        build_model("small_cnn", (8, 8, 1), 10).save(model)
        args = ["prune", str(model), "--prune", "crashing_test"]
        code, out, err = run_cli(args, capsys)
        assert code == 1, err
        assert err.count("\n") == 1 and "internal error: RuntimeError: plug-in bug second line" in err, err
        assert "Traceback" not in err and "--debug" in err
        with pytest.raises(RuntimeError, match="plug-in bug"):
            run_cli(["--debug", *args], capsys)
    finally:
        METHODS.unregister("crashing_test")


def test_debug_shows_what_tensorflow_prints(tmp_path):
    """Whatever a bare ``import tensorflow`` prints on this machine (CPU-dependent, maybe nothing)
    reaches the console with --debug."""
    bare = subprocess.run([sys.executable, "-c", "import tensorflow"], cwd=tmp_path, env=_fresh_shell_env(),
                          capture_output=True, text=True, timeout=900)
    done = _tfrewind(tmp_path, "--debug", "schedule", "--budget", "2", "--original-epochs", "4")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == "epoch,lr,momentum"
    assert _messages(bare.stderr) <= _messages(done.stderr), done.stderr
