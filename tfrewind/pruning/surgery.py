"""Physical channel surgery: rebuild the smaller model and copy the kept weights into it.

Why rebuild from the config (no tfmot support exists for this): a functional model is fully
described by ``get_config()``; writing each shrunk layer's new width there (``filters``,
``units``, ``groups``, a ``Reshape`` target, a nested model's input shape) and calling
``from_config`` gives a model with the right shapes everywhere, layer names unchanged. Weights are
then copied layer by layer, each sliced by its rule (:mod:`.layer_rules`) at the positions the
removed units leave (:mod:`.channels`). Nested models are edited in place in their own config
entries and keep their structure; layers are matched by name across the nesting.

A removal is given as ``{group leader: kept channel indices of the group}`` — the numbering of the
model being pruned, so rounds compose (:func:`compose_kept`) and weight rewinding slices an earlier
checkpoint of the *dense* model exactly as the surgery did.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator
from typing import Any

import numpy as np

from .._keras import keras
from ..errors import TfrewindError
from ..models.files import custom_objects
from . import graph as G
from .channels import ChannelGraph, analyse
from .flops import uses_per_weight

Keep = np.ndarray | None


def removed_units(cg: ChannelGraph, kept: dict[str, Any]) -> set[int]:
    """Unit ids removed when each named group keeps only the given channel indices."""
    removed: set[int] = set()
    groups = {g.leader: g for g in cg.groups}
    for leader, indices in kept.items():
        group = groups.get(leader)
        if group is None or group.reason is not None:
            why = group.reason if group is not None else "it leads no channel group"
            raise TfrewindError(f"channel pruning: {leader!r} cannot lose channels here ({why}); "
                                "is this the model the pruning record belongs to?")
        keep = np.zeros(len(group.units), dtype=bool)
        keep[np.asarray(indices, dtype=int)] = True
        removed.update(group.units[~keep].tolist())
    return removed


def _keep(channel_map: np.ndarray, gone: np.ndarray) -> Keep:
    mask = ~gone[channel_map]
    return None if mask.all() else np.flatnonzero(mask)


def keep_positions(cg: ChannelGraph, removed: set[int]) -> dict[str, tuple[list[Keep], Keep]]:
    """Layer → (kept positions of each input, kept positions of its output), for shrunk layers."""
    size = 1 + max((int(m.max()) for m in cg.out_maps.values() if len(m)), default=0)
    gone = np.zeros(max(size, 1 + max(removed, default=0)), dtype=bool)  # unit id → removed?
    gone[list(removed)] = True
    out: dict[str, tuple[list[Keep], Keep]] = {}
    for name, out_map in cg.out_maps.items():
        ins = [_keep(m, gone) for m in cg.in_maps.get(name, [])]
        kept = _keep(out_map, gone)
        if kept is not None or any(k is not None for k in ins):
            out[name] = (ins, kept)
    return out


def sliced_weights(cg: ChannelGraph, name: str, layer: keras.layers.Layer,
                   keeps: dict[str, tuple[list[Keep], Keep]]) -> list[np.ndarray]:
    """``layer``'s weights (a layer of the analysed model, or its earlier checkpoint) cut for ``keeps``."""
    weights = layer.get_weights()
    if name not in keeps or not weights:
        return weights
    ins, out = keeps[name]
    rule = cg.rules[name]
    return rule.slice(cg.graph.layers[name]["class_name"], weights, ins or [None], out)


def _edit_configs(config: dict, cg: ChannelGraph, keeps: dict, widths: dict[str, dict[int, int]]) -> None:
    for entry in config["layers"]:
        name = entry["config"]["name"]
        if G.is_nested(entry):
            if name in widths:
                _set_input_widths(entry["config"], widths[name])
                entry.pop("build_config", None)  # the old input shape; Keras records the new one on save
            _edit_configs(entry["config"], cg, keeps, widths)
        elif name in keeps and keeps[name][1] is not None and cg.rules[name].edit is not None:
            cg.rules[name].edit(entry["config"], len(cg.out_maps[name]), len(keeps[name][1]))


def _input_widths(cg: ChannelGraph, keeps: dict) -> dict[str, dict[int, int]]:
    """Nested model → {input index: new last dimension} for the nested inputs that shrink."""
    widths: dict[str, dict[int, int]] = {}
    for producer, fed in cg.graph.feeds.items():
        kept = keeps.get(producer, (None, None))[1]
        if kept is not None:
            for model, index in fed:
                widths.setdefault(model, {})[index] = len(kept)
    return widths


def _set_input_widths(config: dict, widths: dict[int, int]) -> None:
    """A nested model stores its input shapes (InputLayer, or a Sequential's first layer): shrink them."""
    if "input_layers" in config:
        entries = {entry["config"]["name"]: entry for entry in config["layers"]}
        targets = {index: entries[ref[0]]["config"] for index, ref in enumerate(config["input_layers"])}
    else:
        targets = {0: config["layers"][0]["config"]} if config["layers"] else {}
    for index, width in widths.items():
        shape = targets.get(index, {}).get("batch_input_shape")
        if shape is not None:
            targets[index]["batch_input_shape"] = [*shape[:-1], width]


def rebuild(cg: ChannelGraph, removed: set[int]) -> keras.Model:
    """A new, smaller model without the ``removed`` units, weights sliced from ``cg.model``."""
    model, keeps = cg.model, keep_positions(cg, removed)
    config = copy.deepcopy(model.get_config())
    _edit_configs(config, cg, keeps, _input_widths(cg, keeps))
    smaller = _from_config(model, config)
    for name, new_layer in G.layers_by_name(smaller).items():
        new_layer.set_weights(sliced_weights(cg, name, cg.layers[name], keeps))
    return smaller


def _from_config(model: keras.Model, config: dict) -> keras.Model:
    """Rebuild from an in-memory model's own config. Safe mode off: a ``Lambda`` here is the user's
    own code already running in this process, not something read from an untrusted file."""
    from tf_keras.src.saving.serialization_lib import SafeModeScope

    cls = keras.Sequential if isinstance(model, keras.Sequential) else keras.Model
    with keras.utils.custom_object_scope(custom_objects()), SafeModeScope(False):
        return cls.from_config(config)


def rebuild_error(cg: ChannelGraph, removed: set[int], smaller: keras.Model, samples: int = 2) -> float | None:
    """Max |smaller − dense model with the removed channels cut| on seeded random inputs.

    ~1e-7 proves the rebuild exact. None when an input has an unknown (``None``) size to draw for.
    """
    shapes = [tuple(t.shape) for t in cg.model.inputs]
    if any(d is None for shape in shapes for d in shape[1:]):
        return None
    rng = np.random.default_rng(0)
    inputs = [rng.standard_normal((samples, *shape[1:])).astype(np.float32) for shape in shapes]
    with removed_cut(cg, removed) as reference:
        expected = reference(inputs, training=False)
    got = smaller(inputs, training=False)
    pairs = zip(expected, got) if isinstance(got, (list, tuple)) else [(expected, got)]
    return float(max(np.max(np.abs(np.asarray(e) - np.asarray(g))) for e, g in pairs))


def _shape_only(shape: tuple[int, ...]) -> np.ndarray:
    """A read-only array of ``shape`` that occupies one byte: slicing it gives the sliced shape cheaply."""
    return np.lib.stride_tricks.as_strided(np.zeros(1, dtype=np.int8), shape=shape, strides=(0,) * len(shape),
                                           writeable=False)


def estimated_macs(cg: ChannelGraph, removed: set[int], dense_macs: dict[str, int]) -> int:
    """MACs of the rebuilt model without building it: each layer's kernels sliced, positions unchanged.

    Why shape-only arrays: a MACs target is solved by bisection, which asks this ~20 times; slicing
    the real weights of a ResNet50 each time would copy 100 MB per step.
    """
    keeps = keep_positions(cg, removed)
    total = 0
    for name, macs in dense_macs.items():
        if name not in keeps or not macs:
            total += macs
            continue
        layer, (ins, out) = cg.layers[name], keeps[name]
        dummies = [_shape_only(tuple(w.shape)) for w in layer.weights]
        sliced = cg.rules[name].slice(cg.graph.layers[name]["class_name"], dummies, ins or [None], out)
        total += uses_per_weight(layer) * sum(int(w.size) for w in sliced if w.ndim >= 2)
    return int(total)


@contextlib.contextmanager
def removed_cut(cg: ChannelGraph, removed: set[int]) -> Iterator[keras.Model]:
    """The analysed model itself, its consumers ignoring the removed channels (input slices zeroed),
    restored on exit.

    Why: this is what the smaller model must compute, exactly — every path of a removed channel ends
    in a kernel's input axis (or it would be blocked), so zeroing those slices removes its effect and
    nothing else. Zeroing in place (not a copy) costs a few ``set_weights``, not a model rebuild.
    """
    layers, saved = G.layers_by_name(cg.model), {}
    try:
        for name, (ins, _) in keep_positions(cg, removed).items():
            rule = cg.rules.get(name)
            if rule is None or rule.flow != "source" or not ins or ins[0] is None:
                continue
            saved[name] = layers[name].get_weights()
            layers[name].set_weights(_cut_inputs(cg.graph.layers[name]["class_name"], saved[name], ins[0]))
        yield cg.model
    finally:
        for name, weights in saved.items():
            layers[name].set_weights(weights)


def zero_removed(cg: ChannelGraph, removed: set[int]) -> keras.Model:
    """A copy of the analysed model with the removed channels cut (see :func:`removed_cut`)."""
    with removed_cut(cg, removed) as cut:
        copy_model = _from_config(cut, cut.get_config())
        copy_model.set_weights(cut.get_weights())
    return copy_model


def _cut_inputs(kind: str, weights: list[np.ndarray], kept: np.ndarray) -> list[np.ndarray]:
    """A source's weights with the input slices outside ``kept`` zeroed."""
    weights = [w.copy() for w in weights]
    index = 1 if kind.startswith("SeparableConv") else 0
    kernel = weights[index]
    axis = -1 if kind.endswith("Transpose") else -2
    drop = np.setdiff1d(np.arange(kernel.shape[axis]), _input_positions(kind, weights, kept))
    slicer = [slice(None)] * kernel.ndim
    slicer[axis] = drop
    kernel[tuple(slicer)] = 0.0
    return weights


def _input_positions(kind: str, weights: list[np.ndarray], kept: np.ndarray) -> np.ndarray:
    if kind.startswith("SeparableConv"):
        multiplier = weights[0].shape[-1]
        return (kept[:, None] * multiplier + np.arange(multiplier)).ravel()
    return kept


def rebuild_from_kept(model: keras.Model, kept: dict[str, Any]) -> keras.Model:
    """Analyse ``model`` and rebuild it keeping ``kept`` channels per group (see the module docstring)."""
    cg = analyse(model)
    return rebuild(cg, removed_units(cg, kept))


def rewind_structured(pruned: keras.Model, dense: keras.Model, kept: dict[str, Any]) -> None:
    """Load ``dense``'s weights (e.g. an earlier epoch) into the channel-pruned ``pruned``, sliced.

    ``kept``: group leader → kept channel indices *of the dense model* (the report's
    ``kept_filters``; compose rounds with :func:`compose_kept`). Why here: weight rewinding must
    slice exactly as the surgery did, BN and the next layers' inputs included.
    """
    cg = analyse(dense)
    keeps = keep_positions(cg, removed_units(cg, kept))
    for name, layer in G.layers_by_name(pruned).items():
        if name not in cg.layers:
            raise TfrewindError(f"weight rewinding: the dense model {dense.name!r} has no layer {name!r}; "
                                "is this the dense model the pruned one came from?")
        weights = sliced_weights(cg, name, cg.layers[name], keeps)
        if [w.shape for w in weights] != [tuple(w.shape) for w in layer.weights]:
            raise TfrewindError(f"weight rewinding: layer {layer.name!r} has shapes "
                                f"{[tuple(w.shape) for w in layer.weights]}, the sliced dense weights "
                                f"{[w.shape for w in weights]}")
        layer.set_weights(weights)


def compose_kept(first: dict[str, Any], second: dict[str, Any]) -> dict[str, list[int]]:
    """Kept indices after two pruning rounds, in the first round's input numbering."""
    out = {name: [int(i) for i in idx] for name, idx in first.items()}
    for name, idx in second.items():
        base = out.get(name)
        out[name] = [int(i) for i in idx] if base is None else [base[int(i)] for i in idx]
    return out


def kept_filters(report: dict[str, Any]) -> dict[str, list[int]]:
    """Group leader → kept channel indices, from a channel method's report."""
    return {row["layer"]: list(row["kept_filters"]) for row in report.get("layers", [])
            if "kept_filters" in row}
