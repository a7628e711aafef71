"""Physical filter surgery: rebuild a smaller tf_keras model and copy the kept weights into it.

Why rebuild from the config (no tfmot support exists for this): a functional model is fully
described by ``get_config()``; lowering each pruned conv's ``filters`` there and calling
``from_config`` gives a model with the right shapes everywhere, layer names unchanged. Weights
are then copied layer by layer, sliced along the removed channels: the pruned conv's kernel and
bias (output axis), the batch-norm vectors after it, and the input axis of the next Conv2D or
Dense (rows of a Dense behind Flatten are sliced per spatial position).
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

from .._keras import keras
from ..errors import TfrewindError
from ..models.files import custom_objects
from . import graph
from .graph import ChannelChain


def _slice_maps(chains: dict[str, ChannelChain], keep: dict[str, np.ndarray]):
    """(layer → kept output channels, layer → (kept input channels, flatten positions))."""
    out_keep: dict[str, np.ndarray] = {}
    in_keep: dict[str, tuple[np.ndarray, int | None]] = {}
    for conv, kept in keep.items():
        out_keep[conv] = kept
        for layer in chains[conv].per_channel:
            out_keep[layer] = kept
        for layer, positions in chains[conv].consumers.items():
            in_keep[layer] = (kept, positions)
    return out_keep, in_keep


def _sliced(layer: keras.layers.Layer, out_idx, in_spec) -> list[np.ndarray]:
    weights = layer.get_weights()
    if isinstance(layer, keras.layers.BatchNormalization):
        return [w[out_idx] for w in weights] if out_idx is not None else weights
    if not weights:
        return weights
    kernel, rest = weights[0], weights[1:]
    if in_spec is not None:
        idx, positions = in_spec
        if isinstance(layer, keras.layers.Dense):
            if positions is None:
                kernel = kernel[idx, :]
            else:
                units = kernel.shape[-1]
                kernel = kernel.reshape(positions, -1, units)[:, idx, :].reshape(-1, units)
        else:
            kernel = kernel[:, :, idx, :]
    if out_idx is not None:
        kernel = kernel[..., out_idx]
        rest = [b[out_idx] for b in rest]
    return [kernel, *rest]


def rebuild(model: keras.Model, chains: dict[str, ChannelChain], keep: dict[str, np.ndarray]) -> keras.Model:
    """A new model where conv ``name`` keeps only filters ``keep[name]`` (sorted indices)."""
    config = copy.deepcopy(model.get_config())
    for entry in config["layers"]:
        name = entry["config"]["name"]
        if name in keep:
            entry["config"]["filters"] = int(len(keep[name]))
    cls = keras.Sequential if isinstance(model, keras.Sequential) else keras.Model
    with keras.utils.custom_object_scope(custom_objects()):
        smaller = cls.from_config(config)
    out_keep, in_keep = _slice_maps(chains, keep)
    for new_layer in smaller.layers:
        old_layer = model.get_layer(new_layer.name)
        new_layer.set_weights(_sliced(old_layer, out_keep.get(new_layer.name), in_keep.get(new_layer.name)))
    return smaller


def rewind_structured(pruned: keras.Model, dense: keras.Model, kept_filters: dict[str, Any]) -> None:
    """Load ``dense``'s weights (e.g. an earlier epoch) into the filter-pruned ``pruned``, sliced.

    ``kept_filters``: conv name → kept output-channel indices *of the dense model* (the report's
    ``kept_filters``; compose rounds with :func:`compose_kept`). Why here: weight rewinding must
    slice exactly as the surgery did, BN and the next layer's inputs included.
    """
    chains, reasons = graph.analyse(dense)
    unknown = [name for name in kept_filters if name not in chains]
    if unknown:
        raise TfrewindError(f"weight rewinding: {', '.join(unknown)} cannot be filter-pruned in "
                            f"{dense.name!r}; is this the dense model the pruned one came from?")
    keep = {name: np.asarray(idx, dtype=int) for name, idx in kept_filters.items()}
    out_keep, in_keep = _slice_maps(chains, keep)
    for layer in pruned.layers:
        weights = _sliced(dense.get_layer(layer.name), out_keep.get(layer.name), in_keep.get(layer.name))
        if [w.shape for w in weights] != [tuple(w.shape) for w in layer.weights]:
            raise TfrewindError(f"weight rewinding: layer {layer.name!r} has shapes "
                                f"{[tuple(w.shape) for w in layer.weights]}, the sliced dense weights "
                                f"{[w.shape for w in weights]}")
        layer.set_weights(weights)


def compose_kept(first: dict[str, Any], second: dict[str, Any]) -> dict[str, list[int]]:
    """Kept indices after two filter-pruning rounds, in the first round's input numbering."""
    out = {name: [int(i) for i in idx] for name, idx in first.items()}
    for name, idx in second.items():
        base = out.get(name)
        out[name] = [int(i) for i in idx] if base is None else [base[int(i)] for i in idx]
    return out


def kept_filters(report: dict[str, Any]) -> dict[str, list[int]]:
    """Conv name → kept output-channel indices, from a filter method's report."""
    return {row["layer"]: list(row["kept_filters"]) for row in report.get("layers", [])
            if "kept_filters" in row}
