"""What a user sees: one learning-rate (and momentum) curve per stage in TensorBoard."""

from __future__ import annotations

import json
import re
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

