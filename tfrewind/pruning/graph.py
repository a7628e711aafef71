"""Which convolutions can lose filters, and which layers must shrink with them.

Why from the model config: ``get_config()`` lists every layer with the names of its inputs, which
is exactly the functional graph, and :mod:`.filters` rebuilds the smaller model from that same
config. Removing output channel ``c`` of a Conv2D is only safe when every path from it reaches a
layer whose *input* channels can be sliced — another Conv2D or a Dense — through layers that act
on each channel separately (batch norm, element-wise activations, pooling, dropout, Flatten
before a Dense). A path into ``Add``/``Concatenate`` (ResNet residual streams), an activation that
mixes channels (softmax), any layer not known here, or the model output makes a conv unprunable;
the reason names the blocking layer. In CIFAR ResNets this leaves exactly the first conv of every
BasicBlock, as in Li et al.'s code.

Nested models (an application backbone inside a Sequential) are *opened* for the analysis: the
graph is one flat view over the layers of every nested functional/Sequential model, and each
nested model's inputs and outputs are wired straight to the outer layers that feed and read them,
so a channel chain crosses the boundary (the backbone's last conv → outer pooling → Dense). Why a
flat view rather than a flattened model: the surgery then edits each nested config in place and
the pruned model keeps the user's structure (the backbone stays one sub-model they can freeze or
reuse), while the analysis needs no special cases at the boundary. The price is that layer names
must be unique across the nesting (they are the graph's nodes, and weights are matched by name);
a name used twice is refused.

Tensor references are read wherever tf_keras' config format puts them: lists of
``[layer, node, tensor, kwargs]``, one flat reference (``TFOpLambda`` keeps its input structure),
constants (``_CONSTANT_VALUE``) and tensors among the call arguments (``tf.add(x, y=t)``). A tensor
passed as a call argument is never sliceable: such an edge blocks the chain.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._keras import keras
from .wrappers import all_layers

PER_CHANNEL = {
    "BatchNormalization", "ReLU", "LeakyReLU", "ELU", "ThresholdedReLU",
    "MaxPooling2D", "AveragePooling2D", "GlobalAveragePooling2D", "GlobalMaxPooling2D",
    "Dropout", "SpatialDropout2D", "GaussianNoise", "GaussianDropout", "ZeroPadding2D",
    "Cropping2D", "UpSampling2D", "ActivityRegularization",
}
"""Layers that treat channels independently and have no weights except per-channel vectors.

``Activation`` is per-channel only for the element-wise functions of :data:`ELEMENTWISE`."""

ELEMENTWISE = {
    "linear", "relu", "relu6", "leaky_relu", "elu", "selu", "gelu", "sigmoid", "hard_sigmoid", "tanh",
    "softplus", "softsign", "swish", "silu", "mish", "exponential",
}
"""tf_keras activations computed value by value. ``softmax``/``log_softmax`` normalise over the
channels (removing one changes all others); custom or unknown functions are not assumed safe."""

CONV_KINDS = ("Conv2D", "Conv1D", "Conv3D", "DepthwiseConv2D", "SeparableConv2D", "Conv2DTranspose")
NESTED_KINDS = ("Functional", "Sequential", "Model")
_CONSTANT = "_CONSTANT_VALUE"


@dataclass
class ChannelChain:
    """The layers that follow one conv's output channels."""

    conv: str
    per_channel: list[str] = field(default_factory=list)
    """Per-channel layers whose weights (BN) are sliced like the conv's filters."""
    consumers: dict[str, int | None] = field(default_factory=dict)
    """Conv2D/Dense layers whose input is sliced → spatial positions for a Flatten→Dense, else None."""
    nested_inputs: list[tuple[str, int, int | None]] = field(default_factory=list)
    """(nested model, input index, Flatten positions or None) of each nested model input the
    channels enter: its stored input shape shrinks with them."""


class Unprunable(Exception):
    """A conv whose filters cannot be removed; the message names the blocking layer."""


@dataclass
class Graph:
    """One flat view of a model's layers, nested models opened (see the module docstring)."""

    layers: dict[str, dict] = field(default_factory=dict)
    """Layer name → its config entry (nested models themselves are not nodes)."""
    consumers: dict[str, dict[str, bool]] = field(default_factory=lambda: defaultdict(dict))
    """Producer → {consumer: True when the tensor is passed as a call argument, not as the input}."""
    outputs: set[str | None] = field(default_factory=set)
    owner: dict[str, str] = field(default_factory=dict)
    """Layer name → the model whose config holds it (for messages)."""
    feeds: dict[str, list[tuple[str, int]]] = field(default_factory=lambda: defaultdict(list))
    """Layer → (nested model, input index) of the nested model inputs it feeds."""

    def add(self, entry: dict, owner: str) -> str:
        name = entry["config"]["name"]
        if name in self.layers:
            raise Unprunable(f"layer name {name!r} is used twice (in {self.owner[name]!r} and {owner!r}); "
                             "filter pruning needs unique layer names across nested models: rename one")
        self.layers[name], self.owner[name] = entry, owner
        return name

    def connect(self, producer: str | None, consumer: str, argument: bool) -> None:
        if producer is not None:
            self.consumers[producer][consumer] = self.consumers[producer].get(consumer, False) or argument


def is_nested(entry: dict) -> bool:
    """A config entry that is a functional or Sequential model (opened by the analysis)."""
    return entry["class_name"] in NESTED_KINDS and "layers" in entry.get("config", {})


def _is_ref(data: list, names: dict) -> bool:
    return (len(data) in (3, 4) and isinstance(data[0], str) and data[0] in names
            and isinstance(data[1], int) and isinstance(data[2], int)
            and (len(data) == 3 or isinstance(data[3], dict)))


def _refs(data: Any, names: dict, argument: bool = False) -> Iterator[tuple[str, int, bool]]:
    """(layer name, tensor index, passed as a call argument) of every tensor in a node's data."""
    if isinstance(data, dict):
        for value in data.values():
            yield from _refs(value, names, True)
    elif isinstance(data, (list, tuple)):
        if _is_ref(data, names):
            yield data[0], data[2], argument
            if len(data) == 4:
                yield from _refs(data[3], names, True)
        elif len(data) == 4 and data[0] == _CONSTANT and isinstance(data[3], dict):
            yield from _refs(data[3], names, True)
        else:
            for item in data:
                yield from _refs(item, names, argument)


def _open(config: dict, owner: str, inputs: list[str | None] | None, graph: Graph) -> list[str | None]:
    """Add one model config's layers to ``graph``; return the layers producing its outputs.

    ``inputs``: the flat layers feeding a nested model's inputs (``None`` for the top model,
    whose InputLayers are graph nodes).
    """
    if "output_layers" not in config:
        return _open_sequential(config, owner, inputs, graph)
    entries = {entry["config"]["name"]: entry for entry in config["layers"]}
    input_names = [ref[0] for ref in config["input_layers"]]
    if inputs is not None and len(inputs) != len(input_names):
        raise Unprunable(f"nested model {owner!r}: called with {len(inputs)} inputs, it has {len(input_names)}")
    feeds = dict(zip(input_names, inputs)) if inputs is not None else {}
    _record_feeds(graph, owner, inputs)
    opened: dict[str, list[str | None]] = {}

    def producer(name: str, tensor: int) -> str | None:
        if name in feeds:
            return feeds[name]
        if is_nested(entries[name]):
            outputs = open_nested(name)
            if tensor >= len(outputs):
                raise Unprunable(f"nested model {name!r}: no output {tensor}")
            return outputs[tensor]
        return name

    def open_nested(name: str) -> list[str | None]:
        if name not in opened:
            nodes = entries[name].get("inbound_nodes", [])
            if len(nodes) != 1:
                raise Unprunable(f"nested model {name!r} is called {len(nodes)} times in {owner!r}; filter "
                                 "pruning follows a nested model through exactly one call")
            refs = list(_refs(nodes[0], entries))
            if any(argument for *_, argument in refs):
                raise Unprunable(f"nested model {name!r} gets tensors as call arguments; filter pruning "
                                 "cannot follow them")
            opened[name] = _open(entries[name]["config"], name, [producer(n, t) for n, t, _ in refs], graph)
        return opened[name]

    for name, entry in entries.items():
        if name in feeds:
            continue  # a nested model's InputLayer: the outer producer stands in for it
        if is_nested(entry):
            open_nested(name)
            continue
        graph.add(entry, owner)
        for node in entry.get("inbound_nodes", []):
            for ref, tensor, argument in _refs(node, entries):
                graph.connect(producer(ref, tensor), name, argument)
    return [producer(ref[0], ref[2]) for ref in config["output_layers"]]


def _record_feeds(graph: Graph, model: str, inputs: list[str | None] | None) -> None:
    for index, producer in enumerate(inputs or []):
        if producer is not None:
            graph.feeds[producer].append((model, index))


def _open_sequential(config: dict, owner: str, inputs: list[str | None] | None, graph: Graph) -> list[str | None]:
    """A Sequential is a chain in list order; a nested model in it is opened in place."""
    _record_feeds(graph, owner, inputs)
    current = inputs[0] if inputs else None
    for entry in config["layers"]:
        if entry["class_name"] == "InputLayer" and inputs is not None:
            continue
        if is_nested(entry):
            outputs = _open(entry["config"], entry["config"]["name"], [current], graph)
            if len(outputs) != 1:
                raise Unprunable(f"nested model {entry['config']['name']!r} has {len(outputs)} outputs "
                                 f"inside Sequential {owner!r}")
            current = outputs[0]
            continue
        name = graph.add(entry, owner)
        graph.connect(current, name, False)
        current = name
    return [current]


def build_graph(model: keras.Model) -> Graph:
    """The flat graph of ``model`` (functional or Sequential, nested models opened)."""
    graph = Graph()
    graph.outputs = set(_open(model.get_config(), model.name, None, graph))
    return graph


def layers_by_name(model: keras.Model) -> dict[str, keras.layers.Layer]:
    """Layer objects by name, nested models included (their InputLayers, which hold nothing, left out)."""
    return {layer.name: layer for layer in all_layers(model) if not isinstance(layer, keras.layers.InputLayer)}


def _is_plain_conv(entry: dict) -> bool:
    cfg = entry["config"]
    return (entry["class_name"] == "Conv2D" and cfg.get("groups", 1) == 1
            and cfg.get("data_format", "channels_last") in (None, "channels_last"))


def elementwise(activation: Any) -> bool:
    """Whether a serialized activation acts on each value alone (see :data:`ELEMENTWISE`)."""
    return activation is None or (isinstance(activation, str) and activation in ELEMENTWISE)


def _per_channel(entry: dict) -> bool:
    kind = entry["class_name"]
    return kind in PER_CHANNEL or (kind == "Activation" and elementwise(entry["config"].get("activation")))


def _follow(layers: dict[str, keras.layers.Layer], conv: str, graph: Graph) -> ChannelChain:
    chain = ChannelChain(conv)
    todo = [(conv, None)]
    while todo:
        name, positions = todo.pop()
        if name in graph.outputs:
            raise Unprunable(f"{conv!r}: its channels reach the model output at {name!r}")
        chain.nested_inputs.extend((model, index, positions) for model, index in graph.feeds.get(name, []))
        for nxt, argument in graph.consumers.get(name, {}).items():
            entry = graph.layers[nxt]
            kind = entry["class_name"]
            if kind == "Activation":
                kind = f"Activation {entry['config'].get('activation')!r}"
            if argument:
                raise Unprunable(f"{conv!r}: its channels reach {nxt!r} ({kind}) as a call argument, which "
                                 "cannot be sliced")
            calls = len(entry.get("inbound_nodes") or [])
            if calls > 1:
                raise Unprunable(f"{conv!r}: its channels reach {nxt!r} ({kind}), a layer shared by {calls} "
                                 "calls, which cannot be sliced for one of them")
            if _is_plain_conv(entry) and positions is None:
                chain.consumers[nxt] = None
            elif kind == "Dense" and (positions is not None or len(layers[nxt].input_shape) == 2):
                chain.consumers[nxt] = positions
            elif kind == "Flatten" and positions is None:
                todo.append((nxt, int(np.prod(layers[nxt].input_shape[1:-1]))))
            elif _per_channel(entry) and positions is None:
                chain.per_channel.append(nxt)
                todo.append((nxt, None))
            elif kind in ("Dropout", "ActivityRegularization", "GaussianNoise", "GaussianDropout"):
                todo.append((nxt, positions))
            else:
                raise Unprunable(f"{conv!r}: its channels flow into {nxt!r} ({kind}), which cannot be "
                                 "sliced; only Conv2D/Dense reached through BN, element-wise activations, "
                                 "pooling or Flatten can follow a pruned conv")
    return chain


def analyse(model: keras.Model) -> tuple[dict[str, ChannelChain], dict[str, str]]:
    """(prunable conv name → chain, unprunable conv name → reason), convs in model order."""
    if not isinstance(model, keras.Sequential) and not getattr(model, "_is_graph_network", False):
        raise Unprunable(f"model {model.name!r} is subclassed; filter pruning needs a functional "
                         "or Sequential model")
    graph = build_graph(model)
    layers = layers_by_name(model)
    chains, reasons = {}, {}
    for name in (n for n in layers if n in graph.layers):
        entry = graph.layers[name]
        if entry["class_name"] not in CONV_KINDS:
            continue
        activation = entry["config"].get("activation")
        if not _is_plain_conv(entry):
            reasons[name] = f"{name!r}: only ungrouped channels_last Conv2D filters can be removed"
        elif not elementwise(activation):
            reasons[name] = f"{name!r}: its activation {activation!r} does not act on each channel alone"
        else:
            try:
                chains[name] = _follow(layers, name, graph)
            except Unprunable as exc:
                reasons[name] = str(exc)
    return chains, reasons
