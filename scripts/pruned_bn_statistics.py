"""How much of the accuracy lost right after channel pruning is stale batch-norm statistics?

For every cell of a finished ``tfrewind compare`` study, the pruned model (``prune/model.keras``,
before any retraining) is scored on the test split as saved, then again after its batch-norm
moving statistics are re-estimated on the training images (one training-mode pass over all of
them, momentum 0: no weight changes). The dense model gets the same treatment as a control.

Usage (from the project root, after the study)::

    python scripts/pruned_bn_statistics.py runs/compare-digits-mobilenetv2

Why: removing channels changes what every later layer sees, while the moving statistics still
describe the dense network; a model at chance right after pruning may be broken, or only stale.
"""

from __future__ import annotations

import argparse
import statistics
from collections import defaultdict
from pathlib import Path

import numpy as np

from tfrewind._keras import keras
from tfrewind.compare import load_compare_config
from tfrewind.data import load_data
from tfrewind.models import load_model_file


def _accuracy(model: keras.Model, x: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(np.argmax(model.predict(x, batch_size=256, verbose=0), -1) == y))


def _restats(model: keras.Model, x: np.ndarray) -> None:
    """Moving mean/variance := the statistics of ``x`` at every batch-norm layer (weights untouched)."""
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = 0.0
    model(x, training=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("study", type=Path, help="a finished compare output directory")
    args = parser.parse_args()
    config = load_compare_config(args.study / "compare.yaml", {"out": str(args.study)})
    data = load_data(config.base.data, seed=config.base.seed)
    x_train = np.concatenate([x.numpy() for x, _ in data.train_plain])
    x_test = np.concatenate([x.numpy() for x, _ in data.test])
    y_test = np.concatenate([y.numpy() for _, y in data.test])
    models = {"unpruned": config.original_dir / "original" / "model.keras"}
    for cell in config.cells():  # schedules share their pruned model: one per method and seed
        models.setdefault(f"{cell.method.name} seed {cell.seed}", cell.path / "prune" / "model.keras")
    scores: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for name, path in models.items():
        model = load_model_file(path)
        before = _accuracy(model, x_test, y_test)
        _restats(model, x_train)
        scores[name.split(" seed ")[0]].append((before, _accuracy(model, x_test, y_test)))
    print("| model | n | test accuracy as pruned % | after re-estimating batch-norm statistics % |")
    print("|---|---:|---:|---:|")
    for name, pairs in scores.items():
        cols = [_mean_std([p[i] * 100 for p in pairs]) for i in (0, 1)]
        print(f"| {name} | {len(pairs)} | {cols[0]} | {cols[1]} |")


def _mean_std(values: list[float]) -> str:
    return f"{statistics.mean(values):.2f}" + (f" ± {statistics.stdev(values):.2f}" if len(values) > 1 else "")


if __name__ == "__main__":
    main()
