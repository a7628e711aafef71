"""Rebuild a model's graph in the other Keras API, layer by layer, node by node.

Why rebuild by calling layers instead of handing a translated config to ``from_config``: the two
APIs write a node differently (Keras 3: ``{"args", "kwargs"}`` with ``__keras_tensor__`` records;
tf_keras: ``[layer, node, tensor, kwargs]`` lists), and calling the new layers on the new tensors
lets each API build its own graph, so nested models, shared layers and multi-input layers come out
exactly as that API makes them. Plain math on tensors (``x + 3``, ``x * y``, a channel pad) is an
operation node in Keras 3 and a ``TFOpLambda`` in tf_keras: :data:`OPS` maps the few applications
use; any other is refused by name.
"""

from __future__ import annotations

from typing import Any, Callable

from .._keras import tf
from ..errors import TranslationError
from .layer_config import dtype_policy, translate_layer
from .sides import Side

Ref = tuple[str, int, int]  # (layer name, node index, tensor index) in the config being rebuilt


def rebuild(model, source: Side, target: Side):
    """A ``target`` model with ``model``'s architecture (weights not copied)."""
    if source.is_sequential(model):
        return _sequential(model, source, target)
    if type(model).__name__ == "Functional":
        return _functional(model, source, target)
    raise TranslationError(f"model {model.name!r} is a subclassed {type(model).__name__}; only Sequential and "
                           "functional models can be translated (their architecture is data, not code)")


def _sequential(model, source: Side, target: Side):
    config = model.get_config()
    layers = [_input_from_config(entry["config"], source, target) if entry["class_name"] == "InputLayer" else None
              for entry in config["layers"]]
    inner = iter(model.layers)
    built = [layer if layer is not None else _translate(next(inner), source, target) for layer in layers]
    return target.api.Sequential(built, name=model.name)


def _translate(layer, source: Side, target: Side):
    return rebuild(layer, source, target) if source.is_model(layer) else translate_layer(layer, source, target)


def _input_from_config(config: dict[str, Any], source: Side, target: Side):
    shape = config.get("batch_shape", config.get("batch_input_shape"))
    if config.get("sparse") or config.get("ragged"):
        raise TranslationError(f"input {config.get('name')!r} is sparse or ragged; only dense inputs are translated")
    dtype = dtype_policy(config.get("dtype") or "float32", config.get("name", "input"), source, target)
    return target.api.Input(batch_shape=tuple(shape), dtype=dtype, name=config.get("name"))


def _functional(model, source: Side, target: Side):
    config = model.get_config()
    tensors: dict[Ref, Any] = {}
    pending: list[tuple[dict, int, Any]] = []
    for entry in config["layers"]:
        if entry["class_name"] == "InputLayer":
            tensors[(entry["name"], 0, 0)] = _input_from_config(entry["config"], source, target)
        else:
            pending += [(entry, index, node) for index, node in enumerate(entry.get("inbound_nodes", []))]
    called: dict[str, Callable] = {}
    names = {entry["name"] for entry in config["layers"]}
    while pending:
        waiting = []
        for entry, index, node in pending:
            args, kwargs = _node(node, names)
            if not _ready((args, kwargs), tensors):
                waiting.append((entry, index, node))
                continue
            if entry["name"] not in called:
                called[entry["name"]] = _callable(entry, model, source, target)
            outputs = called[entry["name"]](*_fill(args, tensors), **_fill(kwargs, tensors))
            node_index = index + _first_node(entry, model, source)
            for position, tensor in enumerate(tf.nest.flatten(outputs)):
                tensors[(entry["name"], node_index, position)] = tensor
        if len(waiting) == len(pending):
            raise TranslationError(f"model {model.name!r}: the graph of layers "
                                   f"{sorted({e['name'] for e, _, _ in waiting})} could not be ordered")
        pending = waiting
    inputs = _single(_structure(config["input_layers"], tensors))
    outputs = _single(_structure(config["output_layers"], tensors))
    return target.api.Model(inputs, outputs, name=model.name)


def _first_node(entry: dict, model, source: Side) -> int:
    """tf_keras numbers a nested model's calls from 1: its node 0 is its own input node."""
    if source.label != "tf_keras" or entry["class_name"] not in ("Functional", "Sequential", "Model"):
        return 0
    from tf_keras.src.engine.functional import _should_skip_first_node  # the rule its get_config follows

    return int(_should_skip_first_node(model.get_layer(entry["name"])))


def _single(structure: Any) -> Any:
    """tf_keras writes one input (output) as a list of one; as one tensor, ``model(x)`` takes (returns) a tensor."""
    return structure[0] if isinstance(structure, list) and len(structure) == 1 else structure


def _callable(entry: dict, model, source: Side, target: Side) -> Callable:
    """What rebuilds this entry's nodes: the translated layer (or model), or a mapped operation."""
    if source.label == "Keras 3" and str(entry.get("module", "")).startswith("keras.src.ops"):
        return _operation(entry["class_name"], entry["config"], entry["name"], source, target)
    layer = model.get_layer(entry["name"])
    op = _tf_keras_operation(layer, target) or _expanded_activation(layer, source)
    return op if op is not None else _translate(layer, source, target)


class _Tensor:
    """A reference to a tensor produced by an earlier node."""

    def __init__(self, ref: Ref):
        self.ref = ref


def _node(node: Any, names: set[str]) -> tuple[list, dict]:
    """A node's call arguments, with references to earlier tensors as :class:`_Tensor` (``names``: the
    model's layers, which tell tf_keras' tensor records in keyword arguments from plain lists)."""
    if isinstance(node, dict):  # Keras 3: {"args": [...], "kwargs": {...}}
        args, kwargs = _refs(node.get("args", [])), _refs(node.get("kwargs", {}))
    else:  # tf_keras: [layer, node, tensor, kwargs] per input tensor, nested as the call's inputs
        kwargs = {}
        inputs = _legacy_inputs(node, kwargs)
        args = [inputs[0] if isinstance(inputs, list) and len(inputs) == 1 else inputs]
        kwargs = _legacy_refs(kwargs, names)
    kwargs = {k: v for k, v in kwargs.items() if not (k in ("mask", "training", "name") and v is None)}
    return args, kwargs


def _refs(value: Any) -> Any:
    if isinstance(value, dict) and value.get("class_name") == "__keras_tensor__":
        name, node, index = value["config"]["keras_history"]
        return _Tensor((name, int(node), int(index)))
    if isinstance(value, dict):
        return {k: _refs(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_refs(v) for v in value]
    return value


def _is_legacy_ref(value: Any) -> bool:
    return (isinstance(value, (list, tuple)) and len(value) in (3, 4) and isinstance(value[0], str)
            and isinstance(value[1], int) and isinstance(value[2], int))


def _legacy_inputs(value: Any, kwargs: dict) -> Any:
    """tf_keras' input records as :class:`_Tensor`; their call keywords are gathered into ``kwargs``."""
    if _is_legacy_ref(value):
        kwargs.update(value[3] if len(value) == 4 else {})
        return _Tensor((value[0], value[1], value[2]))
    return [_legacy_inputs(v, kwargs) for v in value]


def _legacy_refs(value: Any, names: set[str]) -> Any:
    """tf_keras writes a tensor passed as a keyword (``y`` of ``x * y``) as ``[layer, node, tensor]``."""
    if isinstance(value, (list, tuple)) and len(value) == 3 and value[0] in names and isinstance(value[1], int):
        return _Tensor((value[0], int(value[1]), int(value[2])))
    if isinstance(value, dict):
        return {k: _legacy_refs(v, names) for k, v in value.items()}
    return value


def _ready(value: Any, tensors: dict[Ref, Any]) -> bool:
    if isinstance(value, _Tensor):
        return value.ref in tensors
    if isinstance(value, dict):
        return all(_ready(v, tensors) for v in value.values())
    if isinstance(value, (list, tuple)):
        return all(_ready(v, tensors) for v in value)
    return True


def _fill(value: Any, tensors: dict[Ref, Any]) -> Any:
    if isinstance(value, _Tensor):
        return tensors[value.ref]
    if isinstance(value, dict):
        return {k: _fill(v, tensors) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, tensors) for v in value]
    return value


def _structure(spec: Any, tensors: dict[Ref, Any]) -> Any:
    """``input_layers``/``output_layers``: one ``[name, node, tensor]`` or a list (or dict) of them."""
    if isinstance(spec, (list, tuple)) and len(spec) == 3 and isinstance(spec[0], str):
        return tensors[(spec[0], int(spec[1]), int(spec[2]))]
    if isinstance(spec, dict):
        return {k: _structure(v, tensors) for k, v in spec.items()}
    return [_structure(s, tensors) for s in spec]


# ----------------------------------------------------------------------------- operations


def _binary(name: str) -> Callable[[Side], Callable]:
    """Keras 3 ``ops.<name>`` ↔ ``tf.math.<name>`` (tf_keras records ``x + y`` as ``__operators__.add``)."""
    tf_names = {"add": "add", "subtract": "subtract", "multiply": "multiply", "divide": "truediv"}

    def pick(target: Side) -> Callable:
        if target.label == "tf_keras":
            return getattr(tf.math, tf_names[name])
        return getattr(target.api.ops, name)
    return pick


_KERAS3_OPS = {"Add": "add", "Subtract": "subtract", "Multiply": "multiply", "Divide": "divide", "TrueDivide": "divide"}
_TF_KERAS_OPS = {"__operators__.add": "add", "math.add": "add", "math.subtract": "subtract",
                 "math.multiply": "multiply", "math.truediv": "divide", "math.divide": "divide"}


def _hard_sigmoid(x):
    return tf.math.truediv(tf.nn.relu6(tf.math.add(x, 3.0)), 6.0)  # as Keras 3's TensorFlow backend computes it


_ACTIVATION_OPS: dict[str, Callable] = {
    "hard_sigmoid": _hard_sigmoid, "hard_silu": lambda x: tf.math.multiply(x, _hard_sigmoid(x)),
    "hard_swish": lambda x: tf.math.multiply(x, _hard_sigmoid(x)), "relu6": tf.nn.relu6}
"""Keras 3 activations tf_keras lacks (or computes differently: ``hard_sigmoid``), as TensorFlow ops."""


def _expanded_activation(layer, source: Side) -> Callable | None:
    """A Keras 3 layer tf_keras has no class for, as TensorFlow ops: an ``Activation`` whose function
    tf_keras lacks (MobileNetV3's ``hard_silu``), InceptionResNetV2's ``CustomScaleLayer`` (x + y·scale)."""
    if source.label != "Keras 3":
        return None
    kind = type(layer)
    if kind.__module__ == "keras.src.applications.inception_resnet_v2" and kind.__name__ == "CustomScaleLayer":
        return lambda inputs: tf.math.add(inputs[0], tf.math.multiply(inputs[1], float(layer.scale)))
    if kind is not source.api.layers.Activation:
        return None
    return _ACTIVATION_OPS.get(layer.get_config().get("activation"))


def _operation(class_name: str, config: dict, name: str, source: Side, target: Side) -> Callable:
    """A Keras 3 operation node (``x + 3`` in a functional model) as a tf_keras ``TFOpLambda`` call."""
    if class_name in _KERAS3_OPS:
        return _binary(_KERAS3_OPS[class_name])(target)
    if class_name == "Pad" and config.get("mode", "constant") == "constant":
        width = config["pad_width"]
        return lambda x, constant_values=None: tf.pad(x, width, constant_values=constant_values or 0)
    raise TranslationError(f"operation {name!r} ({class_name}, keras.ops) has no {target.label} counterpart; "
                           "use a layer (Add, Multiply, Rescaling, ZeroPadding2D, …) instead")


def _tf_keras_operation(layer, target: Side) -> Callable | None:
    """A tf_keras ``TFOpLambda`` (``x * y``) or tfrewind's ``ZeroPadChannels`` as a Keras 3 operation."""
    if target.label != "Keras 3":
        return None
    kind = type(layer).__name__
    if kind == "TFOpLambda" and layer.symbol in _TF_KERAS_OPS:
        op = _binary(_TF_KERAS_OPS[layer.symbol])(target)
        return lambda x, y=None, **_: op(x, y)
    if kind == "TFOpLambda" and layer.symbol == "nn.relu6":
        return lambda x, **_: target.api.ops.relu6(x)
    if kind == "ZeroPadChannels":
        return lambda x: target.api.ops.pad(x, [[0, 0], [0, 0], [0, 0], [0, int(layer.extra)]])
    return None


__all__ = ["rebuild"]
