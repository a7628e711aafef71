"""Retraining schedules against the paper's formulas, computed independently here."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from paper_schedules import anneal_cos, nptm_slr_epoch_lrs, torch_one_cycle
from tfrewind._keras import keras, tf
from tfrewind.callbacks import MomentumScheduler
from tfrewind.optim import PaperSGD, set_momentum
from tfrewind.retraining import OriginalRecord, build_retrain_schedule, schedule_table
from tfrewind.schedules import CosineLR, OneCycleLR, StepDecayLR

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


OLD_COSINE = {"module": "tfrewind.schedules", "class_name": "CosineLR",
              "config": {"initial_lr": 0.1, "total_steps": 300, "final_lr": 0.0},
              "registered_name": "tfrewind>CosineLR"}
"""The ``lr_schedule`` of a cosine run's ``schedule.json`` as tfrewind wrote it before CosineLR became a
tf_keras ``CosineDecay`` (commit c40fe41, printed by ``keras.optimizers.schedules.serialize``)."""


def cosine_reference(step: int, initial: float, total: int, final: float) -> float:
    """Cosine annealing (Loshchilov & Hutter's SGDR, PyTorch's CosineAnnealingLR closed form), then flat."""
    return anneal_cos(initial, final, min(step, total) / total)


@pytest.mark.parametrize("initial, total, final", [(0.1, 300, 0.0), (0.05, 77, 1e-4), (0.001, 40, 0.01)])
def test_cosine_lr_is_tf_keras_cosine_decay_with_the_closed_form_at_every_step(initial, total, final):
    schedule = CosineLR(initial, total, final)
    assert isinstance(schedule, keras.optimizers.schedules.CosineDecay)  # tf_keras' code does the arithmetic
    steps = np.arange(total + 20)  # and past the end: the final LR
    values = schedule(tf.constant(steps, tf.float32)).numpy()  # a vector of steps, as schedule tables ask
    expected = [cosine_reference(int(s), initial, total, final) for s in steps]
    np.testing.assert_allclose(values, expected, rtol=1e-5, atol=1e-6 * max(initial, final))
    for step in (0, total // 3, total - 1):  # one integer step, as the optimizer asks (its iterations)
        lr = float(schedule(tf.constant(step, tf.int64)))
        assert lr == pytest.approx(expected[step], rel=1e-5, abs=1e-6 * max(initial, final))


def test_cosine_lr_saved_by_an_earlier_version_still_loads(tmp_path):
    record = tmp_path / "schedule.json"
    record.write_text(json.dumps({"epochs": 30, "steps_per_epoch": 10, "momentum": 0.9, "lr_schedule": OLD_COSINE}))
    original = OriginalRecord.from_file(record)
    assert isinstance(original.schedule, CosineLR)
    for step in (0, 1, 150, 299):
        assert float(original.schedule(step)) == pytest.approx(cosine_reference(step, 0.1, 300, 0.0), abs=1e-7)
    assert original.peak_lr == pytest.approx(0.1) and original.final_lr == pytest.approx(
        cosine_reference(299, 0.1, 300, 0.0), abs=1e-7)
    # runs written now hold the same JSON, so earlier versions read them too
    assert keras.optimizers.schedules.serialize(CosineLR(0.1, 300)) == OLD_COSINE


def test_cosine_lr_survives_a_saved_compiled_model(tmp_path):
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(PaperSGD(CosineLR(0.1, 50, 0.001), momentum=0.9), "mse")
    model.fit(np.ones((8, 2)), np.ones((8, 1)), batch_size=4, epochs=1, verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    schedule = loaded.optimizer.learning_rate if isinstance(loaded.optimizer.learning_rate, CosineLR) \
        else loaded.optimizer._learning_rate
    assert isinstance(schedule, CosineLR)
    for step in (0, 25, 49, 60):
        assert float(schedule(step)) == pytest.approx(cosine_reference(step, 0.1, 50, 0.001), rel=1e-5)


@pytest.mark.parametrize("budget", [15, 25, 40, 72, 152])
def test_scaled_lr_restart(paper, budget):
    """SLR against the paper's code (NPTM ``--use_llr``, simulated in paper_schedules) at every epoch.

    At 15 epochs "×0.1 at 50 % of the epochs left after the warm-up" (7) and the paper's
    ``int(0.5·0.9·E)`` (6) part: the paper's code is the reference.
    """
    values, _ = lrs("scaled_lr_restart", paper, budget)
    reference = nptm_slr_epoch_lrs(budget, init_lr=0.001, peak_lr=0.1)
    warmup = int(0.1 * budget)  # the paper: warm up over the first 10 % of the budget
    assert values[0] == pytest.approx(0.001, rel=1e-5)  # starts from the final original LR
    for epoch in range(1, warmup):
        expected = 0.1 + (0.001 - 0.1) / 2 * (1 + math.cos(math.pi * epoch / warmup))
        assert values[epoch] == pytest.approx(expected, rel=1e-4)
    for epoch in range(budget):
        assert values[epoch] == pytest.approx(reference[epoch], rel=1e-5), epoch
    # the paper's Figure 1(c): after the warm-up, ×0.1 at about 50 % and 75 % of the remaining epochs
    after = [values[e] for e in range(warmup, budget)]
    assert sorted({round(v, 6) for v in after}, reverse=True) == [0.1, 0.01, 0.001]
    for level, share in ((0.1, 0.5), (0.01, 0.75)):
        at_or_above = sum(v >= level * 0.99 for v in after)
        assert abs(at_or_above - share * (budget - warmup)) <= 1 + 0.05 * budget, (level, at_or_above)


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


def test_a_registered_schedule_asks_for_weight_rewinding_with_a_typed_flag(tmp_path):
    """``StageSchedule.rewind_weights`` alone makes a (plugin) schedule rewind weights: the pipeline's
    pre-flight check then wants the original run's checkpoints, as for ``weight_rewind``."""
    from tfrewind.config import load_config
    from tfrewind.errors import ConfigError
    from tfrewind.pipeline import validate
    from tfrewind.retraining import RETRAIN_SCHEDULES

    def rewinding(original, budget, config):
        stage = build_retrain_schedule("lr_rewind", original, budget, config)
        stage.rewind_weights = True
        return stage

    model_file = tmp_path / "dense.keras"
    model_file.write_bytes(b"")  # validate() only checks that a pretrained file exists
    RETRAIN_SCHEDULES.register("rewinding_test")(rewinding)
    try:
        config = load_config(None, {"retrain.schedule": "rewinding_test", "train.pretrained": str(model_file),
                                    "prune.method": "magnitude", "train.epochs": 4, "retrain.budget": 2})
        with pytest.raises(ConfigError, match="needs the original run's checkpoints"):
            validate(config)
        assert not build_retrain_schedule("lr_rewind", OriginalRecord.from_config(config.train, 1), 2).rewind_weights
    finally:
        RETRAIN_SCHEDULES.unregister("rewinding_test")
