"""One layer's config carried from one Keras API to the other, or refused with a reason.

Why by the constructors' signatures and not a table per layer: Keras 3 and tf_keras share class
names and nearly all arguments; what differs is a handful of arguments one side added (Keras 3's
``lora_rank``, ``input_axes``; tf_keras' ``fused``) and the format of dtype policies and nested
objects. A key the target class does not take is dropped only when it holds the source class's
default (it then changes nothing); any other value is refused, naming the layer and the argument,
so a model never crosses over half-translated. The output comparison after the weights are copied
(:mod:`tfrewind.keras3.verify`) catches what a config cannot show.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

from ..errors import TranslationError
from .sides import Side

_NOT_FOUND = object()

ACTIVATION_RENAMES = {("Keras 3", "silu"): "swish"}
"""Activations whose name differs (same function): Keras 3 calls tf_keras' ``swish`` ``silu``."""
ACTIVATIONS_THAT_DIFFER = {"hard_sigmoid"}
"""Same name, different function: Keras 3's is ``relu6(x + 3) / 6``, tf_keras' ``clip(0.2·x + 0.5)``."""
KWARGS_DEFAULTS = {"rms_scaling": False}
"""Defaults of arguments a Keras 3 layer takes through ``**kwargs`` only (so its signature cannot tell)."""
APPLICATION_TWINS = {"keras.src.applications.convnext.LayerScale": "tf_keras.src.applications.convnext.LayerScale"}
"""Layer classes an application defines for itself, in both APIs alike (ConvNeXt's ``LayerScale``)."""
CODE_LAYERS = {"Lambda", "TFOpLambda"}
"""Layers that hold Python code or a TensorFlow function rather than a config."""
_OBJECT_KINDS = ("initializer", "regularizer", "constraint")


def refuse(layer_name: str, what: str, source: Side, target: Side) -> TranslationError:
    return TranslationError(f"layer {layer_name!r} ({what}) has no exact {target.label} counterpart, so this "
                            f"{source.label} model cannot be translated; replace it with a standard Keras layer")


def translate_layer(layer, source: Side, target: Side):
    """A new ``target`` layer with ``layer``'s config (no weights yet)."""
    name, class_name = layer.name, type(layer).__name__
    if class_name in CODE_LAYERS:
        raise refuse(name, f"a {class_name} holding Python code", source, target)
    target_class = application_twin(type(layer))
    if target_class is None and getattr(source.api.layers, class_name, None) is not type(layer):
        raise refuse(name, f"custom class {type(layer).__module__}.{class_name}", source, target)
    target_class = target_class or getattr(target.api.layers, class_name, None)
    if target_class is None:
        raise refuse(name, f"{class_name}, new in {source.label}", source, target)
    config = translate_arguments(layer.get_config(), type(layer), target_class, name, source, target)
    config = _layer_fixes(class_name, config, name, source, target)
    try:
        return target_class.from_config(config)
    except (TypeError, ValueError) as exc:
        reason = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise TranslationError(f"layer {name!r} ({class_name}) could not be rebuilt in {target.label}: {reason}") from None


def application_twin(cls: type) -> type | None:
    """The other API's class of an application's own layer (:data:`APPLICATION_TWINS`), if it is one."""
    twins = {**APPLICATION_TWINS, **{v: k for k, v in APPLICATION_TWINS.items()}}
    path = twins.get(f"{cls.__module__}.{cls.__name__}")
    if path is None:
        return None
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def translate_arguments(config: dict[str, Any], source_class: type, target_class: type, owner: str,
                        source: Side, target: Side) -> dict[str, Any]:
    """Keep what ``target_class`` takes (translated), drop source defaults it does not, refuse the rest."""
    accepted = constructor_arguments(target_class)
    out = {}
    for key, value in config.items():
        if key in accepted:
            out[key] = _value(key, value, owner, source, target)
        elif not _is_default(source_class, key, value):
            raise TranslationError(f"layer {owner!r} ({source_class.__name__}): {key}={value!r} has no "
                                   f"{target.label} counterpart, so the model cannot be translated exactly")
    return out


def constructor_arguments(cls: type) -> set[str]:
    """Every named argument ``cls(...)`` passes along its constructors, up the ``**kwargs`` chain."""
    names: set[str] = set()
    for klass in cls.__mro__:
        if "__init__" not in vars(klass):
            continue
        parameters = inspect.signature(klass.__init__).parameters.values()
        names.update(p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))
        if not any(p.kind == p.VAR_KEYWORD for p in parameters):
            break
    names.discard("self")
    return names


def _is_default(cls: type, key: str, value: Any) -> bool:
    for klass in cls.__mro__:
        if "__init__" in vars(klass):
            parameter = inspect.signature(klass.__init__).parameters.get(key)
            if parameter is not None and parameter.default is not inspect.Parameter.empty:
                return _same(parameter.default, value)
    if key in KWARGS_DEFAULTS:
        return _same(KWARGS_DEFAULTS[key], value)
    return value is None


def _same(default: Any, value: Any) -> bool:
    if isinstance(default, (list, tuple)) and isinstance(value, (list, tuple)):
        return list(default) == list(value)
    return default == value and type(default) is type(value) or (default is None and value is None)


def _value(key: str, value: Any, owner: str, source: Side, target: Side) -> Any:
    if key == "dtype":
        return dtype_policy(value, owner, source, target)
    if key.endswith("activation") and isinstance(value, str):
        return _activation(value, owner, source, target)
    kind = next((k for k in _OBJECT_KINDS if key.endswith(k)), None)
    if kind is not None and isinstance(value, dict):
        return _object(kind, value, owner, source, target)
    return value


def dtype_policy(value: Any, owner: str, source: Side, target: Side) -> Any:
    """A dtype policy as ``target`` writes it: a plain dtype name, or a mixed-precision policy."""
    if isinstance(value, dict):
        config = value.get("config") or {}
        if value.get("class_name") not in ("DTypePolicy", "Policy", "FloatDTypePolicy") or "name" not in config:
            raise TranslationError(f"layer {owner!r}: dtype policy {value.get('class_name')!r} (quantized?) has no "
                                   f"{target.label} counterpart")
        value = config["name"]
    if isinstance(value, str) and value.startswith("mixed_") and target.label == "tf_keras":
        return {"class_name": "Policy", "config": {"name": value}}
    return value


def _activation(name: str, owner: str, source: Side, target: Side) -> str:
    name = ACTIVATION_RENAMES.get((source.label, name), name)
    if name in ACTIVATIONS_THAT_DIFFER or not callable(getattr(target.api.activations, name, None)):
        raise TranslationError(f"layer {owner!r}: activation {name!r} has no identical {target.label} "
                               "activation; use an Activation/ReLU layer both APIs share")
    return name


def _object(kind: str, value: dict, owner: str, source: Side, target: Side) -> dict:
    """An initializer, regularizer or constraint, as ``{"class_name", "config"}`` for ``target``."""
    class_name = value.get("class_name")
    source_module, target_module = getattr(source.api, kind + "s"), getattr(target.api, kind + "s")
    source_class = getattr(source_module, str(class_name), None)
    target_class = getattr(target_module, str(class_name), None)
    if not isinstance(source_class, type) or not isinstance(target_class, type):
        raise TranslationError(f"layer {owner!r}: {kind} {class_name!r} has no {target.label} counterpart")
    config = translate_arguments(value.get("config") or {}, source_class, target_class, owner, source, target)
    return {"class_name": class_name, "config": config}


def _layer_fixes(class_name: str, config: dict[str, Any], owner: str, source: Side, target: Side) -> dict[str, Any]:
    """The few arguments both APIs take but write differently."""
    if class_name == "BatchNormalization" and isinstance(config.get("axis"), (list, tuple)):
        if len(config["axis"]) != 1:  # Keras 3 normalises over one axis only
            raise TranslationError(f"layer {owner!r}: batch normalization over axes {config['axis']} has no "
                                   f"{target.label} counterpart")
        config["axis"] = int(config["axis"][0])
    return config


__all__ = ["APPLICATION_TWINS", "application_twin", "constructor_arguments", "dtype_policy", "refuse", "translate_arguments", "translate_layer"]
