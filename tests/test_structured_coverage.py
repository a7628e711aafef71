"""scripts/structured_coverage.py end to end on one small application: what its table reports is
what a user's `tfrewind prune --prune l1_filter` (MACs target 0.5) and `tfrewind export` did."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from tfrewind._keras import keras
from tfrewind.export.verify import LiteRTModel

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "structured_coverage.py"


@pytest.fixture(scope="module")
def coverage():
    spec = importlib.util.spec_from_file_location("structured_coverage", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_small_mobilenet_is_pruned_to_half_its_macs_and_its_tflite_runs(coverage, tmp_path):
    """MobileNet v1 at width 0.25: its depthwise convs couple each pointwise conv's filters to the next
    block, and at ~90 layers its TFLite conversion keeps the test near 30 s (MobileNetV2's takes twice that)."""
    row = coverage.cover("MobileNet", tmp_path, alpha=0.25, classes=10)

    assert row["status"] == "ok", row.get("message")
    assert row["input"] == 32 and row["family"] == "MobileNet v1"
    assert row["macs_ratio"] <= coverage.MACS_BAR
    assert row["groups_prunable"] > row["groups_total"] // 2
    assert row["rebuild_max_abs_diff"] <= 1e-5
    assert row["tflite_verified"] is True
    # What the row claims about the shipped file, checked on the file itself.
    pruned = keras.models.load_model(tmp_path / "MobileNet_pruned.keras")
    dense = keras.models.load_model(tmp_path / "MobileNet.keras")
    assert pruned.count_params() < dense.count_params()
    tflite = LiteRTModel((tmp_path / "MobileNet_export" / "model.tflite").read_bytes())
    images = np.random.default_rng(0).normal(size=(4, 32, 32, 3)).astype(np.float32)
    np.testing.assert_allclose(tflite.predict(images), pruned.predict(images, verbose=0), atol=1e-4)
    assert coverage.succeeded(row)


def test_the_smallest_variant_of_every_family_runs_first(coverage):
    names = coverage.constructors()
    firsts = coverage.ordered(names)[:len({coverage.family(n) for n in names})]
    assert {"MobileNetV3Small", "EfficientNetB0", "EfficientNetV2B0", "ConvNeXtTiny", "DenseNet121",
            "RegNetX002", "NASNetMobile", "ResNet50", "ResNet50V2", "VGG16"} <= set(firsts)
    assert set(coverage.BAR_FAMILIES) <= {coverage.family(n) for n in names}
