"""BN statistics after pruning: tf_keras' batch-norm defaults vs PyTorch's, with and without recalibration.

Usage (from the project root)::

    python scripts/bn_recalibration.py                       # prints Markdown, writes the JSON below
    python scripts/bn_recalibration.py --seeds 0 --epochs 20 --work /tmp/bnr   # quicker

What it measures, on ``digits`` with ``small_cnn`` (T original epochs, step schedule), for each batch-norm
setting (tf_keras' momentum 0.99 / epsilon 1e-3 against PyTorch's 0.9 / 1e-5) and each original seed:

- A: test accuracy of the model L1-filter-pruned at 75 % *before retraining*, without recalibration and with
  N = 1 … 21 batches (one epoch) of recalibration, cumulative (every batch weighs the same, PyTorch's
  ``momentum=None``) and exponential (the layers' own momentum);
- B: test accuracy after fine-tuning for a short budget, with recalibration off, after pruning, after
  retraining, or both (the pipeline's ``prune.recalibrate_bn`` / ``retrain.recalibrate_bn``);
- C: how much VGG's one BN on 2-D features (``fc1_bn``) would change if its moving variance were updated with
  the unbiased batch variance as PyTorch's ``BatchNorm1d`` does (× n/(n − 1), n = the batch size).

Runs are resumable (one run directory each under ``--work``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tfrewind._keras import keras  # noqa: E402
from tfrewind.batchnorm import recalibrate_on_training_data  # noqa: E402
from tfrewind.config import DataConfig, PruneConfig, RunConfig  # noqa: E402

BN = {"keras": (0.99, 1e-3), "pytorch": (0.9, 1e-5)}
RECALIBRATIONS = [("none", 0, True), ("cumulative", 1, True), ("cumulative", 2, True), ("cumulative", 5, True),
                  ("cumulative", 10, True), ("cumulative", 21, True), ("exponential", 5, False),
                  ("exponential", 21, False)]
FT_CASES = [(0, 0), (21, 0), (0, 21), (21, 21)]
"""(prune.recalibrate_bn, retrain.recalibrate_bn): off, after pruning, after retraining, both."""


def run_config(bn: str, seed: int, out: Path, epochs: int, **sections) -> RunConfig:
    config = RunConfig(seed=seed, out=str(out))
    config.model.bn_momentum, config.model.bn_epsilon = BN[bn]
    config.train.epochs = epochs
    config.export.format = "none"
    for key, value in sections.items():
        section, name = key.split("__")
        setattr(getattr(config, section), name, value)
    return config.validate()


def original(bn: str, seed: int, work: Path, epochs: int) -> Path:
    from tfrewind.pipeline import train

    out = work / f"original-{bn}-s{seed}"
    train(run_config(bn, seed, out, epochs, prune__method="none"), verbose=0)
    return out


def before_retraining(original_dir: Path, seed: int, data) -> dict[str, float]:
    """A: the pruned model's test accuracy for each recalibration (a fresh prune each time: same filters)."""
    from tfrewind.models import load_model_file
    from tfrewind.pruning import prune
    from tfrewind.schedules import ConstantLR
    from tfrewind.training import StageSchedule, compile_model, evaluate

    dense = load_model_file(original_dir / "original" / "model.keras")
    out = {}
    for average, batches, cumulative in RECALIBRATIONS:
        pruned = prune(dense, PruneConfig(method="l1_filter", sparsity=0.75), seed=seed).model
        compile_model(pruned, StageSchedule(ConstantLR(0.0)), 0.0)
        if batches:
            recalibrate_on_training_data(pruned, data, batches, cumulative=cumulative)
        out[f"{average}:{batches}"] = evaluate(pruned, data)["test_accuracy"]
    return out


def fine_tuned(original_dir: Path, bn: str, seed: int, work: Path, epochs: int, budget: int) -> dict[str, float]:
    """B: final test accuracy after fine-tuning for ``budget`` epochs, per recalibration case."""
    from tfrewind.pipeline import train

    out = {}
    for after_prune, after_retrain in FT_CASES:
        run = work / f"ft-{bn}-s{seed}-p{after_prune}-r{after_retrain}"
        config = run_config(bn, seed, run, epochs, train__pretrained=str(original_dir), prune__method="l1_filter",
                            prune__sparsity=0.75, prune__recalibrate_bn=after_prune, retrain__schedule="fine_tune",
                            retrain__budget=str(budget), retrain__recalibrate_bn=after_retrain)
        result = train(config, verbose=0)
        retrain = result.stages["retrain"]
        out[f"p{after_prune}-r{after_retrain}"] = {
            "final": retrain["test_accuracy"], "best": max(retrain["history"]["test_accuracy"]),
            "train_last_epoch": retrain["history"]["accuracy"][-1]}
    return out


def vgg_dense_bn(work: Path, epochs: int) -> dict[str, float]:
    """C: VGG-16 on digits; fc1_bn's moving variance × n/(n − 1) (PyTorch's unbiased update) vs as trained."""
    from tfrewind.models import load_model_file
    from tfrewind.pipeline import train

    out_dir = work / "vgg16"
    config = run_config("pytorch", 0, out_dir, epochs, prune__method="none")
    config.model.name = "vgg16"
    train(config, verbose=0)
    model = load_model_file(out_dir / "original" / "model.keras")
    from tfrewind.data import load_data

    data = load_data(DataConfig(name="digits"), seed=0)
    images = np.concatenate([x.numpy() for x, _ in data.test])
    labels = np.concatenate([y.numpy() for _, y in data.test])
    logits = model.predict(images, verbose=0)
    layer = model.get_layer("fc1_bn")
    n = data.batch_size
    layer.moving_variance.assign(layer.moving_variance.numpy() * n / (n - 1))
    corrected = model.predict(images, verbose=0)
    return {"accuracy": float(np.mean(logits.argmax(1) == labels)),
            "accuracy_unbiased": float(np.mean(corrected.argmax(1) == labels)),
            "changed_predictions": int(np.sum(logits.argmax(1) != corrected.argmax(1))),
            "test_images": int(len(labels)),
            "max_logit_change_relative": float(np.max(np.abs(corrected - logits)) / np.max(np.abs(logits)))}


def mean_std(values: list[float]) -> str:
    mean = 100 * statistics.fmean(values)
    return f"{mean:.1f}" + (f" ± {100 * statistics.stdev(values):.1f}" if len(values) > 1 else "")


def render(results: dict, args: argparse.Namespace) -> str:
    seeds = results["seeds"]
    lines = [f"Setting: digits, small_cnn, T = {args.epochs} epochs (step schedule), L1 filters 75 %, original "
             f"seeds {', '.join(map(str, seeds))} (mean ± std over them); wall time {results['seconds']:.0f} s.", "",
             "**A — test accuracy before retraining (%)**", "",
             "| batch norm | " + " | ".join(f"{a} {b}" if b else "no recalibration" for a, b, _ in RECALIBRATIONS) + " |",
             "|---|" + "---:|" * len(RECALIBRATIONS)]
    for bn in BN:
        cells = [mean_std([results["before"][bn][str(s)][f"{a}:{b}"] for s in seeds]) for a, b, _ in RECALIBRATIONS]
        lines.append(f"| {bn} {BN[bn]} | " + " | ".join(cells) + " |")
    lines += ["", f"**B — after fine-tuning for {args.budget} epochs (%): final test accuracy (best epoch's; "
              "training accuracy of the last epoch)**", "",
              "| batch norm | " + " | ".join(f"prune {p} / retrain {r} batches" for p, r in FT_CASES) + " |",
              "|---|" + "---:|" * len(FT_CASES)]
    for bn in BN:
        cells = []
        for p, r in FT_CASES:
            runs = [results["fine_tuned"][bn][str(s)][f"p{p}-r{r}"] for s in seeds]
            cells.append(f"{mean_std([x['final'] for x in runs])} ({mean_std([x['best'] for x in runs])}; "
                         f"{mean_std([x['train_last_epoch'] for x in runs])})")
        lines.append(f"| {bn} {BN[bn]} | " + " | ".join(cells) + " |")
    vgg = results["vgg"]
    lines += ["", f"**C — VGG-16's `fc1_bn` (2-D)**: test accuracy {100 * vgg['accuracy']:.2f} % as trained, "
              f"{100 * vgg['accuracy_unbiased']:.2f} % with the moving variance × n/(n − 1); "
              f"{vgg['changed_predictions']} of {vgg['test_images']} predictions change; largest logit change "
              f"{100 * vgg['max_logit_change_relative']:.2f} % of the largest logit.", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--budget", type=int, default=4, help="fine-tuning epochs (default 10 %% of 40)")
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--vgg-epochs", type=int, default=10)
    parser.add_argument("--work", default="/tmp/tfrewind-bn-recalibration")
    parser.add_argument("--json", default=str(ROOT / "docs" / "bn_recalibration.json"))
    args = parser.parse_args()
    work = Path(args.work)
    seeds = [int(s) for s in args.seeds.split(",")]
    from tfrewind.data import load_data

    started = time.perf_counter()
    results: dict = {"seeds": seeds, "before": {}, "fine_tuned": {}}
    data = load_data(DataConfig(name="digits"), seed=0)
    for bn in BN:
        results["before"][bn], results["fine_tuned"][bn] = {}, {}
        for seed in seeds:
            original_dir = original(bn, seed, work, args.epochs)
            keras.backend.clear_session()
            results["before"][bn][str(seed)] = before_retraining(original_dir, seed, data)
            results["fine_tuned"][bn][str(seed)] = fine_tuned(original_dir, bn, seed, work, args.epochs, args.budget)
            print(bn, seed, results["before"][bn][str(seed)], results["fine_tuned"][bn][str(seed)], flush=True)
    results["vgg"] = vgg_dense_bn(work, args.vgg_epochs)
    results["seconds"] = time.perf_counter() - started
    Path(args.json).write_text(json.dumps(results, indent=1) + "\n")
    print(render(results, args))


if __name__ == "__main__":
    main()
