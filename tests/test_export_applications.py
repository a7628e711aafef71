"""Export of pruned ``tf_keras.applications`` models as users bring them (weights=None, 32×32×3).

Untrained, these networks collapse: EfficientNetB0's softmax is ≈ 0.1 for every class and image,
its classes 1e-8 apart, so which class Keras ranks first is float noise. A verification that
demanded the same argmax from the int8 file (which holds those outputs as exact ties) passed or
failed with the random init.
"""

from __future__ import annotations

import numpy as np
import pytest
from litert_run import litert_logits

from tfrewind._keras import keras
from tfrewind.config import DataConfig, PruneConfig
from tfrewind.data import load_data
from tfrewind.export import TOLERANCES, export_model
from tfrewind.pruning import prune


@pytest.fixture(scope="module")
def synthetic():
    return load_data(DataConfig(name="synthetic", batch_size=64), seed=0)


def _pruned_efficientnet(seed: int) -> keras.Model:
    keras.utils.set_random_seed(seed)
    model = keras.applications.EfficientNetB0(input_shape=(32, 32, 3), weights=None, classes=10)
    return prune(model, PruneConfig(method="magnitude", sparsity=0.5), seed=0).model


@pytest.mark.slow  # EfficientNetB0 conversions: the float reference and the int8 file
def test_pruned_application_int8_ships_a_verified_file_every_time(synthetic, tmp_path):
    """The issue's `--prune magnitude --sparsity 0.5` then `export --quantize int8` as a user would run
    it on a fresh random init (seed 2 failed before the fix with top-1 agreement 0.703; seed 1 with
    0.896: one init keeps the suite fast, the fast test below covers the tie rule on its own).
    ``sparse=False`` skips the sparse int8 attempt, which LiteRT cannot run: export then ships this
    same dense int8 file (that fallback is tested on small_cnn and ResNet-20), one EfficientNetB0
    conversion less."""
    images = np.concatenate([x.numpy() for x, _ in synthetic.test])[:256]
    for run in (2,):
        model = _pruned_efficientnet(seed=run)
        report = export_model(model, tmp_path / str(run), quantize="int8", sparse=False, data=synthetic,
                              calibration_images=32, eval_images=256, latency_runs=0)
        assert report.verification["passed"] and report.main_file.name == "model_int8.tflite"
        ours = litert_logits(report.main_file, images)
        theirs = model.predict(images, verbose=0)
        assert np.max(np.abs(ours - theirs)) <= TOLERANCES["int8"][0] * np.max(np.abs(theirs))
        assert any("coin toss" in note for note in report.notes)  # the user is told agreement says little


def test_int8_of_a_model_with_near_tied_outputs_is_verified(digits_bundle, tmp_path):
    """The same collapse in miniature (fast): logits ~1e-3 apart give probabilities ~1e-4 apart,
    far below the int8 softmax's step (1/256): the file holds exact ties where Keras' top-1 wanders
    over the classes. Ties are not disagreements."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input(digits_bundle.input_shape)
    tiny = keras.initializers.RandomNormal(stddev=1e-4)
    logits = keras.layers.Dense(10, kernel_initializer=tiny)(keras.layers.Flatten()(inputs))
    model = keras.Model(inputs, keras.layers.Softmax()(logits))
    report = export_model(model, tmp_path, quantize="int8", data=digits_bundle, calibration_images=32,
                          latency_runs=0)
    assert report.verification["passed"] and report.main_file.exists()
    assert report.verification["exact_agreement"] < 0.5  # Keras' argmax really differs from the file's
    assert any("coin toss" in note for note in report.notes)
