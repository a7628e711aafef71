"""The flat layer graph of a model, read from its config: who feeds whom, in call order.

Why from the model config: ``get_config()`` lists every layer with the names of its inputs, which
is exactly the functional graph, and :mod:`.surgery` rebuilds the smaller model from that same
config. :mod:`.channels` walks this graph to find which channels are coupled.

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

from .._keras import keras
from .wrappers import all_layers

NESTED_KINDS = ("Functional", "Sequential", "Model")
_CONSTANT = "_CONSTANT_VALUE"


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
    inputs: dict[str, list[tuple[str | None, bool]]] = field(default_factory=lambda: defaultdict(list))
    """Consumer → its (producer, passed as a call argument) in call order, every call's in turn."""
    split: set[str] = field(default_factory=set)
    """Layers whose second or later output tensor is used (their channels are not followed)."""

    def add(self, entry: dict, owner: str) -> str:
        name = entry["config"]["name"]
        if name in self.layers:
            raise Unprunable(f"layer name {name!r} is used twice (in {self.owner[name]!r} and {owner!r}); "
                             "filter pruning needs unique layer names across nested models: rename one")
        self.layers[name], self.owner[name] = entry, owner
        return name

    def connect(self, producer: str | None, consumer: str, argument: bool) -> None:
        self.inputs[consumer].append((producer, argument))
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
        if tensor:
            graph.split.add(name)
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
