"""Channel criteria that read a few batches of training data: ``taylor`` and ``hrank``.

Both run the model eagerly in inference mode (``training=False``) on :attr:`ScoreInput.batches`,
once for all groups (the result is cached on the :class:`ScoreInput`), and score each source's
output channels; :func:`.criteria.per_unit` turns them into group scores like any other criterion.

* ``taylor`` — first-order Taylor expansion of the loss (Molchanov et al. 2019, "Importance
  Estimation for Neural Network Pruning"), **parameter form**: per batch, |Σ w·∂L/∂w| over each
  filter's weights (its kernel slice and bias), the first-order change of the loss when that
  filter is zeroed; averaged over the batches. Why the parameter form: it needs only the gradients
  of variables, which a ``GradientTape`` gives for a layer at any depth of nested models, and one
  formula serves Conv/Dense/SeparableConv/transposed/grouped sources alike. (For a filter without
  a normalisation after it, it equals the activation form Σ a·∂L/∂a over the filter's output, by
  Euler's theorem.) Why inference mode: in training mode a batch norm after the filter divides
  out any rescaling of it, so Σ w·∂L/∂w is identically 0 (checked: ~1e-5 against ~1e-3).
  The loss is sparse categorical cross-entropy, *from logits* unless the layer that produces the
  model's output applies softmax (read from its config: a ``Softmax`` layer or
  ``activation: softmax``), as the pipeline's compile decides.
* ``hrank`` — HRank (Lin et al. 2020): the average matrix rank of each channel's feature map over
  the images of the batches; low-rank maps carry little information. As in HRank's code the map
  is read after the batch norm and activation that follow the source (the chain of
  ``BatchNormalization``/activation layers that are the source's only consumer), else at the
  source itself. A source whose output has fewer than two spatial axes (``Dense``, ``Conv1D``)
  has no feature *matrix*: hrank refuses it (ignore it with ``prune.ignored_layers``).

Intermediate outputs are captured by temporarily replacing ``call`` on the feature layers'
instances (restored in a ``finally``), which works inside nested models too, where a sub-model
built from ``model.inputs`` could not reach; each batch's maps are reduced to ranks at once, so
memory stays that of one forward pass.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

import numpy as np

from .._keras import keras, tf
from ..errors import ConfigError
from .channels import ChannelGraph, Group
from .criteria import CRITERIA, ScoreInput, per_unit

SCORE_BATCHES = 5
"""Training batches a pipeline reads for a data criterion (HRank's code ranks 5 batches)."""

CHAIN = {"BatchNormalization", "Activation", "ReLU", "LeakyReLU", "ELU", "ThresholdedReLU"}
"""Per-channel layers that HRank reads *after* a conv (its feature map is the activation's output)."""


def _batches(si: ScoreInput, criterion: str) -> list[tuple[Any, Any]]:
    """The batches as a list (read once: the iterable may be a one-shot generator)."""
    if "batches" not in si.cache:
        batches = [] if si.batches is None else [(x, y) for x, y in si.batches]
        if not batches:
            raise ConfigError(f"criterion {criterion}: it scores channels on training data, and got no "
                              "batches; give a dataset (--dataset)")
        si.cache["batches"] = batches
    return si.cache["batches"]


def _sources(cg: ChannelGraph) -> list[str]:
    return [source for group in cg.prunable for source in group.sources]


def from_logits(cg: ChannelGraph) -> bool:
    """Whether the model outputs logits: unless its output layer applies softmax (from its config)."""
    outputs = [name for name in cg.graph.outputs if name is not None]
    if len(outputs) != 1:
        raise ConfigError(f"criterion taylor: model {cg.model.name!r} has {len(outputs)} outputs; it needs "
                          "one classifier output to compute the loss")
    entry = cg.graph.layers[outputs[0]]
    return not (entry["class_name"] == "Softmax" or entry["config"].get("activation") == "softmax")


def _filter_variables(layer: keras.layers.Layer) -> list[tf.Variable]:
    """The variables holding a source's filters: kernel (pointwise for separable convs) and bias."""
    kernel = layer.pointwise_kernel if hasattr(layer, "pointwise_kernel") else layer.kernel
    bias = getattr(layer, "bias", None)
    return [kernel] if bias is None else [kernel, bias]


def _per_filter(kind: str, products: list[np.ndarray]) -> np.ndarray:
    """Σ over each output channel's weights of ``products`` (arrays shaped like kernel and bias)."""
    kernel = products[0]
    if kind.endswith("Transpose"):  # (..., C_out, C_in)
        kernel = np.moveaxis(kernel, -2, -1)
    total = kernel.reshape(-1, kernel.shape[-1]).sum(axis=0)
    return total + products[1] if len(products) > 1 else total


def _taylor_scores(si: ScoreInput) -> dict[str, np.ndarray]:
    cg = si.cg
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits(cg))
    sources = _sources(cg)
    variables = {s: _filter_variables(cg.layers[s]) for s in sources}
    flat = [v for s in sources for v in variables[s]]
    totals = {s: np.zeros(len(cg.out_maps[s])) for s in sources}
    batches = _batches(si, "taylor")
    for x, y in batches:
        with tf.GradientTape() as tape:
            tape.watch(flat)  # frozen layers' variables too
            loss = loss_fn(y, cg.model(x, training=False))
        grads = iter(tape.gradient(loss, flat))
        for s in sources:
            products = []
            for variable in variables[s]:
                grad = next(grads)
                grad = np.zeros(variable.shape) if grad is None else tf.convert_to_tensor(grad).numpy()
                products.append(variable.numpy().astype(np.float64) * grad)
            totals[s] += np.abs(_per_filter(cg.graph.layers[s]["class_name"], products))
    return {s: total / len(batches) for s, total in totals.items()}


def feature_layer(cg: ChannelGraph, source: str) -> str:
    """Where HRank reads a source's feature maps: after the BN/activation chain that only it feeds."""
    name = source
    while True:
        consumers = cg.graph.consumers.get(name, {})
        if len(consumers) != 1:
            return name
        (following,) = consumers
        if cg.graph.layers[following]["class_name"] not in CHAIN or following not in cg.rules:
            return name
        name = following


@contextmanager
def capturing(layers: dict[str, keras.layers.Layer], sink) -> Iterator[None]:
    """While inside, each named layer's eager ``call`` also passes its output to ``sink(name, output)``.

    Why on the instance: Keras calls ``self.call`` from ``__call__``, at any nesting depth; the
    class and every other instance stay untouched, and the instance's own attribute is restored.
    """
    saved: dict[str, tuple[bool, Any]] = {}
    try:
        for name, layer in layers.items():
            saved[name] = ("call" in layer.__dict__, layer.__dict__.get("call"))
            object.__setattr__(layer, "call", _tapped(layer.call, name, sink))
        yield
    finally:
        for name, (had, value) in saved.items():
            if had:
                object.__setattr__(layers[name], "call", value)
            else:
                object.__delattr__(layers[name], "call")


def _tapped(call, name: str, sink):
    def tapped(*args, **kwargs):
        output = call(*args, **kwargs)
        sink(name, output)
        return output
    return tapped


def _ranks(output) -> np.ndarray:
    """Σ over the batch of each channel's feature-map rank; maps of 3-D convs are folded to (D·H, W)."""
    output = tf.convert_to_tensor(output)
    maps = tf.transpose(output, [0, output.shape.rank - 1, *range(1, output.shape.rank - 1)])
    shape = tf.shape(maps)
    maps = tf.reshape(maps, tf.concat([shape[:2], [-1, shape[-1]]], axis=0))
    return tf.reduce_sum(tf.linalg.matrix_rank(tf.cast(maps, tf.float32)), axis=0).numpy()


def _hrank_scores(si: ScoreInput) -> dict[str, np.ndarray]:
    cg = si.cg
    sources = _sources(cg)
    for s in sources:
        shape = cg.layers[s].output_shape
        if len(shape) < 4:
            raise ConfigError(f"criterion hrank: {s!r} ({cg.graph.layers[s]['class_name']}) has no 2-D feature "
                              "maps to rank; add it to prune.ignored_layers or use another criterion")
    taps = {s: feature_layer(cg, s) for s in sources}
    totals = {name: np.zeros(len(cg.out_maps[name])) for name in set(taps.values())}

    def add(name: str, output) -> None:
        totals[name] += _ranks(output)

    images = 0
    with capturing({name: cg.layers[name] for name in totals}, add):
        for x, _ in _batches(si, "hrank"):
            cg.model(x, training=False)
            images += int(np.shape(x)[0])
    return {s: totals[taps[s]] / images for s in sources}


def _cached(key: str, compute):
    def criterion(si: ScoreInput, group: Group) -> np.ndarray:
        if key not in si.cache:
            si.cache[key] = compute(si)
        return per_unit(si, group, lambda source: si.cache[key][source])
    return criterion


CRITERIA.register("taylor")(_cached("taylor", _taylor_scores))
CRITERIA.register("hrank")(_cached("hrank", _hrank_scores))
