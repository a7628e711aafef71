"""Weight rewinding of a pruned model to the original training's weights after epoch T − E.

Why here and not in the retrain stage: where the checkpoints are (this run, or a pretrained run
directory), which filters a filter-pruned model kept (composed over its finished rounds) and what
to say when a checkpoint is unreadable are one concern; the retrain stage only asks for it.
The per-layer reset itself is :func:`tfrewind.retraining.rewind_weights`.
"""

from __future__ import annotations

from pathlib import Path

from ._keras import keras
from .config import RunConfig
from .errors import CheckpointError
from .models import load_model_file
from .retraining import rewind_epoch_checkpoint, rewind_weights
from .rounds import prune_rounds
from .rundir import ORIGINAL, RunDir

CHECKPOINTS = "checkpoints"


def checkpoint_dir(run_dir: str | Path) -> Path:
    """Where a run directory keeps the weights of original training's epochs (``RUN/original/checkpoints``)."""
    return Path(run_dir) / ORIGINAL / CHECKPOINTS


def checkpoint_dir_of(run: RunDir, config: RunConfig) -> Path:
    """The original training's rewind checkpoints: this run's, or the pretrained run directory's."""
    pretrained = config.train.pretrained
    base = Path(pretrained) if pretrained and Path(pretrained).is_dir() else run.path
    return checkpoint_dir(base)


def rewind_to_epoch(run: RunDir, config: RunConfig, model: keras.Model, epoch: int,
                    kept_filters: dict[str, list[int]] | None = None) -> None:
    """Weight rewinding: surviving weights back to their values after ``epoch`` original epochs."""
    directory = checkpoint_dir_of(run, config)
    checkpoint = rewind_epoch_checkpoint(directory, epoch)
    dense = load_model_file(directory.parent / "model.keras")
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


__all__ = ["checkpoint_dir", "checkpoint_dir_of", "rewind_to_epoch", "structured_kept_filters"]
