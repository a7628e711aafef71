"""Run one short prune-and-retrain with a tf.distribute strategy, then dump masks and metrics.

Usage: python run_pipeline.py STRATEGY PRETRAINED_RUN OUT_DIR RESULT_JSON [LOGICAL_CPUS]
The dense original comes from PRETRAINED_RUN (trained on one device), so pruning sees the same
weights everywhere and the masks can be compared exactly with a single-device run.
It is a script (not a test) because logical devices and TF_CONFIG must be set before TensorFlow
initialises, which a pytest process has already done. The single-device reference needs neither:
the tests call :func:`prune_and_retrain` in their own process.
"""

from __future__ import annotations

import json
import sys

import numpy as np


def prune_and_retrain(strategy_name: str, pretrained: str, out_dir: str) -> dict:
    """Masks, accuracy, sparsity and the weights before and after retraining, as JSON-ready lists."""
    from tfrewind.config import load_config
    from tfrewind.models import load_model_file
    from tfrewind.pipeline import train
    from tfrewind.pruning import masks

    # BN recalibration: off after pruning, where the test compares the starting weights exactly (under a
    # strategy each replica averages the statistics of its share of the batch, not of the whole batch);
    # on after retraining, where weights are compared with a tolerance, so that it runs under each strategy.
    config = load_config(None, {"strategy": strategy_name, "out": out_dir, "train.epochs": 2, "retrain.budget": "2",
                                "train.pretrained": pretrained,
                                "prune.method": "global_magnitude", "prune.sparsity": 0.7, "export.format": "none",
                                "prune.recalibrate_bn": 0, "retrain.recalibrate_bn": 5, "seed": 0})
    result = train(config, verbose=0)
    model = load_model_file(result.run_dir / "retrain" / "model.keras")

    def weights(path):
        """Every weight of a saved model, by layer name (the pruned model is where retraining starts)."""
        layers = [getattr(layer, "layer", layer) for layer in load_model_file(path).layers]  # inside pruning wrappers
        return {layer.name: [w.tolist() for w in layer.get_weights()] for layer in layers if layer.get_weights()}

    found = {name: mask.astype(np.int8).tolist() for name, mask in masks(model).items()}
    return {"masks": found, "retrain": result.stages["retrain"]["test_accuracy"],
            "recalibrated": result.stages["retrain"]["recalibrate_bn"],
            "sparsity": result.stages["retrain"]["sparsity"],
            "start": weights(result.run_dir / "prune" / "model.keras"),
            "weights": weights(result.run_dir / "retrain" / "model_stripped.keras")}


if __name__ == "__main__":
    strategy_name, pretrained, out_dir, result_path = sys.argv[1:5]
    logical_cpus = int(sys.argv[5]) if len(sys.argv) > 5 else 0

    from tfrewind._keras import tf

    if logical_cpus:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * logical_cpus)
    with open(result_path, "w") as handle:
        json.dump(prune_and_retrain(strategy_name, pretrained, out_dir), handle)
