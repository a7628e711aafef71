"""Soft filter pruning (SFP, He et al. 2018): zero the weakest filters at every epoch end, remove them at the end.

The ``soft`` pruning schedule keeps the network at its full shape while it retrains. The prune
stage zeroes the filters its plan removes and records, per group, how many channels it keeps;
:class:`SoftFilterPruning` then scores every group again with the same criterion at the end of
every retraining epoch and zeroes that epoch's weakest filters, so a filter zeroed before may
have grown back during the epoch and stay. The last epoch fine-tunes without the last selection,
held exactly zero (as the fine-tuning phase of SFP's code keeps its mask); when retraining ends,
:func:`remove_zeroed` removes those channels physically (:mod:`.surgery`), and the smaller model
is the one evaluated and exported.

Two levels of zeroing (:func:`zero_masks`), and why. *To let channels recover*, only the filters
go to zero — each source's output slice of kernel and bias — as in SFP's code. Gradients reach a
zeroed filter through the batch norm after it (training mode normalises a zero channel to its β,
and ∂out/∂in = γ/σ ≠ 0) and through the activation while relu(β) > 0. Making the channel exactly
zero (β and the moving mean too) cuts that path for good: ReLU's gradient at 0 is 0 (and with γ
zeroed as well, ∂out/∂in = 0) — checked on small_cnn: zeroed that way, filters stayed exactly zero
through an epoch of training. But a channel zeroed only softly still feeds its constant relu(β)
forward, and removing it then changes the outputs (on digits, test accuracy fell from 0.30 to 0.16
in one run): hence the *exact* level for the last epoch and the removal — also the depthwise biases
and the batch norms' β and moving mean over those channels — which gives exactly 0 downstream in
both BN modes, as long as the activations between producer and consumer keep 0 at 0 (ReLU,
swish; a sigmoid or a ``Rescaling`` offset does not: ``outputs_changed_by_removal`` says so).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .._keras import keras, tf
from ..io import read_json, write_json_atomic
from . import surgery
from . import wrappers as W
from .allocation import keep_top
from .channels import ChannelGraph, analyse
from .criteria import CRITERIA, ScoreInput

SOFT_STATE_FILE = "soft_pruning.json"


Mask = tuple[Any, np.ndarray]
"""A variable and the boolean array of its elements that stay (False: set to zero)."""


def zero_masks(cg: ChannelGraph, kept: dict[str, Any], exact: bool = False) -> list[Mask]:
    """The variables of ``cg.model`` holding the filters of the channels ``kept`` leaves out, with masks.

    ``exact``: also the depthwise biases and the batch norms' β and moving mean over those channels,
    so that they are exactly zero downstream (see the module docstring for why not always).
    """
    removed = surgery.removed_units(cg, kept)
    gone = np.fromiter(removed, dtype=np.int64, count=len(removed))
    masks: list[Mask] = []
    for name, out_map in cg.out_maps.items():
        positions = np.flatnonzero(np.isin(out_map, gone))
        rule = cg.rules.get(name)
        if not positions.size or rule is None or name not in cg.layers:
            continue
        layer = cg.layers[name]
        if rule.flow in ("source", "grouped") or (exact and rule.flow == "depthwise"):
            masks += [(v, keep) for v, keep in zip(layer.weights, _output_masks(cg, name, layer.weights, positions))
                      if keep is not None]
        elif exact and cg.graph.layers[name]["class_name"] == "BatchNormalization":
            for variable in (getattr(layer, "beta", None), layer.moving_mean):
                if variable is not None:
                    keep = np.ones(variable.shape, dtype=bool)
                    keep[positions] = False
                    masks.append((variable, keep))
    return masks


def _output_masks(cg: ChannelGraph, name: str, variables: list, positions: np.ndarray) -> list[np.ndarray | None]:
    """For each weight of the layer, the mask that zeroes its output ``positions`` (None: no output axis).

    Why through the rule's own ``slice``: it already knows each layer kind's output axes (a
    transposed conv's kernel, a separable conv's pointwise half, a depthwise conv's bias only);
    sliced on arrays of element indices it names exactly the elements to zero.
    """
    rule, kind = cg.rules[name], cg.graph.layers[name]["class_name"]
    ins = [None] * max(1, len(cg.in_maps.get(name, [])))
    indices = [np.arange(int(np.prod(v.shape))).reshape(tuple(v.shape)) for v in variables]
    hit = rule.slice(kind, indices, ins, positions)
    none = rule.slice(kind, indices, ins, np.zeros(0, dtype=np.int64))
    masks: list[np.ndarray | None] = []
    for index, chosen, without in zip(indices, hit, none):
        keep = None
        if without.size != index.size:  # this array has an output axis
            keep = np.ones(index.shape, dtype=bool)
            keep.flat[chosen.ravel()] = False
        masks.append(keep)
    return masks


def apply_masks(masks: list[Mask]) -> None:
    for variable, keep in masks:
        variable.assign(tf.where(keep, variable, tf.zeros_like(variable)))


def zero_channels(cg: ChannelGraph, kept: dict[str, Any], exact: bool = False) -> list[Mask]:
    """Zero, in ``cg.model``'s own variables, the filters of the channels ``kept`` leaves out (:func:`zero_masks`)."""
    masks = zero_masks(cg, kept, exact)
    apply_masks(masks)
    return masks


def select(cg: ChannelGraph, criterion: str, counts: dict[str, int], seed: int = 0,
           batches: Any = None) -> dict[str, np.ndarray]:
    """Group leader → the ``counts[leader]`` channels with the highest current scores."""
    for group in cg.groups:  # score only the planned groups (data criteria read every prunable one)
        if group.leader not in counts and group.reason is None:
            group.reason = f"{group.leader!r}: not pruned by the plan"
    si = ScoreInput(cg, seed, batches)
    score = CRITERIA.get(criterion)
    return {g.leader: keep_top(score(si, g), counts[g.leader]) for g in cg.groups if g.leader in counts}


class SoftFilterPruning(keras.callbacks.Callback):
    """SFP while ``fit`` runs: re-select and zero the weakest filters at every epoch end but the last.

    At the end of every epoch but the last, each planned group's channels are scored again
    (:func:`select`) and the weakest ones' filters zeroed (:func:`zero_channels`). The last epoch
    fine-tunes the network without the last selection: those channels are made exactly zero when it
    begins and kept so after every batch, so the model it ends with is the one the surgery rebuilds
    smaller (:func:`remove_zeroed` then changes nothing). ``kept``: group leader → kept channel
    indices (the prune stage's selection, which sets the per-group counts). ``state_path``: where
    the current selection is written at every epoch end, before ``BackupAndRestore`` saves, so a
    resumed stage holds and removes the channels its restored weights have zeroed. The number of
    channels kept that were zeroed the epoch before goes into the logs as ``soft_recovered``.
    """

    def __init__(self, criterion: str, kept: dict[str, Any], seed: int = 0, batches: Any = None,
                 state_path: str | Path | None = None):
        super().__init__()
        self.criterion, self.seed, self.batches = criterion, seed, batches
        self.kept = {leader: np.asarray(idx, dtype=np.int64) for leader, idx in kept.items()}
        self.counts = {leader: len(idx) for leader, idx in self.kept.items()}
        self.state_path = Path(state_path) if state_path else None
        self.cg: ChannelGraph | None = None
        self.hold: list[Mask] = []
        if self.state_path is not None and self.state_path.exists():
            self.kept = {k: np.asarray(v, dtype=np.int64) for k, v in read_json(self.state_path)["kept"].items()}

    def on_train_begin(self, logs=None):
        self.cg = analyse(self.model)

    def on_epoch_begin(self, epoch, logs=None):
        if epoch + 1 >= int((self.params or {}).get("epochs") or 0):  # the last epoch
            self.hold = [(v, tf.constant(keep)) for v, keep in zero_channels(self.cg, self.kept, exact=True)]

    def on_train_batch_end(self, batch, logs=None):
        apply_masks(self.hold)

    def on_epoch_end(self, epoch, logs=None):
        recovered = 0
        if self.hold:
            apply_masks(self.hold)
        else:
            kept = select(self.cg, self.criterion, self.counts, self.seed, self.batches)
            recovered = sum(len(np.setdiff1d(idx, self.kept[leader])) for leader, idx in kept.items())
            zero_channels(self.cg, kept)
            self.kept = kept
        if self.state_path is not None:
            write_json_atomic(self.state_path, {"epoch": epoch + 1, "kept": self.kept_filters()})
        if logs is not None:
            logs["soft_recovered"] = float(recovered)

    def kept_filters(self) -> dict[str, list[int]]:
        return {leader: [int(i) for i in idx] for leader, idx in self.kept.items()}


def remove_zeroed(model: keras.Model, kept: dict[str, Any]) -> tuple[keras.Model, dict[str, Any]]:
    """The physically smaller model without the channels ``kept`` leaves out, and what removing them changed.

    ``model`` (as SFP left it) is made exact in place first (:func:`zero_channels` ``exact=True``).
    ``rebuild_max_abs_diff``: max |smaller − that exactly zeroed model| on seeded random inputs (~1e-6:
    the surgery is exact); ``outputs_changed_by_removal``: the same against the model as SFP left it.
    """
    cg = analyse(model)
    as_trained = analyse(W.copy_model(model))
    zero_channels(cg, kept, exact=True)
    smaller = surgery.rebuild(cg, surgery.removed_units(cg, kept))
    report = {"kept_filters": {leader: [int(i) for i in idx] for leader, idx in kept.items()},
              "params_before": int(model.count_params()), "params_after": int(smaller.count_params()),
              "rebuild_max_abs_diff": surgery.rebuild_error(cg, set(), smaller),
              "outputs_changed_by_removal": surgery.rebuild_error(as_trained, set(), smaller)}
    return smaller, report
