"""The stages of one run — original training, pruning, retraining, export — each resumable.

Each stage writes its outputs into its directory of the run (:mod:`tfrewind.rundir`) and marks
itself complete with ``metrics.json``; called again on a finished stage it returns that stage's
model (or metrics) instead of redoing it. The order of the stages is :func:`tfrewind.pipeline.train`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ._keras import keras
from .batchnorm import Recalibration, recalibrate_on_training_data
from .callbacks import RewindCheckpointer
from .config import ExportConfig, PruneConfig, RunConfig
from .data import DataBundle
from .errors import ModelFileError
from .models import load_model_file, save_model_atomic
from .monitor import SparsityMonitor, log_prune_report
from .retraining import OriginalRecord, build_retrain_schedule, needs_weight_rewind
from .rewind import checkpoint_dir, rewind_to_epoch
from .rounds import prune_stage_of
from .rundir import EXPORT, ORIGINAL, RunDir
from .schedule_record import record_path, recorded_epochs, write_schedule_record
from .schedules import ConstantLR
from .targets import check_export_sparsity, check_retrained_sparsity, pruned_layer_targets
from .training import StageSchedule, compile_model, evaluate, finish_stage, fit_stage, has_backup, original_schedule


def original_stage(run: RunDir, model: keras.Model, data: DataBundle, config: RunConfig,
                   verbose: int = 1) -> keras.Model:
    """Train the dense network (or take the pretrained one), record its schedule and checkpoints."""
    stage_dir = run.stage_dir(ORIGINAL)
    model_path = stage_dir / "model.keras"
    schedule = original_schedule(config.train, data.steps_per_epoch)
    if run.is_done(ORIGINAL):
        model = _stage_model(run, ORIGINAL)
        compile_model(model, schedule, config.train.weight_decay, config.jit_compile)
        return model
    compile_model(model, schedule, config.train.weight_decay, config.jit_compile)
    if config.train.pretrained:
        metrics = {"stage": ORIGINAL, "pretrained": str(config.train.pretrained), **evaluate(model, data)}
    else:
        rewind = RewindCheckpointer(checkpoint_dir(run.path), config.train.checkpoint_epoch_list())
        metrics = fit_stage(model, data, schedule, stage=ORIGINAL, stage_dir=stage_dir,
                            log_dir=run.log_dir(ORIGINAL), callbacks=[rewind], verbose=verbose)
    metrics["params"] = int(model.count_params())
    write_schedule_record(record_path(run.path), schedule, data.steps_per_epoch)
    save_model_atomic(model, model_path)
    run.write_metrics(ORIGINAL, metrics)
    finish_stage(stage_dir)
    return model


def original_record(run: RunDir, config: RunConfig, data: DataBundle) -> OriginalRecord:
    """The original schedule to rewind to: recorded by this run, by a pretrained run, or described by config."""
    recorded = record_path(run.path)
    pretrained = config.train.pretrained
    if pretrained and Path(pretrained).is_dir():
        recorded = record_path(pretrained)
    elif pretrained:
        return OriginalRecord.from_config(config.train, data.steps_per_epoch)
    return OriginalRecord.from_file(recorded)


def prune_stage(run: RunDir, stage: str, model: keras.Model, data: DataBundle, config: RunConfig,
                prune_config: PruneConfig) -> keras.Model:
    """Prune ``model``, recalibrate its BN statistics (``prune.recalibrate_bn``), evaluate it before retraining,
    and record per-layer sparsity, params and FLOPs."""
    from .pruning import gradual_steps, prune

    stage_dir = run.stage_dir(stage)
    if run.is_done(stage):
        return _stage_model(run, stage)
    options: dict[str, Any] = {"preset": prune_config.preset, "policy": prune_config.policy,
                               "batches": score_batches(data, prune_config.method)}
    if prune_config.schedule == "gradual":  # tfmot prunes during retraining: reach the target by 75 % of it
        budget_steps = config.retrain.budget_epochs(_original_epochs(run, config)) * data.steps_per_epoch
        options.update(gradual_steps(budget_steps, data.steps_per_epoch))
    result = prune(model, prune_config, seed=config.seed, **options)
    pruned = result.model
    compile_model(pruned, StageSchedule(ConstantLR(0.0)), 0.0)
    recalibrated = _recalibrate(pruned, data, prune_config.recalibrate_bn)  # before "accuracy before retraining"
    metrics = {"stage": stage, "method": prune_config.method, "sparsity_target": prune_config.sparsity,
               "structured": result.structured, **evaluate(pruned, data), "recalibrate_bn": recalibrated,
               "report": result.report}
    log_prune_report(run.log_dir(stage), result.report)
    save_model_atomic(pruned, stage_dir / "model.keras")
    run.write_metrics(stage, metrics)
    return pruned


def retrain_stage(run: RunDir, stage: str, model: keras.Model, data: DataBundle, config: RunConfig,
                  original: OriginalRecord, verbose: int = 1,
                  kept_filters: dict[str, list[int]] | None = None) -> keras.Model:
    """Retrain the pruned model with the configured schedule and budget; masks stay fixed.

    ``kept_filters``: a filter-pruned model's kept filters when the run has no prune stage of its own.
    The ``soft`` schedule (SFP) zeroes filters at every epoch end and returns the physically smaller model.
    """
    from .pruning import is_wrapped, pruning_callbacks, remove_zeroed, sparsity_report, strip

    stage_dir = run.stage_dir(stage)
    if run.is_done(stage):
        return _stage_model(run, stage)
    budget = config.retrain.budget_epochs(original.epochs)
    schedule = build_retrain_schedule(config.retrain.schedule, original, budget, config.retrain)
    if needs_weight_rewind(schedule) and not has_backup(stage_dir):  # a resumed stage's backup holds them
        rewind_to_epoch(run, config, model, original.epochs - budget, kept_filters)
    compile_model(model, schedule, config.train.weight_decay, config.jit_compile)
    callbacks = list(pruning_callbacks(model))
    if is_wrapped(model):
        callbacks.append(SparsityMonitor(run.log_dir(stage) / "sparsity",
                                         fixed_masks=config.prune.schedule != "gradual"))
    prune_name = prune_stage_of(config, stage)
    soft = _soft_pruning(run, prune_name, stage_dir, data, config)
    callbacks += [soft] if soft is not None else []
    metrics = fit_stage(model, data, schedule, stage=stage, stage_dir=stage_dir, log_dir=run.log_dir(stage),
                        callbacks=callbacks, verbose=verbose, test_each_epoch=True)
    if soft is not None:  # SFP ends here: the zeroed channels go, the smaller model is the result
        model, removal = remove_zeroed(model, soft.kept_filters())
        compile_model(model, schedule, config.train.weight_decay, config.jit_compile)
        metrics["soft_pruning"] = {**removal, "test_accuracy_before_removal": metrics["test_accuracy"]}
        metrics.update(evaluate(model, data))
    metrics.update({"schedule": config.retrain.schedule, "budget_epochs": budget,
                    "schedule_details": schedule.description, "sparsity": sparsity_report(model)})
    metrics["recalibrate_bn"] = _recalibrate(model, data, config.retrain.recalibrate_bn)
    if metrics["recalibrate_bn"]["ran"]:  # the final accuracy is the recalibrated model's
        metrics.update({"test_accuracy_before_recalibration": metrics["test_accuracy"], **evaluate(model, data)})
    prune_name = prune_stage_of(config, stage)
    if is_wrapped(model) and prune_name is not None:
        check_retrained_sparsity(model, pruned_layer_targets(run, config, prune_name), stage)
    save_model_atomic(model, stage_dir / "model.keras")
    save_model_atomic(strip(model), stage_dir / "model_stripped.keras")
    run.write_metrics(stage, metrics)
    finish_stage(stage_dir)
    return model


def score_batches(data: DataBundle, method: str) -> list | None:
    """A few training batches when ``method``'s criterion scores channels on data (taylor, hrank), else None."""
    from .pruning import SCORE_BATCHES, needs_data

    return data.first_batches(SCORE_BATCHES) if needs_data(method) else None


def _soft_pruning(run: RunDir, prune_name: str | None, stage_dir: Path, data: DataBundle, config: RunConfig):
    """The SFP callback when the run prunes with the ``soft`` schedule (from its prune stage's plan), else None."""
    from .pruning import SOFT_STATE_FILE, SoftFilterPruning, kept_filters

    if prune_name is None or config.prune.schedule != "soft" or not run.is_done(prune_name):
        return None
    report = run.metrics(prune_name)["report"]
    return SoftFilterPruning(report["criterion"], kept_filters(report), config.seed,
                             score_batches(data, config.prune.method), stage_dir / SOFT_STATE_FILE)


def export_stage(run: RunDir, model: keras.Model, data: DataBundle, config: RunConfig, stage: str = EXPORT,
                 format: str | None = None) -> dict[str, Any]:
    """Export the final model for the edge (verified with LiteRT); the report is the stage's metrics.

    ``format``: another format than ``config.export``'s, written into ``stage`` (a run that started
    from a Keras 3 model also gets its final model back as ``keras3``, in :data:`~tfrewind.rundir.KERAS3`).
    """
    from .export import export_model

    if run.is_done(stage):
        return run.metrics(stage)
    targets = pruned_layer_targets(run, config)
    export = config.export if format is None else ExportConfig(format=format)
    report = export_model(model, run.stage_dir(stage), format=export.format, quantize=export.quantize,
                          sparse=export.sparse, data=data)
    check_export_sparsity(report, targets)
    metrics = {"stage": stage, "test_accuracy": report.accuracy, **report.to_dict()}
    run.write_metrics(stage, metrics)
    return metrics


def _recalibrate(model: keras.Model, data: DataBundle, batches: int) -> dict[str, Any]:
    """BN recalibration on ``batches`` training batches (0: off); what ran, for ``metrics.json``."""
    if batches <= 0:
        return Recalibration(ran=False, batches=0, requested=0, layers=0, average="none").to_dict()
    return recalibrate_on_training_data(model, data, batches).to_dict()


def _stage_model(run: RunDir, stage: str) -> keras.Model:
    """A finished stage's model; a damaged file names the stage to redo."""
    try:
        return load_model_file(run.stage_dir(stage) / "model.keras")
    except ModelFileError as exc:
        raise ModelFileError(f"{exc}; the {stage} stage's output is damaged: delete {str(run.stage_dir(stage))!r} "
                             "to redo that stage") from exc


def _original_epochs(run: RunDir, config: RunConfig) -> int:
    recorded = recorded_epochs(record_path(run.path))
    return recorded if recorded is not None else config.train.epochs


__all__ = ["export_stage", "original_record", "original_stage", "prune_stage", "retrain_stage"]
