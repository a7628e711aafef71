"""The back-ends of ``tfrewind prune``, ``tfrewind retrain`` and ``tfrewind export``.

Why a module of its own: each command is one call into the library (the CLI is a thin shell),
and each starts from a file rather than from a config alone — a saved model, or a finished run
directory — then reuses the stages of a run (:mod:`tfrewind.stages`). ``tfrewind train`` is
:func:`tfrewind.pipeline.train`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .config import RunConfig
from .data import load_data
from .errors import ConfigError, ModelFileError
from .io import read_json, write_json_atomic
from .keras3.files import is_keras3_file
from .models import load_model_file, save_model_atomic
from .pipeline import RunResult
from .preflight import validate
from .retraining import OriginalRecord
from .rounds import prune_rounds
from .rundir import EXPORT, KERAS3, RETRAIN, RunDir
from .stages import export_stage, original_record, retrain_stage, score_batches
from .targets import check_export_sparsity, pruned_layer_targets
from .training import make_strategy, set_precision, set_seed


def prune_file(model_path: str | Path, config: RunConfig, out: str | Path | None = None,
               dataset_given: bool = True) -> tuple[Path, dict]:
    """Prune a saved model once (``tfrewind prune``): writes the pruned model and its report beside it.

    Filter methods also record ``kept_filters``: conv → kept filter indices in the numbering of the
    dense model, composed with the record beside ``model_path`` when that file was itself pruned by
    ``tfrewind prune``; :func:`retrain_model` reads them to slice weight-rewinding checkpoints.
    Criteria that score channels on data (taylor, hrank) read a few batches of ``config.data``;
    ``dataset_given=False`` (the CLI got no ``--dataset``) refuses them rather than using the default.
    """
    from .pruning import compose_kept, kept_filters, prune

    validate(config)
    if config.prune.schedule == "soft":
        raise ConfigError("prune.schedule soft: channels are zeroed while retraining and removed at its end, and "
                          "`tfrewind prune` does not retrain; run `tfrewind train --prune-schedule soft`")
    model = load_model_file(model_path)
    batches = _score_data(model, model_path, config, dataset_given)
    result = prune(model, config.prune, seed=config.seed, preset=config.prune.preset, policy=config.prune.policy,
                   batches=batches)
    path = Path(out) if out else Path(model_path).with_name(f"{Path(model_path).stem}_pruned.keras")
    record: dict[str, Any] = {"method": config.prune.method, "structured": result.structured, "report": result.report,
                              "keras3_source": came_from_keras3(model_path)}
    if result.structured:
        earlier = file_kept_filters(model_path)
        kept = kept_filters(result.report)
        record["kept_filters"] = compose_kept(earlier, kept) if earlier else kept
    save_model_atomic(result.model, path)
    write_json_atomic(path.with_suffix(".json"), record)
    return path, result.report


def _score_data(model, model_path: str | Path, config: RunConfig, dataset_given: bool) -> list | None:
    """Training batches for a criterion that scores channels on data; None for the others."""
    from .models import check_model_fits
    from .pruning import needs_data

    if not needs_data(config.prune.method):
        return None
    if not dataset_given:
        raise ConfigError(f"prune.method {config.prune.method}: its criterion scores channels on a few training "
                          f"batches; give --dataset NAME whose images fit the model's input "
                          f"{tuple(model.input_shape[1:])} (and --data-dir, --image-size if needed)")
    data = load_data(config.data, seed=config.seed)
    check_model_fits(model, data.input_shape, data.num_classes, source=str(model_path))
    return score_batches(data, config.prune.method)
def came_from_keras3(model_path: str | Path) -> bool:
    """A Keras 3 file, or one ``tfrewind prune`` made from one (its record says so): its retraining
    ends with a Keras 3 file too."""
    record_path = Path(model_path).with_suffix(".json")
    if is_keras3_file(model_path):
        return True
    try:
        return record_path.is_file() and bool(read_json(record_path).get("keras3_source"))
    except (ValueError, AttributeError):
        return False


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
    checkpoints to its smaller shapes. A Keras 3 file (or one pruned from it) is also written back as
    Keras 3 (``RUN/keras3``).
    """
    validate(config)
    if config.prune.schedule == "soft":
        raise ConfigError("prune.schedule soft: needs the plan of its own prune stage; run `tfrewind train "
                          "--prune-schedule soft` (with --pretrained to reuse a trained model)")
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
        model = retrain_stage(run, RETRAIN, model, data, config, original, verbose, kept_filters=kept)
    result = RunResult(run.path, {RETRAIN: run.metrics(RETRAIN)})
    if came_from_keras3(model_path):  # Keras 3 in, Keras 3 out
        result.stages[KERAS3] = export_stage(run, model, data, config, stage=KERAS3, format="keras3")
    return result


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


__all__ = ["came_from_keras3", "export_path", "file_kept_filters", "prune_file", "retrain_model"]
