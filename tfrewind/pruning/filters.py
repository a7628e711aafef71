"""Physical filter surgery: rebuild a smaller tf_keras model and copy the kept weights into it.

Why rebuild from the config (no tfmot support exists for this): a functional model is fully
described by ``get_config()``; lowering each pruned conv's ``filters`` there and calling
``from_config`` gives a model with the right shapes everywhere, layer names unchanged. Weights
are then copied layer by layer, sliced along the removed channels: the pruned conv's kernel and
bias (output axis), the batch-norm vectors after it, and the input axis of the next Conv2D or
Dense (rows of a Dense behind Flatten are sliced per spatial position). Nested models are edited
in place in their own config entries and keep their structure; layers are matched by name across
the nesting (:mod:`.graph` guarantees the names are unique).
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


def _nested_input_widths(chains: dict[str, ChannelChain], keep: dict[str, np.ndarray]) -> dict[str, dict[int, int]]:
    """Nested model → {input index: new last dimension} for the nested inputs that pruned channels enter."""
    widths: dict[str, dict[int, int]] = {}
    for conv, kept in keep.items():
        for model, index, positions in chains[conv].nested_inputs:
            widths.setdefault(model, {})[index] = len(kept) * (positions or 1)
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


def _set_filters(config: dict, keep: dict[str, np.ndarray], widths: dict[str, dict[int, int]]) -> None:
    """Lower ``filters`` of the pruned convs and the input widths they feed, nested configs included."""
    for entry in config["layers"]:
        if graph.is_nested(entry):
            if entry["config"]["name"] in widths:
                _set_input_widths(entry["config"], widths[entry["config"]["name"]])
                entry.pop("build_config", None)  # the old input shape; Keras records the new one on save
            _set_filters(entry["config"], keep, widths)
        elif entry["class_name"] == "Conv2D" and entry["config"]["name"] in keep:
            entry["config"]["filters"] = int(len(keep[entry["config"]["name"]]))


def rebuild(model: keras.Model, chains: dict[str, ChannelChain], keep: dict[str, np.ndarray]) -> keras.Model:
    """A new model where conv ``name`` keeps only filters ``keep[name]`` (sorted indices)."""
    config = copy.deepcopy(model.get_config())
    _set_filters(config, keep, _nested_input_widths(chains, keep))
    cls = keras.Sequential if isinstance(model, keras.Sequential) else keras.Model
    with keras.utils.custom_object_scope(custom_objects()):
        smaller = cls.from_config(config)
    out_keep, in_keep = _slice_maps(chains, keep)
    old_layers = graph.layers_by_name(model)
    for name, new_layer in graph.layers_by_name(smaller).items():
        new_layer.set_weights(_sliced(old_layers[name], out_keep.get(name), in_keep.get(name)))
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
    dense_layers = graph.layers_by_name(dense)
    for name, layer in graph.layers_by_name(pruned).items():
        if name not in dense_layers:
            raise TfrewindError(f"weight rewinding: the dense model {dense.name!r} has no layer {name!r}; "
                                "is this the dense model the pruned one came from?")
        weights = _sliced(dense_layers[name], out_keep.get(name), in_keep.get(name))
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
