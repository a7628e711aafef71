"""`tfrewind export MODEL.keras` for a model whose input is not the default dataset's (issue 11, item 4).

The model is the one of tfmot's "Pruning in Keras" tutorial: 28×28 inputs reshaped to 28×28×1.
The default dataset (digits) gives 8×8×1 images; `synthetic` gives 32×32×3; tfds `mnist` (here
through ``tfds.testing.mock_data``) gives 28×28×1 — the tutorial's own data.
"""

from __future__ import annotations

import json

import pytest
import tensorflow_datasets as tfds
from clirun import run_cli

from tfrewind._keras import keras


@pytest.fixture(scope="module")
def tutorial_model(tmp_path_factory):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.layers.InputLayer(input_shape=(28, 28)),
        keras.layers.Reshape(target_shape=(28, 28, 1)),
        keras.layers.Conv2D(12, (3, 3), activation="relu"),
        keras.layers.MaxPooling2D((2, 2)),
        keras.layers.Flatten(),
        keras.layers.Dense(10),
    ])
    path = tmp_path_factory.mktemp("tutorial") / "mnist_model.keras"
    model.save(path)
    return path


def _report(out):
    return json.loads((out / "export.json").read_text())


def test_default_export_works_on_generated_inputs_and_says_so(tutorial_model, tmp_path, capsys):
    code, stdout, err = run_cli(["export", tutorial_model, "--out", tmp_path / "x"], capsys)
    assert code == 0, err
    report = _report(tmp_path / "x")
    assert report["verification"]["passed"] and (tmp_path / "x" / "model.tflite").exists()
    assert report["accuracy"] is None  # generated inputs have no labels: no accuracy is claimed
    assert "generated" in report["verification_data"]
    said = " ".join(report["notes"])
    assert "digits" in said and "--dataset" in said
    assert "--dataset" in stdout  # the console tells the user how to get accuracy


def test_an_explicit_dataset_that_does_not_fit_is_refused_in_one_line(tutorial_model, tmp_path, capsys):
    code, _, err = run_cli(["export", tutorial_model, "--dataset", "synthetic", "--out", tmp_path / "x"], capsys)
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "28×28" in err and "32×32×3" in err
    assert not (tmp_path / "x").exists()


def test_int8_without_fitting_calibration_images_is_refused_in_one_line(tutorial_model, tmp_path, capsys):
    code, _, err = run_cli(["export", tutorial_model, "--quantize", "int8", "--out", tmp_path / "x"], capsys)
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and "--dataset" in err and "28×28" in err


def test_the_tutorials_own_dataset_fits_without_its_channel_axis(tutorial_model, tmp_path, capsys):
    """mnist's 28×28×1 images feed the model's 28×28 input: verified, calibrated and scored."""
    with tfds.testing.mock_data(num_examples=40):
        code, _, err = run_cli(["export", tutorial_model, "--dataset", "mnist", "--quantize", "int8",
                                "--out", tmp_path / "x"], capsys)
    assert code == 0, err
    report = _report(tmp_path / "x")
    assert report["verification"]["passed"] and (tmp_path / "x" / "model_int8.tflite").exists()
    assert report["accuracy"] is not None and report["test_images"] > 0


def test_labels_of_other_classes_score_nothing(digits_bundle, tmp_path):
    """Images that fit but labels that don't (3 outputs, 10 digit classes): no accuracy is claimed."""
    from tfrewind.export import export_model

    inputs = keras.Input(digits_bundle.input_shape)
    model = keras.Model(inputs, keras.layers.Dense(3)(keras.layers.Flatten()(inputs)))
    report = export_model(model, tmp_path, data=digits_bundle, latency_runs=0)
    assert report.verification["passed"] and report.accuracy is None
    assert any("3 outputs" in note and "10 classes" in note for note in report.notes)
