"""Pre-flight validation: every check that can fail on bad input, before anything is trained or written.

Why apart from the pipeline: the run (:func:`tfrewind.pipeline.train`), ``tfrewind retrain``,
``tfrewind prune`` and the compare study (:mod:`tfrewind.compare_validate`) all refuse the same bad
input the same way, in seconds rather than after hours of original training.
"""

from __future__ import annotations

from pathlib import Path

from ._keras import keras
from .callbacks import kept_rewind_epochs
from .config import ModelConfig, RunConfig
from .errors import ConfigError, ModelFileError
from .models import MODELS, is_model_path, takes_batch_norm
from .retraining import RETRAIN_SCHEDULES, OriginalRecord, build_retrain_schedule, needs_weight_rewind
from .rewind import checkpoint_dir
from .rounds import prune_rounds
from .rundir import ORIGINAL
from .schedule_record import record_path


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
    if not pretrained:
        _check_batch_norm_settings(config.model)
    if config.prune.method != "none":
        _validate_pruning(config)


def _check_batch_norm_settings(model: ModelConfig) -> None:
    """``model.bn_*`` set for a model that keeps its own batch norm would be silently ignored: refuse it."""
    changed = [key for key in ("bn_momentum", "bn_epsilon") if getattr(model, key) != getattr(ModelConfig, key)]
    if changed and not takes_batch_norm(model.name):
        raise ConfigError(f"model.{changed[0]} applies to the built-in small_cnn, resnet* and vgg* models; "
                          f"{model.name!r} keeps its own batch norm (drop model.{changed[0]})")


def _validate_pruning(config: RunConfig) -> None:
    """Pruning and retraining options that would only fail after original training: checked before it."""
    from .pruning import make_request

    for _, _, round_config in prune_rounds(config):  # iterative: every round's own request
        make_request(round_config, config.seed, preset=round_config.preset, policy=round_config.policy)
    RETRAIN_SCHEDULES.get(config.retrain.schedule)
    pretrained = config.train.pretrained
    if pretrained and Path(pretrained).is_dir():
        original = OriginalRecord.from_file(record_path(pretrained))
        kept = kept_rewind_epochs(checkpoint_dir(pretrained))
    else:
        original = OriginalRecord.from_config(config.train, steps_per_epoch=1)
        kept = None if pretrained else config.train.checkpoint_epoch_list()
    budget = config.retrain.budget_epochs(original.epochs)
    schedule = build_retrain_schedule(config.retrain.schedule, original, budget, config.retrain)
    if needs_weight_rewind(schedule) and config.prune.schedule == "soft":
        raise ConfigError("retrain.schedule weight_rewind: not with prune.schedule soft, whose zeroed channels are "
                          "chosen anew every epoch; use lr_rewind (the same LR replay, without rewinding weights)")
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


__all__ = ["validate", "validate_on_model"]
