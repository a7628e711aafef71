"""Does this model fit XNNPack's sparse-inference rules? (tfmot's ``PruneForLatencyOnXNNPack``.)

Why: unstructured sparsity shrinks files but, on CPU, only speeds inference up when XNNPack's
sparse path takes the graph — which needs a specific shape of network (a 3×3 stride-2 'valid'
stem conv after ZeroPadding2D(1) on 3 channels, then only 1×1 convs, depthwise convs, BN and
simple activations up to a GlobalAveragePooling2D) and sparsity in the 1×1 convs. tfmot encodes
those rules; its error names only the layer *class*, so we subclass the policy to remember which
layer was refused and answer with its name instead of a traceback.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from .._keras import keras, tfmot
from .stats import LayerStats


@dataclass
class XNNPackCheck:
    compatible: bool
    problem: str | None = None
    """Why not, naming the layer that breaks the rules."""
    layer: str | None = None
    eligible_layers: list[str] = field(default_factory=list)
    """Layers whose sparsity XNNPack can exploit (1×1 Conv2D)."""
    wasted_sparse_layers: list[str] = field(default_factory=list)
    """Sparse layers XNNPack's sparse path ignores (their zeros save file size, not time)."""

    def to_dict(self) -> dict:
        return asdict(self)


class _NamingPolicy(tfmot.sparsity.keras.PruneForLatencyOnXNNPack):
    def __init__(self) -> None:
        self.refused: list[keras.layers.Layer] = []

    def _check_layer_support(self, layer):  # noqa: D401 - tfmot's hook
        supported = super()._check_layer_support(layer)
        if not supported:
            self.refused.append(layer)
        return supported


def check_xnnpack_sparse(model: keras.Model, stats: list[LayerStats] | None = None) -> XNNPackCheck:
    """Check ``model`` (stripped) against XNNPack's sparse rules; never raises for a bad model."""
    policy = _NamingPolicy()
    eligible = [layer.name for layer in model.layers if policy.allow_pruning(layer)]
    wasted = [s.name for s in stats or [] if s.sparsity > 0.05 and s.name not in eligible]
    try:
        policy.ensure_model_supports_pruning(model)
    except ValueError as exc:
        layer = policy.refused[0] if policy.refused else None
        problem = _explain(model, str(exc), layer)
        if layer is not None:
            name = layer.name
        else:
            name = None if "GlobalAveragePooling2D" in str(exc) else _stem_name(model)
        return XNNPackCheck(False, problem, name, eligible, wasted)
    if not eligible:
        return XNNPackCheck(False, "no 1×1 Conv2D layer: XNNPack's sparse path has nothing to speed up",
                            None, eligible, wasted)
    return XNNPackCheck(True, None, None, eligible, wasted)


def _explain(model: keras.Model, message: str, layer: keras.layers.Layer | None) -> str:
    if layer is not None:
        return (f"layer {layer.name!r} ({_describe(layer)}) is not allowed between the stem and the "
                "global average pooling (allowed: 1×1 stride-1 Conv2D, 3×3/5×5 DepthwiseConv2D, "
                "BatchNormalization, ReLU-like activations, Add, Multiply, ZeroPadding2D)")
    if "GlobalAveragePooling2D" in message:
        return "the model has no GlobalAveragePooling2D before its output"
    stem = _first_conv(model)
    got = f"; the first conv {stem.name!r} is {_describe(stem)}" if stem is not None else ""
    return ("the model must start with ZeroPadding2D(1) then Conv2D 3×3, stride 2, 'valid' padding "
            f"on 3 input channels{got}")


def _describe(layer: keras.layers.Layer) -> str:
    if isinstance(layer, keras.layers.Conv2D):
        k = "×".join(map(str, layer.kernel_size))
        s = "×".join(map(str, layer.strides))
        return f"{type(layer).__name__} {k}, stride {s}, padding {layer.padding!r}"
    return type(layer).__name__


def _first_conv(model: keras.Model) -> keras.layers.Layer | None:
    return next((layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)), None)


def _stem_name(model: keras.Model) -> str | None:
    stem = _first_conv(model)
    return stem.name if stem is not None else None
