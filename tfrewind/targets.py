"""Sparsity targets: what each pruned layer must still hold after retraining and after export.

Why kept apart from the stages: the targets are read back from the finished prune stage's
metrics (one-shot/iterative) or the config (gradual), and checked at two ends of the pipeline
(retraining, export) and by ``tfrewind export`` on a finished run.
"""

from __future__ import annotations

from ._keras import keras
from .config import RunConfig
from .monitor import check_sparsity_targets
from .rounds import prune_rounds
from .rundir import RunDir


def pruned_layer_targets(run: RunDir, config: RunConfig, prune_name: str | None = None) -> dict[str, tuple[float, int]]:
    """Layer → (target sparsity, size of the weight tfmot masks in it) of every masked layer.

    The last round's by default. The size is the pruned weight's (the pointwise kernel of a
    separable conv), the one every check counts.

    One-shot/iterative: the sparsity the prune stage gave each layer (the masks are then fixed).
    Gradual: ``prune.sparsity`` per wrapped layer (tfmot prunes each layer to it while retraining).
    Filter methods remove weights physically: there are no zeros to keep (empty).
    """
    if config.prune.method == "none":
        return {}
    prune_name = prune_name or prune_rounds(config)[-1][0]
    if not run.is_done(prune_name):
        return {}
    metrics = run.metrics(prune_name)
    if metrics.get("structured"):
        return {}
    gradual = config.prune.schedule == "gradual"
    return {row["layer"]: (float(config.prune.sparsity) if gradual else float(row["sparsity"]), int(row["size"]))
            for row in metrics.get("report", {}).get("layers", []) if row.get("wrapped")}


def check_retrained_sparsity(model: keras.Model, targets: dict[str, tuple[float, int]], stage: str) -> None:
    """After retraining every pruned layer is exactly as sparse as pruning left it (or gradual's target)."""
    from .pruning import sparsity_report

    achieved = {row["layer"]: row["sparsity"] for row in sparsity_report(model)["layers"]}
    check_sparsity_targets(achieved, {n: t for n, (t, _) in targets.items()},
                           {n: size for n, (_, size) in targets.items()}, f"after {stage}")


def check_export_sparsity(report, targets: dict[str, tuple[float, int]]) -> None:
    """Each pruned layer keeps its zeros in the stripped Keras model and in the exported file.

    Quantization (int8, dynamic, float16) may round more weights to zero, so there the file needs
    at least the target; a float32 file must match it.
    """
    if not targets:
        return
    wanted = {n: t for n, (t, _) in targets.items()}
    sizes = {n: size for n, (_, size) in targets.items()}
    check_sparsity_targets({layer.name: layer.keras_sparsity for layer in report.layers}, wanted, sizes,
                           "export (stripped Keras model)")
    in_file = {layer.name: layer.file_sparsity for layer in report.layers if layer.file_sparsity is not None}
    if in_file:
        check_sparsity_targets(in_file, {n: t for n, t in wanted.items() if n in in_file}, sizes,
                               f"export ({report.format} file)", at_least=report.quantize != "none")


__all__ = ["check_export_sparsity", "check_retrained_sparsity", "pruned_layer_targets"]
