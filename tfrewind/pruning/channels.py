"""The channel dependency graph: which channels of which layers must be removed together.

Why units: every tensor's last axis gets a *channel map*, one unit id per position. A conv or
dense layer makes fresh units for its filters; layers that treat channels alone pass the map on;
a residual ``Add`` (or ``Multiply``, …) says that position ``i`` of every input is *the same*
channel, so their units are unioned (union-find); ``Concatenate`` joins maps, so its offsets are
free; a depthwise conv repeats each unit ``depth_multiplier`` times; ``Flatten`` tiles the map
per spatial position; a grouped conv unions the channels of each of its groups. Removing a unit
then means removing *every* position that holds it, in every layer, which is exactly the set of
coupled slices Torch-Pruning's DepGraph computes with its index mapping — without a per-pattern
special case. Unlike DepGraph, anything not understood *blocks*: its units can never be removed,
and the reason is kept (:mod:`.layer_rules` decides).

A **group** is a set of source layers (convs/dense) whose units are tied together, with their
units in a fixed order (first appearance, sources in model order): the unit of pruning, scoring
and reporting. Its name is its first source (the *leader*).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

from .._keras import keras
from . import graph as G
from .layer_rules import MERGE, Blocked, Rule, rule_for

SCALARS = (int, float, bool, str, type(None))


class Units:
    """Union-find over channel units, each born in one source layer, some blocked with a reason."""

    def __init__(self) -> None:
        self.parent: list[int] = []
        self.born_in: list[str] = []
        self.blocked: dict[int, str] = {}

    def new(self, count: int, source: str) -> np.ndarray:
        start = len(self.parent)
        self.parent.extend(range(start, start + count))
        self.born_in.extend([source] * count)
        return np.arange(start, start + count)

    def find(self, unit: int) -> int:
        parent = self.parent
        while parent[unit] != unit:
            parent[unit] = parent[parent[unit]]
            unit = parent[unit]
        return unit

    def union(self, a: np.ndarray, b: np.ndarray) -> None:
        for x, y in zip(a.tolist(), b.tolist()):
            rx, ry = self.find(x), self.find(y)
            if rx != ry:
                self.parent[max(rx, ry)] = min(rx, ry)

    def block(self, units: np.ndarray, reason: str) -> None:
        for unit in units.tolist():
            self.blocked.setdefault(unit, reason)

    def roots(self, units: np.ndarray) -> np.ndarray:
        return np.fromiter((self.find(u) for u in units.tolist()), dtype=np.int64, count=len(units))


@dataclass
class Group:
    """Channels that are removed together (see the module docstring)."""

    leader: str
    sources: list[str]
    units: np.ndarray
    """Root unit ids in the group's fixed order; indices into it are the group's channel indices."""
    reason: str | None = None
    """Why the group cannot be pruned, or None."""


@dataclass
class ChannelGraph:
    """The analysis of one model: every layer's channel maps, the groups, and why some are blocked."""

    model: keras.Model
    graph: G.Graph
    layers: dict[str, keras.layers.Layer]
    rules: dict[str, Rule] = field(default_factory=dict)
    """Layer → its rule (layers that block have none)."""
    in_maps: dict[str, list[np.ndarray]] = field(default_factory=dict)
    out_maps: dict[str, np.ndarray] = field(default_factory=dict)
    groups: list[Group] = field(default_factory=list)
    blocked_layers: dict[str, str] = field(default_factory=dict)
    """Layer → why channels stop there."""

    @property
    def prunable(self) -> list[Group]:
        return [g for g in self.groups if g.reason is None]

    def group_of(self, layer: str) -> Group | None:
        return next((g for g in self.groups if layer in g.sources), None)


def _shapes(layer: keras.layers.Layer) -> list:
    shape = layer.input_shape
    return [tuple(s) for s in shape] if isinstance(shape, list) else [tuple(shape)]


def _topological(graph: G.Graph) -> list[str]:
    """Layers producers first (Kahn), so a map is known before a consumer needs it."""
    waiting = {name: sum(p is not None for p, _ in graph.inputs.get(name, [])) for name in graph.layers}
    ready = deque(name for name, count in waiting.items() if count == 0)
    order = []
    while ready:
        name = ready.popleft()
        order.append(name)
        for consumer in graph.consumers.get(name, {}):
            for producer, _ in graph.inputs[consumer]:
                if producer == name:
                    waiting[consumer] -= 1
            if waiting[consumer] == 0:
                ready.append(consumer)
    if len(order) != len(graph.layers):
        raise G.Unprunable("the layer graph has a cycle or a dangling input")
    return order


def _scalar_constants(entry: dict) -> bool:
    """A TFOpLambda's non-tensor arguments are all Python scalars (``x + 3.0``, not ``x * [..]``)."""
    def scalar(value) -> bool:
        if isinstance(value, dict):
            return all(scalar(v) for v in value.values())
        if isinstance(value, (list, tuple)):  # a tensor reference [layer, node, tensor(, kwargs)] is fine
            return len(value) in (3, 4) and isinstance(value[0], str) and value[0] != "_CONSTANT_VALUE" \
                and isinstance(value[1], int) and isinstance(value[2], int)
        return isinstance(value, SCALARS)

    for node in entry.get("inbound_nodes", []):
        refs = node if isinstance(node, list) and node and isinstance(node[0], list) else [node]
        for ref in refs:
            if isinstance(ref, list) and len(ref) == 4 and isinstance(ref[3], dict):
                if not all(scalar(v) for v in ref[3].values()):
                    return False
    return True


class _Analysis:
    """One pass over the layers in topological order, filling a :class:`ChannelGraph`."""

    def __init__(self, model: keras.Model) -> None:
        graph = G.build_graph(model)
        self.cg = ChannelGraph(model, graph, G.layers_by_name(model))
        self.units = Units()

    def run(self) -> ChannelGraph:
        graph = self.cg.graph
        for name in _topological(graph):
            self._visit(name)
        for producer in graph.outputs:
            if producer is not None:
                self.units.block(self.cg.out_maps[producer], f"it reaches the model output at {producer!r}")
        self._groups()
        return self.cg

    def _input_map(self, producer: str | None) -> np.ndarray:
        if producer is None:
            raise Blocked("fed by the model input")
        return self.cg.out_maps[producer]

    def _visit(self, name: str) -> None:
        cg, entry = self.cg, self.cg.graph.layers[name]
        inputs = cg.graph.inputs.get(name, [])
        maps = [self._input_map(p) if p is not None else None for p, _ in inputs]
        try:
            rule = self._rule(name, entry, inputs)
            out = self._flow(name, rule, [m for m in maps if m is not None])
            cg.rules[name] = rule
        except Blocked as exc:
            reason = f"{name!r} ({entry['class_name']}): {exc}"
            cg.blocked_layers[name] = reason
            for m in maps:
                if m is not None:
                    self.units.block(m, reason)
            out = self.units.new(self._width(name), name)
            self.units.block(out, reason)
        cg.in_maps[name] = [m for m in maps if m is not None]
        cg.out_maps[name] = out

    def _width(self, name: str) -> int:
        if name not in self.cg.layers:  # an InputLayer: its config holds the shape
            shape = self.cg.graph.layers[name]["config"].get("batch_input_shape") or [None]
            return int(shape[-1] or 0)
        shape = self.cg.layers[name].output_shape
        shape = shape[0] if isinstance(shape, list) else shape
        return int(shape[-1]) if shape and shape[-1] is not None else 0

    def _rule(self, name: str, entry: dict, inputs: list) -> Rule:
        kind, graph = entry["class_name"], self.cg.graph
        if kind == "InputLayer":
            raise Blocked("the model input")
        if len(entry.get("inbound_nodes") or []) > 1:
            raise Blocked(f"shared by {len(entry['inbound_nodes'])} calls")
        if any(argument for _, argument in inputs) and kind != "TFOpLambda":
            raise Blocked("gets a tensor as a call argument, which cannot be sliced")
        if any(p is None for p, _ in inputs) or not inputs:
            raise Blocked("fed by the model input")
        if name in graph.split or any(p in graph.split for p, _ in inputs):
            raise Blocked("one of several output tensors")
        if kind == "TFOpLambda" and not _scalar_constants(entry):
            raise Blocked("a TensorFlow op with a non-scalar constant")
        rule = rule_for(kind, entry["config"], _shapes(self.cg.layers[name]))
        return MERGE if kind == "TFOpLambda" and len(inputs) > 1 else rule

    def _flow(self, name: str, rule: Rule, maps: list[np.ndarray]) -> np.ndarray:
        layer, units = self.cg.layers[name], self.units
        if rule.flow == "source":
            return units.new(self._width(name), name)
        if rule.flow == "same":
            return maps[0]
        if rule.flow == "depthwise":
            return np.repeat(maps[0], int(layer.get_config().get("depth_multiplier", 1)))
        if rule.flow in ("merge", "concat"):
            return self._merge(name, rule, maps)
        if rule.flow == "flatten":
            return np.tile(maps[0], _positions(_shapes(layer)[0]))
        if rule.flow == "reshape":
            return self._reshape(layer, maps[0])
        return self._grouped(layer, maps[0])

    def _merge(self, name: str, rule: Rule, maps: list[np.ndarray]) -> np.ndarray:
        shapes = _shapes(self.cg.layers[name])
        axis = self.cg.layers[name].get_config().get("axis", -1)
        if rule.flow == "concat" and axis in (-1, len(shapes[0]) - 1):
            return np.concatenate(maps)
        if len({len(m) for m in maps}) != 1:
            raise Blocked("inputs with different channel counts (broadcasting)")
        for other in maps[1:]:
            self.units.union(maps[0], other)
        return maps[0]

    def _reshape(self, layer: keras.layers.Layer, incoming: np.ndarray) -> np.ndarray:
        before, after = _shapes(layer)[0], tuple(layer.output_shape)
        if None in before[1:] or None in after[1:]:
            raise Blocked("a reshape with unknown sizes")
        if after[-1] == before[-1] and int(np.prod(after[1:-1])) == int(np.prod(before[1:-1])):
            return incoming
        raise Blocked(f"a reshape {before[1:]} → {after[1:]} that moves the channel axis")

    def _grouped(self, layer: keras.layers.Layer, incoming: np.ndarray) -> np.ndarray:
        config = layer.get_config()
        groups, filters = int(config["groups"]), int(config["filters"])
        chunks = np.split(incoming, groups)
        for chunk in chunks:
            self.units.union(np.repeat(chunk[:1], len(chunk)), chunk)
        return np.repeat(np.array([c[0] for c in chunks]), filters // groups)

    def _groups(self) -> None:
        """Resolve maps to root units and gather the groups (sources tied by shared units)."""
        cg, units = self.cg, self.units
        for name in cg.out_maps:
            cg.out_maps[name] = units.roots(cg.out_maps[name])
            cg.in_maps[name] = [units.roots(m) for m in cg.in_maps[name]]
        reasons: dict[int, str] = {}
        for unit, reason in units.blocked.items():
            reasons.setdefault(units.find(unit), reason)
        owner: dict[int, Group] = {}
        for name in cg.out_maps:
            if cg.rules.get(name) is None or cg.rules[name].flow != "source":
                continue
            found = {id(owner[u]): owner[u] for u in cg.out_maps[name].tolist() if u in owner}
            group = self._joined(list(found.values()), name)
            for unit in dict.fromkeys(cg.out_maps[name].tolist()):
                if unit not in owner:
                    group.units = np.append(group.units, unit)
                owner[unit] = group
            for other in found.values():
                if other is not group:
                    for unit in other.units.tolist():
                        owner[unit] = group
        for group in cg.groups:
            group.reason = next((reasons[u] for u in group.units.tolist() if u in reasons), None)

    def _joined(self, found: list[Group], source: str) -> Group:
        if not found:
            group = Group(source, [source], np.zeros(0, dtype=np.int64))
            self.cg.groups.append(group)
            return group
        group = found[0]
        for other in found[1:]:
            group.sources.extend(other.sources)
            group.units = np.append(group.units, other.units)
            self.cg.groups.remove(other)
        group.sources.append(source)
        return group


def _positions(shape: tuple) -> int:
    return int(np.prod([d for d in shape[1:-1] if d is not None], dtype=np.int64))


def analyse(model: keras.Model) -> ChannelGraph:
    """The channel dependency graph of a Sequential or functional tf_keras model (nested opened)."""
    if not isinstance(model, keras.Sequential) and not getattr(model, "_is_graph_network", False):
        raise G.Unprunable(f"model {model.name!r} is subclassed; channel pruning needs a functional "
                           "or Sequential model")
    return _Analysis(model).run()
