"""The paper's schedules in a plain Keras 3 ``model.fit``, checked against PyTorch's formulas.

Reference values come from ``paper_schedules`` (PyTorch's OneCycleLR, NPTM's SLR, MultiStepLR
written out independently) and from hand-computed SGD updates, never from tfrewind.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from paper_schedules import multistep_lr, nptm_slr_epoch_lrs, torch_one_cycle

keras = pytest.importorskip("keras")
from tfrewind.keras3 import (MomentumScheduler, OneCycleLR, OneCycleMomentum, OriginalSchedule,  # noqa: E402
                             PaperSGD, StepDecayLR, read_original, retraining_schedule)

REPO = Path(__file__).resolve().parents[1]


class Recorder(keras.callbacks.Callback):
    """The LR and momentum each step runs with (place after the MomentumScheduler)."""

    def __init__(self):
        super().__init__()
        self.rows: list[tuple[float, float]] = []

    def on_train_batch_begin(self, batch, logs=None):
        optimizer = self.model.optimizer
        self.rows.append((float(optimizer.learning_rate), float(np.asarray(optimizer.momentum))))


def test_one_cycle_and_momentum_in_a_plain_keras3_fit_follow_pytorch():
    keras.utils.set_random_seed(0)
    epochs, steps_per_epoch = 3, 10
    total = epochs * steps_per_epoch
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    model.compile(PaperSGD(OneCycleLR(max_lr=0.1, total_steps=total), momentum=0.95), "mse")
    recorder = Recorder()
    x, y = np.ones((40, 4), np.float32), np.zeros((40, 3), np.float32)
    model.fit(x, y, batch_size=4, epochs=epochs, verbose=0,
              callbacks=[MomentumScheduler(OneCycleMomentum(total_steps=total)), recorder])
    assert len(recorder.rows) == total
    for step, (lr, momentum) in enumerate(recorder.rows):
        want_lr, want_momentum = torch_one_cycle(step, total, 0.1)
        assert lr == pytest.approx(want_lr, rel=1e-4, abs=1e-9), step
        assert momentum == pytest.approx(want_momentum, rel=1e-5), step


def test_momentum_set_by_the_callback_changes_the_keras3_update():
    """One weight, loss (w·x − y)², momentum 0.9 then 0.0 then 0.5 set per step by the callback:
    the weight after three steps is PyTorch's update by hand — and not the constant-momentum one."""
    x, y, lr, w0 = 1.5, 0.0, 0.1, 1.0
    momenta = [0.9, 0.0, 0.5]
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1, use_bias=False,
                                                                    kernel_initializer=keras.initializers.Constant(w0))])
    model.compile(PaperSGD(lr, momentum=0.9), "mse")
    model.fit(np.full((3, 1), x, np.float32), np.full((3, 1), y, np.float32), batch_size=1, epochs=1,
              shuffle=False, verbose=0, callbacks=[MomentumScheduler(lambda step: momenta[int(step)])])

    def by_hand(momentum_per_step):
        w, buffer = w0, 0.0
        for m in momentum_per_step:
            gradient = 2 * (w * x - y) * x
            buffer = m * buffer + gradient
            w -= lr * buffer
        return w

    got = float(model.get_weights()[0][0, 0])
    assert got == pytest.approx(by_hand(momenta), rel=1e-5)
    assert abs(got - by_hand([0.9, 0.9, 0.9])) > 1e-3


def test_keras3_sgd_whose_momentum_a_callback_cannot_change_is_refused():
    """Keras 3's SGD keeps momentum as a float read once when the step is traced: refuse, don't ignore."""
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(keras.optimizers.SGD(0.01, momentum=0.9), "mse")
    with pytest.raises(TypeError, match="PaperSGD"):
        model.fit(np.ones((4, 2)), np.ones((4, 1)), verbose=0, callbacks=[MomentumScheduler(lambda s: 0.8)])


SPE = 10


@pytest.fixture
def paper():
    """The paper's CIFAR schedule, described: 0.1, ×0.1 at epochs 80 and 120 of 160."""
    return OriginalSchedule(StepDecayLR(0.1, [80, 120], 0.1, SPE), epochs=160, steps_per_epoch=SPE)


def _per_epoch(schedule, epochs):
    return [float(schedule(e * SPE)) for e in range(epochs)]


def test_fine_tune_lr_rewind_and_slr_from_a_described_original(paper):
    budget = 40
    fine_tune, _ = retraining_schedule("fine_tune", paper, budget)
    assert _per_epoch(fine_tune, budget) == pytest.approx([0.001] * budget, rel=1e-5)
    rewind, momentum = retraining_schedule("lr_rewind", paper, budget)
    want = [multistep_lr(160 - budget + e, 0.1, [80, 120]) for e in range(budget)]
    assert momentum is None and _per_epoch(rewind, budget) == pytest.approx(want, rel=1e-5)
    slr, _ = retraining_schedule("scaled_lr_restart", paper, budget)
    assert _per_epoch(slr, budget) == pytest.approx(nptm_slr_epoch_lrs(budget, 0.001, 0.1), rel=1e-4)


def test_lr_rewind_replays_a_run_recorded_by_tfrewind(tmp_path):
    """The tf_keras run's ``schedule.json`` loads as Keras 3 schedules (same registered names)."""
    from tfrewind.schedule_record import write_schedule_record
    from tfrewind.schedules import StepDecayLR as TfKerasStepDecay
    from tfrewind.training import StageSchedule

    stage = StageSchedule(TfKerasStepDecay(0.1, [6, 9], 0.1, SPE), momentum=0.9)
    stage.epochs = 12
    write_schedule_record(tmp_path / "original" / "schedule.json", stage, SPE)
    original = read_original(tmp_path)
    assert original.epochs == 12 and type(original.schedule).__module__ == "tfrewind.keras3.schedules"
    rewind, _ = retraining_schedule("lr_rewind", original, 5)
    assert _per_epoch(rewind, 5) == pytest.approx([multistep_lr(7 + e, 0.1, [6, 9]) for e in range(5)], rel=1e-5)


def test_keras3_schedules_need_neither_tf_keras_nor_tfmot():
    """A Keras 3 user's process: the schedules, callback and optimizer train a model, and neither
    tf_keras nor tfmot is imported (nor ``TF_USE_LEGACY_KERAS`` set, which would change their tf.keras)."""
    code = ("import sys, numpy as np, keras\n"
            "from tfrewind.keras3 import MomentumScheduler, OneCycleLR, OneCycleMomentum, PaperSGD\n"
            "m = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])\n"
            "m.compile(PaperSGD(OneCycleLR(0.1, 4), momentum=0.95), 'mse')\n"
            "m.fit(np.ones((8, 2)), np.ones((8, 1)), batch_size=2, verbose=0, "
            "callbacks=[MomentumScheduler(OneCycleMomentum(4))])\n"
            "import os; print(sorted({'tf_keras', 'tensorflow_model_optimization'} & set(sys.modules)), "
            "os.environ.get('TF_USE_LEGACY_KERAS'))\n")
    env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    env["PYTHONPATH"] = str(REPO)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[] None"
