"""Retraining schedules against the paper's formulas, computed independently here."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tfrewind._keras import keras, tf
from tfrewind.callbacks import MomentumScheduler
from tfrewind.optim import PaperSGD, set_momentum
from tfrewind.retraining import OriginalRecord, build_retrain_schedule, schedule_table
from tfrewind.schedules import OneCycleLR, StepDecayLR

SPE = 10  # steps per epoch, small so per-step checks stay cheap


def paper_lr(epoch: float) -> float:
    """The paper's original schedule: 0.1, ×0.1 at 80 and 120 of 160 epochs."""
    return 0.1 * (0.1 ** sum(epoch >= m for m in (80, 120)))


@pytest.fixture
def paper():
    return OriginalRecord(StepDecayLR(0.1, [80, 120], 0.1, SPE), epochs=160, steps_per_epoch=SPE)


def lrs(name, original, budget):
    stage = build_retrain_schedule(name, original, budget)
    return {e: lr for e, lr, _ in schedule_table(stage, SPE)}, stage


def test_fine_tune_is_the_last_original_lr(paper):
    values, _ = lrs("fine_tune", paper, 40)
    assert all(v == pytest.approx(0.001, rel=1e-5) for v in values.values()) and len(values) == 40


@pytest.mark.parametrize("budget", [40, 72, 112, 152])
def test_lr_rewind_replays_the_last_epochs(paper, budget):
    values, _ = lrs("lr_rewind", paper, budget)
    for epoch in range(budget):
        assert values[epoch] == pytest.approx(paper_lr(160 - budget + epoch), rel=1e-5)
    if budget == 72:  # the worked example: 0.01 for 32 epochs, then 0.001
        assert values[31] == pytest.approx(0.01, rel=1e-5) and values[32] == pytest.approx(0.001, rel=1e-5)


def test_lr_rewind_cannot_exceed_original_training(paper):
    from tfrewind.errors import ConfigError

    with pytest.raises(ConfigError, match="cannot exceed"):
        build_retrain_schedule("lr_rewind", paper, 200)


def test_lr_rewind_works_for_any_recorded_shape():
    cosine = keras.optimizers.schedules.CosineDecay(0.1, 100 * SPE)
    original = OriginalRecord(cosine, epochs=100, steps_per_epoch=SPE)
    stage = build_retrain_schedule("lr_rewind", original, 30)
    for step in (0, 7, 150, 299):
        assert float(stage.lr(step)) == pytest.approx(float(cosine(70 * SPE + step)), rel=1e-5)


@pytest.mark.parametrize("budget", [40, 72, 152])
def test_scaled_lr_restart(paper, budget):
    values, _ = lrs("scaled_lr_restart", paper, budget)
    warmup = int(0.1 * budget)
    first, second = warmup + int(0.45 * budget), warmup + int(0.675 * budget)
    assert values[0] == pytest.approx(0.001, rel=1e-5)  # starts from the final original LR
    for epoch in range(1, warmup):
        expected = 0.1 + (0.001 - 0.1) / 2 * (1 + math.cos(math.pi * epoch / warmup))
        assert values[epoch] == pytest.approx(expected, rel=1e-4)
    for epoch in range(warmup, budget):
        expected = 0.1 * 0.1 ** ((epoch >= first) + (epoch >= second))
        assert values[epoch] == pytest.approx(expected, rel=1e-5), epoch


def torch_one_cycle(step, total, max_lr, pct=0.1, div=100.0, final_div=100.0, lo=0.85, hi=0.95):
    """PyTorch OneCycleLR (cos, three_phase=False) written out from its documentation."""
    initial, minimum = max_lr / div, max_lr / div / final_div
    end_up, end_down = pct * total - 1, total - 1

    def cos(start, end, fraction):
        return end + (start - end) / 2 * (math.cos(math.pi * fraction) + 1)

    if step <= end_up:
        fraction = step / end_up
        return cos(initial, max_lr, fraction), cos(hi, lo, fraction)
    fraction = (step - end_up) / (end_down - end_up)
    return cos(max_lr, minimum, fraction), cos(lo, hi, fraction)


@pytest.mark.parametrize("budget", [40, 72])
def test_one_cycle_counts_steps_like_pytorch(paper, budget):
    stage = build_retrain_schedule("one_cycle", paper, budget)
    total = budget * SPE
    rows = schedule_table(stage, SPE, per_step=True)
    assert len(rows) == total
    for step in (0, 1, total // 20, total // 10 - 1, total // 10, total // 2, total - 1):
        lr, momentum = torch_one_cycle(step, total, 0.1)
        assert rows[step][1] == pytest.approx(lr, rel=1e-4), step
        assert rows[step][2] == pytest.approx(momentum, rel=1e-5), step
    assert rows[0][1] == pytest.approx(0.001, rel=1e-5) and rows[-1][1] == pytest.approx(1e-5, rel=1e-3)


def test_paper_sgd_matches_pytorch_update_with_changing_lr_and_momentum():
    """b ← m·b + g + wd·w ; w ← w − lr·b, with lr and momentum changing each step."""
    schedule = OneCycleLR(0.5, total_steps=6, pct_start=0.5, div_factor=10)
    w0 = np.array([1.0, -2.0], np.float32)
    var = tf.Variable(w0)
    optimizer = PaperSGD(schedule, momentum=0.9, weight_decay=0.01)
    reference_w, buffer = w0.astype(np.float64), np.zeros(2)
    for step, momentum in enumerate([0.9, 0.8, 0.95, 0.85]):
        set_momentum(optimizer, momentum)
        grad = np.array([0.3, -0.1]) * (step + 1)
        optimizer.apply_gradients([(tf.constant(grad, tf.float32), var)])
        g = grad + 0.01 * reference_w
        buffer = momentum * buffer + g
        reference_w = reference_w - float(schedule(step)) * buffer
        np.testing.assert_allclose(var.numpy(), reference_w, rtol=1e-5)


def test_momentum_scheduler_really_changes_momentum_in_fit():
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(PaperSGD(0.01, momentum=0.95), "mse")
    seen = []

    class Record(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            seen.append(float(self.model.optimizer.momentum.numpy()))

    schedule = lambda step: 0.95 - 0.01 * step  # noqa: E731
    model.fit(np.ones((8, 2)), np.ones((8, 1)), batch_size=2, epochs=1, verbose=0,
              callbacks=[MomentumScheduler(schedule), Record()])
    assert seen == pytest.approx([0.95, 0.94, 0.93, 0.92])


def test_momentum_scheduler_refuses_a_frozen_float_momentum():
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(keras.optimizers.SGD(0.01, momentum=0.9), "mse")
    with pytest.raises(TypeError, match="tf.Variable"):
        model.fit(np.ones((4, 2)), np.ones((4, 1)), verbose=0, callbacks=[MomentumScheduler(lambda s: 0.8)])
