"""The whole run: original training → (pruning → retraining) → evaluation → export.

Each stage writes its outputs into the run directory and marks itself complete with
``metrics.json``; re-running the same command on the same directory skips completed stages and
resumes an interrupted one (``BackupAndRestore``). Everything the CLI's ``train`` does is one call
of :func:`train`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._keras import keras
from .callbacks import RewindCheckpointer
from .config import PruneConfig, RunConfig
from .data import DataBundle, load_data
from .errors import CheckpointError, ConfigError, ModelFileError, TrainingDivergedError
from .io import read_json, write_json_atomic
from .models import MODELS, build_model, is_model_path, load_model_file, save_model_atomic
from .rundir import RunDir
from .monitor import SparsityMonitor, check_sparsity_targets
from .retraining import (RETRAIN_SCHEDULES, OriginalRecord, build_retrain_schedule, needs_weight_rewind, rewind_epoch_checkpoint,
                         rewind_weights)
from .schedules import ConstantLR, Schedule
from .training import (StageSchedule, compile_model, evaluate, finish_stage, fit_stage, has_backup, make_strategy, original_schedule,
                       set_precision, set_seed)
from . import schedules as _schedules  # noqa: F401  (registers schedule classes for reloading)

ORIGINAL = "original"
PRUNE = "prune"
RETRAIN = "retrain"
EXPORT = "export"


@dataclass
class RunResult:
    """Where the run lives and each completed stage's metrics."""

    run_dir: Path
    stages: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def final(self) -> dict[str, Any]:
        return list(self.stages.values())[-1]


def validate(config: RunConfig) -> None:
    """Check every registry name and option before anything is loaded or written.

    Checks that need the model's architecture follow in :func:`validate_on_model`.
    """
    if not is_model_path(config.model.name):
        MODELS.get(config.model.name)
    if config.model.name and is_model_path(config.model.name) and not Path(config.model.name).exists():
        raise ModelFileError(f"model file {config.model.name!r} does not exist")
    pretrained = config.train.pretrained
    if pretrained and not Path(pretrained).exists():
        raise ModelFileError(f"train.pretrained: {pretrained!r} does not exist")
    if pretrained and Path(pretrained).is_dir() and not (Path(pretrained) / ORIGINAL / "model.keras").exists():
        raise ModelFileError(f"train.pretrained: {pretrained!r} is a directory without {ORIGINAL}/model.keras; "
                             "give a finished tfrewind run directory or a .keras/.h5 model file")
    if config.prune.method != "none":
        _validate_pruning(config)


def _validate_pruning(config: RunConfig) -> None:
    """Pruning and retraining options that would only fail after original training: checked before it."""
    from .pruning import make_request

    for _, _, round_config in prune_rounds(config):  # iterative: every round's own request
        make_request(round_config, config.seed, preset=round_config.preset, policy=round_config.policy)
    RETRAIN_SCHEDULES.get(config.retrain.schedule)
    pretrained = config.train.pretrained
    if pretrained and Path(pretrained).is_dir():
        original = OriginalRecord.from_file(Path(pretrained) / ORIGINAL / "schedule.json")
        kept = sorted(int(p.name[6:10]) for p in (Path(pretrained) / ORIGINAL / "checkpoints").glob("epoch_*.weights.h5"))
    else:
        original = OriginalRecord.from_config(config.train, steps_per_epoch=1)
        kept = None if pretrained else config.train.checkpoint_epoch_list()
    budget = config.retrain.budget_epochs(original.epochs)
    schedule = build_retrain_schedule(config.retrain.schedule, original, budget, config.retrain)
    if needs_weight_rewind(schedule):
        epoch = original.epochs - budget
        if kept is None:
            raise ConfigError("retrain.schedule weight_rewind needs the original run's checkpoints: give "
                              "--pretrained RUN_DIR (a run directory), not a model file")
        if epoch not in kept:
            shown = "none" if not kept else ", ".join(map(str, kept[:6])) + (" …" if len(kept) > 6 else "")
            raise ConfigError(f"retrain.schedule weight_rewind rewinds to epoch {epoch} (original {original.epochs} "
                              f"− budget {budget}), whose weights are not kept (checkpoints: {shown}); "
                              "set --set train.checkpoint_epochs=all or choose a budget whose epoch is kept")


def validate_on_model(config: RunConfig, model: keras.Model) -> None:
    """The pruning options checked against the model's architecture, before it is trained.

    Ratio counts, layer names, presets, a policy the model does not fit, layers an m:n pattern or
    filter surgery cannot handle: each round's method resolves its options on ``model`` (untrained,
    or the pretrained one; only the architecture counts) with the functions its pruning uses.
    """
    if config.prune.method == "none":
        return
    from .pruning import check

    for _, _, round_config in prune_rounds(config):
        check(model, round_config, config.seed, preset=round_config.preset, policy=round_config.policy)


def train(config: RunConfig, verbose: int = 1, resume: bool = False) -> RunResult:
    """Run the configured pipeline in ``config.out`` (created, or resumed if it exists).

    Every check that can fail on bad input runs before anything is written. ``resume=True``
    insists that ``config.out`` is an existing run directory (made with the same config).
    A NaN/inf loss stops the run with :class:`TrainingDivergedError`; the stage's last good
    epoch stays in its ``backup``.
    """
    validate(config)
    RunDir.check(config, resume)
    set_seed(config.seed, config.deterministic)
    set_precision(config.mixed_precision)
    strategy = make_strategy(config.strategy)  # first: multi-worker must configure TF before any variable exists
    data = load_data(config.data, seed=config.seed)
    with strategy.scope():
        model = _initial_model(config, data)
        validate_on_model(config, model)
    run = RunDir.prepare(config, resume=resume)
    result = RunResult(run.path)
    try:
        with strategy.scope():
            model = original_stage(run, model, data, config, verbose)
        result.stages[ORIGINAL] = run.metrics(ORIGINAL)
        if config.prune.method != "none":
            original = original_record(run, config, data)
            for prune_name, retrain_name, round_config in prune_rounds(config):
                with strategy.scope():
                    pruned = prune_stage(run, prune_name, model, data, config, round_config)
                    model = retrain_stage(run, retrain_name, pruned, data, config, original, verbose)
                result.stages[prune_name] = run.metrics(prune_name)
                result.stages[retrain_name] = run.metrics(retrain_name)
    except TrainingDivergedError as exc:
        reuse = f"; --pretrained {run.path} reuses its finished original training" if run.is_done(ORIGINAL) else ""
        raise TrainingDivergedError(f"{exc} (run {str(run.path)!r}); lower the learning rate in a new run "
                                    f"(another --out{reuse})") from exc
    if config.export.format != "none":
        result.stages[EXPORT] = export_stage(run, model, data, config)
    return result


def export_stage(run: RunDir, model: keras.Model, data: DataBundle, config: RunConfig) -> dict[str, Any]:
    """Export the final model for the edge (verified with LiteRT); the report is the stage's metrics."""
    from .export import export_model

    if run.is_done(EXPORT):
        return run.metrics(EXPORT)
    targets = pruned_layer_targets(run, config)
    report = export_model(model, run.stage_dir(EXPORT), format=config.export.format,
                          quantize=config.export.quantize, sparse=config.export.sparse, data=data)
    check_export_sparsity(report, targets)
    metrics = {"stage": EXPORT, "test_accuracy": report.accuracy, **report.to_dict()}
    run.write_metrics(EXPORT, metrics)
    return metrics


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


def prune_file(model_path: str | Path, config: RunConfig, out: str | Path | None = None) -> tuple[Path, dict]:
    """Prune a saved model once (``tfrewind prune``): writes the pruned model and its report beside it.

    Filter methods also record ``kept_filters``: conv → kept filter indices in the numbering of the
    dense model, composed with the record beside ``model_path`` when that file was itself pruned by
    ``tfrewind prune``; :func:`retrain_model` reads them to slice weight-rewinding checkpoints.
    """
    from .pruning import compose_kept, kept_filters, prune

    validate(config)
    model = load_model_file(model_path)
    result = prune(model, config.prune, seed=config.seed, preset=config.prune.preset, policy=config.prune.policy)
    path = Path(out) if out else Path(model_path).with_name(f"{Path(model_path).stem}_pruned.keras")
    record: dict[str, Any] = {"method": config.prune.method, "structured": result.structured, "report": result.report}
    if result.structured:
        earlier = file_kept_filters(model_path)
        kept = kept_filters(result.report)
        record["kept_filters"] = compose_kept(earlier, kept) if earlier else kept
    save_model_atomic(result.model, path)
    write_json_atomic(path.with_suffix(".json"), record)
    return path, result.report


def file_kept_filters(model_path: str | Path) -> dict[str, list[int]] | None:
    """The dense-model kept filter indices recorded beside a model file by ``tfrewind prune``, if any."""
    from .pruning import kept_filters

    record_path = Path(model_path).with_suffix(".json")
    if not record_path.is_file():
        return None
    try:
        record = read_json(record_path)
        if not isinstance(record, dict) or not record.get("structured"):
            return None
        kept = record.get("kept_filters") or kept_filters(record["report"])
        return {str(name): [int(i) for i in indices] for name, indices in kept.items()}
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ModelFileError(f"{str(record_path)!r}: not a readable pruning record from `tfrewind prune` "
                             f"({type(exc).__name__}); restore it or delete it") from None


def retrain_model(model_path: str | Path, config: RunConfig, verbose: int = 1) -> RunResult:
    """Retrain an already pruned model (``tfrewind retrain``) into a run directory.

    The original schedule to rewind to comes from ``train.pretrained`` when it is a run directory
    (which also provides weight-rewinding checkpoints), else from the ``train`` section. A
    filter-pruned file's kept filters (recorded beside it by :func:`prune_file`) slice those
    checkpoints to its smaller shapes.
    """
    validate(config)
    kept = file_kept_filters(model_path)
    set_seed(config.seed, config.deterministic)
    set_precision(config.mixed_precision)
    strategy = make_strategy(config.strategy)  # first: multi-worker must configure TF before any variable exists
    data = load_data(config.data, seed=config.seed)
    with strategy.scope():
        model = load_model_file(model_path)
    from .models import check_model_fits

    check_model_fits(model, data.input_shape, data.num_classes, source=str(model_path))
    run = RunDir.prepare(config)
    original = original_record(run, config, data) if config.train.pretrained else \
        OriginalRecord.from_config(config.train, data.steps_per_epoch)
    with strategy.scope():
        retrain_stage(run, RETRAIN, model, data, config, original, verbose, kept_filters=kept)
    return RunResult(run.path, {RETRAIN: run.metrics(RETRAIN)})


def export_path(model_or_run: str | Path, config: RunConfig, out: str | Path | None = None,
                xnnpack_sparse: bool = False, allow_select_tf_ops: bool = False, dataset_given: bool = True):
    """``tfrewind export``: export a run's final model (data from its config) or a model file.

    ``dataset_given=False``: ``config.data`` is only the default, so a model file whose input it does
    not fit is verified on generated inputs instead of being refused (a run brings its own data).
    """
    from .export import export_model, resolve_model_path

    source = Path(model_or_run)
    if not source.exists():
        raise ModelFileError(f"{str(source)!r} does not exist; give a run directory or a .keras/.h5 model file")
    is_run = source.is_dir() and (source / "config.yaml").exists()
    if is_run:
        from .config import load_config

        run_config = load_config(source / "config.yaml")
        config.data = run_config.data
        config.seed = run_config.seed
    data = load_data(config.data, seed=config.seed)
    default_out = source / EXPORT if source.is_dir() else source.with_name(f"{source.stem}_export")
    model_path = resolve_model_path(source)
    report = export_model(model_path, Path(out) if out else default_out,
                          format=config.export.format if config.export.format != "none" else "tflite",
                          quantize=config.export.quantize, sparse=config.export.sparse, data=data,
                          xnnpack_sparse=xnnpack_sparse, allow_select_tf_ops=allow_select_tf_ops,
                          data_fallback=not (dataset_given or is_run))
    if is_run and run_config.prune.method != "none":
        final_retrain = prune_rounds(run_config)[-1][1]
        if model_path.parent.name == final_retrain:  # a finished run's final model: its targets apply
            check_export_sparsity(report, pruned_layer_targets(RunDir(source), run_config))
    return report


def prune_rounds(config: RunConfig) -> list[tuple[str, str, PruneConfig]]:
    """(prune stage, retrain stage, that round's prune config): one round unless iterative."""
    if config.prune.schedule != "iterative":
        return [(PRUNE, RETRAIN, config.prune)]
    from .pruning import METHODS, iterative_plan

    plans = iterative_plan(config.prune, METHODS.get(config.prune.method).structured)
    return [(f"{PRUNE}_r{i}", f"{RETRAIN}_r{i}", plan) for i, plan in enumerate(plans, start=1)]


def original_record(run: RunDir, config: RunConfig, data: DataBundle) -> OriginalRecord:
    """The original schedule to rewind to: recorded by this run, by a pretrained run, or described by config."""
    recorded = run.stage_dir(ORIGINAL) / "schedule.json"
    pretrained = config.train.pretrained
    if pretrained and Path(pretrained).is_dir():
        recorded = Path(pretrained) / ORIGINAL / "schedule.json"
    elif pretrained:
        return OriginalRecord.from_config(config.train, data.steps_per_epoch)
    return OriginalRecord.from_file(recorded)


def _checkpoint_dir(run: RunDir, config: RunConfig) -> Path:
    pretrained = config.train.pretrained
    base = Path(pretrained) if pretrained and Path(pretrained).is_dir() else run.path
    return base / ORIGINAL / "checkpoints"


def prune_stage(run: RunDir, stage: str, model: keras.Model, data: DataBundle, config: RunConfig,
                prune_config: PruneConfig) -> keras.Model:
    """Prune ``model``, evaluate it before retraining, and record per-layer sparsity, params and FLOPs."""
    from .pruning import prune

    stage_dir = run.stage_dir(stage)
    if run.is_done(stage):
        return _stage_model(run, stage)
    options: dict[str, Any] = {"preset": prune_config.preset, "policy": prune_config.policy}
    if prune_config.schedule == "gradual":  # tfmot prunes during retraining: reach the target by 75 % of it
        budget_steps = config.retrain.budget_epochs(_original_epochs(run, config)) * data.steps_per_epoch
        frequency = max(1, data.steps_per_epoch // 2)
        # tfmot prunes only at multiples of the frequency up to end_step: end on one, or it stops short.
        end_step = frequency * max(1, -(-int(0.75 * budget_steps) // frequency))
        if end_step > budget_steps:
            end_step = frequency * max(1, budget_steps // frequency)
        options.update({"begin_step": 0, "end_step": end_step, "frequency": frequency})
    result = prune(model, prune_config, seed=config.seed, **options)
    pruned = result.model
    compile_model(pruned, StageSchedule(ConstantLR(0.0)), 0.0)
    metrics = {"stage": stage, "method": prune_config.method, "sparsity_target": prune_config.sparsity,
               "structured": result.structured, **evaluate(pruned, data), "report": result.report}
    _log_prune_report(run.log_dir(stage), result.report)
    save_model_atomic(pruned, stage_dir / "model.keras")
    run.write_metrics(stage, metrics)
    return pruned


def retrain_stage(run: RunDir, stage: str, model: keras.Model, data: DataBundle, config: RunConfig,
                  original: OriginalRecord, verbose: int = 1,
                  kept_filters: dict[str, list[int]] | None = None) -> keras.Model:
    """Retrain the pruned model with the configured schedule and budget; masks stay fixed.

    ``kept_filters``: a filter-pruned model's kept filters when the run has no prune stage of its own.
    """
    from .pruning import is_wrapped, pruning_callbacks, sparsity_report, strip

    stage_dir = run.stage_dir(stage)
    if run.is_done(stage):
        return _stage_model(run, stage)
    budget = config.retrain.budget_epochs(original.epochs)
    schedule = build_retrain_schedule(config.retrain.schedule, original, budget, config.retrain)
    if needs_weight_rewind(schedule) and not has_backup(stage_dir):  # a resumed stage's backup holds them
        _rewind(run, config, model, original.epochs - budget, kept_filters)
    compile_model(model, schedule, config.train.weight_decay, config.jit_compile)
    callbacks = list(pruning_callbacks(model))
    if is_wrapped(model):
        callbacks.append(SparsityMonitor(run.log_dir(stage) / "sparsity",
                                         fixed_masks=config.prune.schedule != "gradual"))
    metrics = fit_stage(model, data, schedule, stage=stage, stage_dir=stage_dir, log_dir=run.log_dir(stage),
                        callbacks=callbacks, verbose=verbose)
    metrics.update({"schedule": config.retrain.schedule, "budget_epochs": budget,
                    "schedule_details": schedule.description, "sparsity": sparsity_report(model)})
    prune_name = _prune_stage_of(config, stage)
    if is_wrapped(model) and prune_name is not None:
        check_retrained_sparsity(model, pruned_layer_targets(run, config, prune_name), stage)
    save_model_atomic(model, stage_dir / "model.keras")
    save_model_atomic(strip(model), stage_dir / "model_stripped.keras")
    run.write_metrics(stage, metrics)
    finish_stage(stage_dir)
    return model


def _prune_stage_of(config: RunConfig, retrain_name: str) -> str | None:
    if config.prune.method == "none":
        return None
    return next((p for p, r, _ in prune_rounds(config) if r == retrain_name), None)


def _stage_model(run: RunDir, stage: str) -> keras.Model:
    """A finished stage's model; a damaged file names the stage to redo."""
    try:
        return load_model_file(run.stage_dir(stage) / "model.keras")
    except ModelFileError as exc:
        raise ModelFileError(f"{exc}; the {stage} stage's output is damaged: delete {str(run.stage_dir(stage))!r} "
                             "to redo that stage") from exc


def _original_epochs(run: RunDir, config: RunConfig) -> int:
    record = run.stage_dir(ORIGINAL) / "schedule.json"
    return int(read_json(record)["epochs"]) if record.exists() else config.train.epochs


def _rewind(run: RunDir, config: RunConfig, model: keras.Model, epoch: int,
            kept_filters: dict[str, list[int]] | None = None) -> None:
    """Weight rewinding: surviving weights back to their values after ``epoch`` original epochs."""
    checkpoint_dir = _checkpoint_dir(run, config)
    checkpoint = rewind_epoch_checkpoint(checkpoint_dir, epoch)
    dense = load_model_file(checkpoint_dir.parent / "model.keras")
    try:
        dense.load_weights(checkpoint)
    except Exception as exc:  # noqa: BLE001 - h5py/ValueError: the file is damaged or not these weights
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise CheckpointError(f"weight rewinding: checkpoint {str(checkpoint)!r} is unreadable ({reason}); "
                              "restore it from a copy, or retrain with --schedule lr_rewind (needs no checkpoint)") from None
    kept = kept_filters if kept_filters is not None else structured_kept_filters(run, config)
    try:
        rewind_weights(model, dense, kept)
    except ValueError as exc:  # shapes differ: a filter-pruned model without its kept filters
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise CheckpointError(f"weight rewinding: the weights of {str(checkpoint)!r} do not fit the model ({reason}); "
                              "a filter-pruned model needs the .json that `tfrewind prune` wrote beside it") from None


def structured_kept_filters(run: RunDir, config: RunConfig) -> dict[str, list[int]] | None:
    """Filter methods: dense-model indices of the filters kept so far, composed over finished rounds."""
    from .pruning import compose_kept, kept_filters

    kept = None
    for prune_name, _, _ in prune_rounds(config):
        if not run.is_done(prune_name):
            break
        metrics = run.metrics(prune_name)
        if not metrics.get("structured"):
            return None
        round_kept = kept_filters(metrics["report"])
        kept = round_kept if kept is None else compose_kept(kept, round_kept)
    return kept


def _log_prune_report(log_dir: Path, report: dict[str, Any]) -> None:
    """Per-layer sparsity and size counts as TensorBoard scalars (step 0) for the prune stage."""
    import tensorflow as tf

    writer = tf.summary.create_file_writer(str(log_dir))
    with writer.as_default(step=0):
        for row in report.get("layers", []):
            if "sparsity" in row:
                tf.summary.scalar(f"sparsity/{row['layer']}", float(row["sparsity"]))
        for key in ("params_before", "params_after", "flops_before", "flops_after", "sparsity"):
            if isinstance(report.get(key), (int, float)):
                tf.summary.scalar(f"prune/{key}", float(report[key]))
    writer.close()


def _initial_model(config: RunConfig, data: DataBundle) -> keras.Model:
    pretrained = config.train.pretrained
    if pretrained:
        path = Path(pretrained)
        if path.is_dir():
            path = path / ORIGINAL / "model.keras"
        model = load_model_file(path)
        from .models import check_model_fits

        check_model_fits(model, data.input_shape, data.num_classes, source=str(path))
        return model
    return build_model(config.model.name, data.input_shape, data.num_classes)


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
        rewind = RewindCheckpointer(stage_dir / "checkpoints", config.train.checkpoint_epoch_list())
        metrics = fit_stage(model, data, schedule, stage=ORIGINAL, stage_dir=stage_dir,
                            log_dir=run.log_dir(ORIGINAL), callbacks=[rewind], verbose=verbose)
    metrics["params"] = int(model.count_params())
    record_schedule(stage_dir / "schedule.json", schedule, data.steps_per_epoch)
    save_model_atomic(model, model_path)
    run.write_metrics(ORIGINAL, metrics)
    finish_stage(stage_dir)
    return model


def record_schedule(path: Path, schedule: StageSchedule, steps_per_epoch: int) -> None:
    """Write the original schedule so that LR rewinding can replay it exactly later."""
    serialize = keras.optimizers.schedules.serialize
    write_json_atomic(path, {
        "epochs": schedule.epochs,
        "steps_per_epoch": steps_per_epoch,
        "momentum": schedule.momentum,
        "lr_schedule": serialize(schedule.lr),
        "momentum_schedule": None if schedule.momentum_schedule is None else serialize(schedule.momentum_schedule),
        "lr_per_epoch": [float(schedule.lr(e * steps_per_epoch)) for e in range(schedule.epochs)],
    })


def load_recorded_schedule(path: Path) -> tuple[Schedule, dict[str, Any]]:
    """The original LR schedule object and its record, as written by :func:`record_schedule`."""
    record = read_json(path)
    return keras.optimizers.schedules.deserialize(record["lr_schedule"]), record


__all__ = ["RunResult", "load_recorded_schedule", "original_stage", "record_schedule", "train",
           "validate", "validate_on_model"]
