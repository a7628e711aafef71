"""Soft filter pruning (SFP, He et al. 2018): zero the weakest filters at every epoch end, remove them at the end.

The ``soft`` pruning schedule keeps the network at its full shape while it retrains. The prune
stage zeroes the filters its plan removes and records, per group, how many channels it keeps;
:class:`SoftFilterPruning` then scores every group again with the same criterion at the end of
every retraining epoch and zeroes that epoch's weakest filters, so a filter zeroed before may
have grown back during the epoch and stay. When retraining ends, :func:`remove_zeroed` makes the
last epoch's zeroed channels exactly zero and removes them physically (:mod:`.surgery`); the
smaller model is the one evaluated and exported.

Two levels of zeroing (:func:`zero_channels`), and why. *While retraining*, only the filters go
to zero — each source's output slice of kernel and bias — as in SFP's code. A channel can only
recover if gradients reach its filter, and they do through the batch norm after it (training mode
normalises a zero channel to its β, and ∂out/∂in = γ/σ ≠ 0) and through the activation while
relu(β) > 0. Making the channel exactly zero already then (β and the moving mean too) would cut
that path for good: ReLU's gradient at 0 is 0 (and with γ zeroed as well, ∂out/∂in = 0) — checked
on small_cnn: zeroed that way, filters stayed exactly zero through an epoch of training, so "soft"
would be hard pruning. *At the end*,
:func:`remove_zeroed` also zeroes the depthwise convs' biases and the batch norms' β and moving
mean over those channels (``exact=True``): in both BN modes a zero input then gives exactly 0
downstream, as long as the activations between producer and consumer keep 0 at 0 (ReLU, swish; a
sigmoid or a ``Rescaling`` offset does not). The surgery is exact against that model
(``rebuild_max_abs_diff``); the constant β-channels that the last epoch still fed forward are what
the removal changes (``outputs_changed_by_removal``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .._keras import keras
from ..io import read_json, write_json_atomic
from . import surgery
from . import wrappers as W
from .allocation import keep_top
from .channels import ChannelGraph, analyse
from .criteria import CRITERIA, ScoreInput

SOFT_STATE_FILE = "soft_pruning.json"


def zero_channels(cg: ChannelGraph, kept: dict[str, Any], exact: bool = False) -> None:
    """Zero, in ``cg.model``'s own variables, the filters of the channels ``kept`` leaves out.

    ``exact``: also the depthwise biases and the batch norms' β and moving mean over those channels,
    so that they are exactly zero downstream (see the module docstring for why not always).
    """
    removed = surgery.removed_units(cg, kept)
    gone = np.fromiter(removed, dtype=np.int64, count=len(removed))
    for name, out_map in cg.out_maps.items():
        positions = np.flatnonzero(np.isin(out_map, gone))
        rule = cg.rules.get(name)
        if not positions.size or rule is None or name not in cg.layers:
            continue
        layer = cg.layers[name]
        if rule.flow in ("source", "grouped") or (exact and rule.flow == "depthwise"):
            layer.set_weights(_zero_outputs(cg, name, layer.get_weights(), positions))
        elif exact and cg.graph.layers[name]["class_name"] == "BatchNormalization":
            for variable in (getattr(layer, "beta", None), layer.moving_mean):
                if variable is not None:
                    values = variable.numpy()
                    values[positions] = 0.0
                    variable.assign(values)


def _zero_outputs(cg: ChannelGraph, name: str, weights: list[np.ndarray], positions: np.ndarray) -> list[np.ndarray]:
    """Zero the output positions of every weight array the layer's rule cuts at its output.

    Why through the rule's own ``slice``: it already knows each layer kind's output axes (a
    transposed conv's kernel, a separable conv's pointwise half, a depthwise conv's bias only);
    sliced on arrays of element indices it names exactly the elements to zero.
    """
    rule, kind = cg.rules[name], cg.graph.layers[name]["class_name"]
    ins = [None] * max(1, len(cg.in_maps.get(name, [])))
    indices = [np.arange(w.size).reshape(w.shape) for w in weights]
    hit = rule.slice(kind, indices, ins, positions)
    none = rule.slice(kind, indices, ins, np.zeros(0, dtype=np.int64))
    out = []
    for weight, chosen, without in zip(weights, hit, none):
        weight = weight.copy()
        if without.size != weight.size:  # this array has an output axis
            weight.flat[chosen.ravel()] = 0.0
        out.append(weight)
    return out


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
    """At every epoch end, zero each planned group's weakest filters again (:func:`select`, :func:`zero_channels`).

    ``kept``: group leader → kept channel indices (the prune stage's selection; only their counts
    and the first epoch's "recovered" count use them). ``state_path``: where the last selection is
    written at every epoch end, before ``BackupAndRestore`` saves, so a resumed stage removes the
    channels its restored weights have zeroed. The number of channels kept now that were zeroed
    the epoch before goes into the epoch logs as ``soft_recovered`` (history, TensorBoard).
    """

    def __init__(self, criterion: str, kept: dict[str, Any], seed: int = 0, batches: Any = None,
                 state_path: str | Path | None = None):
        super().__init__()
        self.criterion, self.seed, self.batches = criterion, seed, batches
        self.kept = {leader: np.asarray(idx, dtype=np.int64) for leader, idx in kept.items()}
        self.counts = {leader: len(idx) for leader, idx in self.kept.items()}
        self.state_path = Path(state_path) if state_path else None
        self.cg: ChannelGraph | None = None
        if self.state_path is not None and self.state_path.exists():
            self.kept = {k: np.asarray(v, dtype=np.int64) for k, v in read_json(self.state_path)["kept"].items()}

    def on_train_begin(self, logs=None):
        self.cg = analyse(self.model)

    def on_epoch_end(self, epoch, logs=None):
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
