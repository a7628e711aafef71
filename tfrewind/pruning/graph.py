"""Which convolutions can lose filters, and which layers must shrink with them.

Why from the model config: ``get_config()`` lists every layer with the names of its inputs, which
is exactly the functional graph, and :mod:`.filters` rebuilds the smaller model from that same
config. Removing output channel ``c`` of a Conv2D is only safe when every path from it reaches a
layer whose *input* channels can be sliced — another Conv2D or a Dense — through layers that act
on each channel separately (batch norm, activations, pooling, dropout, Flatten before a Dense).
A path into ``Add``/``Concatenate`` (ResNet residual streams) or the model output makes a conv
unprunable; the reason names the blocking layer. In CIFAR ResNets this leaves exactly the first
conv of every BasicBlock, as in Li et al.'s code.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from .._keras import keras

PER_CHANNEL = {
    "BatchNormalization", "ReLU", "Activation", "LeakyReLU", "ELU", "ThresholdedReLU",
    "MaxPooling2D", "AveragePooling2D", "GlobalAveragePooling2D", "GlobalMaxPooling2D",
    "Dropout", "SpatialDropout2D", "GaussianNoise", "GaussianDropout", "ZeroPadding2D",
    "Cropping2D", "UpSampling2D", "ActivityRegularization",
}
"""Layers that treat channels independently and have no weights except per-channel vectors."""


@dataclass
class ChannelChain:
    """The layers that follow one conv's output channels."""

    conv: str
    per_channel: list[str] = field(default_factory=list)
    """Per-channel layers whose weights (BN) are sliced like the conv's filters."""
    consumers: dict[str, int | None] = field(default_factory=dict)
    """Conv2D/Dense layers whose input is sliced → spatial positions for a Flatten→Dense, else None."""


class Unprunable(Exception):
    """A conv whose filters cannot be removed; the message names the blocking layer."""


def _consumers(config: dict) -> tuple[dict[str, list[str]], set[str], dict[str, dict]]:
    layers = {entry["config"]["name"]: entry for entry in config["layers"]}
    consumers: dict[str, list[str]] = defaultdict(list)
    if "output_layers" not in config:  # Sequential: a chain in list order
        names = list(layers)
        for prev, nxt in zip(names, names[1:]):
            consumers[prev].append(nxt)
        return consumers, {names[-1]}, layers
    for name, entry in layers.items():
        for node in entry.get("inbound_nodes", []):
            if isinstance(node, dict):
                raise Unprunable(f"layer {name!r}: unsupported graph format in the model config")
            for inbound in node:
                if name not in consumers[inbound[0]]:
                    consumers[inbound[0]].append(name)
    outputs = {out[0] for out in config["output_layers"]}
    return consumers, outputs, layers


def _is_plain_conv(entry: dict) -> bool:
    cfg = entry["config"]
    return (entry["class_name"] == "Conv2D" and cfg.get("groups", 1) == 1
            and cfg.get("data_format", "channels_last") in (None, "channels_last"))


def _follow(model: keras.Model, conv: str, graph) -> ChannelChain:
    consumers, outputs, layers = graph
    chain = ChannelChain(conv)
    todo = [(conv, None)]
    while todo:
        name, positions = todo.pop()
        if name in outputs:
            raise Unprunable(f"{conv!r}: its channels reach the model output at {name!r}")
        for nxt in consumers.get(name, []):
            kind = layers[nxt]["class_name"]
            if _is_plain_conv(layers[nxt]) and positions is None:
                chain.consumers[nxt] = None
            elif kind == "Dense" and (positions is not None or len(model.get_layer(nxt).input_shape) == 2):
                chain.consumers[nxt] = positions
            elif kind == "Flatten" and positions is None:
                shape = model.get_layer(nxt).input_shape
                todo.append((nxt, int(np.prod(shape[1:-1]))))
            elif kind in PER_CHANNEL and positions is None:
                chain.per_channel.append(nxt)
                todo.append((nxt, None))
            elif kind in ("Dropout", "ActivityRegularization", "GaussianNoise", "GaussianDropout"):
                todo.append((nxt, positions))
            else:
                raise Unprunable(f"{conv!r}: its channels flow into {nxt!r} ({kind}), which cannot be "
                                 "sliced; only Conv2D/Dense reached through BN, activations, pooling "
                                 "or Flatten can follow a pruned conv")
    return chain


def analyse(model: keras.Model) -> tuple[dict[str, ChannelChain], dict[str, str]]:
    """(prunable conv name → chain, unprunable conv name → reason), convs in model order."""
    if not isinstance(model, keras.Sequential) and not getattr(model, "_is_graph_network", False):
        raise Unprunable(f"model {model.name!r} is subclassed; filter pruning needs a functional "
                         "or Sequential model")
    graph = _consumers(model.get_config())
    chains, reasons = {}, {}
    for name, entry in graph[2].items():
        if entry["class_name"] in ("Conv2D", "Conv1D", "Conv3D", "DepthwiseConv2D", "SeparableConv2D",
                                   "Conv2DTranspose"):
            if not _is_plain_conv(entry):
                reasons[name] = f"{name!r}: only ungrouped channels_last Conv2D filters can be removed"
                continue
            try:
                chains[name] = _follow(model, name, graph)
            except Unprunable as exc:
                reasons[name] = str(exc)
    return chains, reasons
