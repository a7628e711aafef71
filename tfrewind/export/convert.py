"""Keras → TFLite conversion with the quantization and sparse-encoding choices export offers.

Why these settings:

* ``EXPERIMENTAL_SPARSITY`` is the only thing that makes a ``.tflite`` file smaller for a pruned
  model (zeros are otherwise stored as zeros). The converter only encodes a tensor sparsely when
  that saves space, and inserts a DENSIFY op so any runtime can execute it.
* ``dynamic``: int8 weights, float activations (quantized on the fly) — no calibration data.
* ``int8``: full-integer weights *and* activations, calibrated on training images. The model's
  interface stays float32 (the converter adds QUANTIZE/DEQUANTIZE at the edges) so the app feeds
  the same normalised images whatever the quantization; ``TFLITE_BUILTINS_INT8`` refuses any op
  that has no int8 kernel instead of silently leaving it in float.
* ``float16``: float16 weights, dequantized at load time: half the size, float accuracy.
* Only builtin ops unless the caller allows Select-TF ops: a Flex op needs a runtime built with
  the Flex delegate, which most edge apps (and this machine's LiteRT) do not have.

Conversions are cached in-process by (model fingerprint, settings): an export converts the same
model twice (the file and a dense float reference for comparison), and tests export one model in
several modes.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

import numpy as np

from .._console import native_output_hidden
from .._keras import keras, tf
from ..choices import QUANTIZE_MODES
from .errors import ExportError, UnsupportedOpError
from .stats import fingerprint

_CACHE: OrderedDict[tuple, bytes] = OrderedDict()
_CACHE_SIZE = 16


@dataclass(frozen=True)
class Encoding:
    """One way of writing the model into a ``.tflite`` file."""

    quantize: str = "none"
    sparse: bool = False
    allow_select_tf_ops: bool = False

    @property
    def label(self) -> str:
        quant = {"none": "float32", "dynamic": "dynamic-range int8", "int8": "full-integer int8",
                 "float16": "float16"}[self.quantize]
        return f"{quant}, {'sparse' if self.sparse else 'dense'} encoding"


def convert(model: keras.Model, encoding: Encoding,
            representative: Callable[[], Iterable[np.ndarray]] | None = None,
            calibration_key: object = None) -> bytes:
    """The ``.tflite`` bytes of ``model`` written with ``encoding`` (cached by model state)."""
    if encoding.quantize not in QUANTIZE_MODES:
        raise ExportError(f"quantize: {encoding.quantize!r} is not allowed; choose one of: {', '.join(QUANTIZE_MODES)}")
    if encoding.quantize == "int8" and representative is None:
        raise ExportError("quantize int8 needs calibration images: pass the dataset (data=...) "
                          "or choose --quantize dynamic or float16")
    key = (fingerprint(model), encoding, calibration_key if encoding.quantize == "int8" else None)
    if key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key]
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    _configure(converter, encoding, representative)
    try:
        with native_output_hidden():  # the converter's C++ log lines (fully_quantize: …) are not for users
            content = converter.convert()
    except Exception as exc:  # noqa: BLE001 - ConverterError and friends carry the op names
        raise _conversion_error(exc, encoding) from exc
    _CACHE[key] = content
    while len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return content


def _configure(converter, encoding: Encoding, representative) -> None:
    optimizations = []
    if encoding.quantize != "none":
        optimizations.append(tf.lite.Optimize.DEFAULT)
    if encoding.sparse:
        optimizations.append(tf.lite.Optimize.EXPERIMENTAL_SPARSITY)
    converter.optimizations = optimizations
    builtins = tf.lite.OpsSet.TFLITE_BUILTINS_INT8 if encoding.quantize == "int8" else tf.lite.OpsSet.TFLITE_BUILTINS
    ops = [builtins]
    if encoding.allow_select_tf_ops:
        ops.append(tf.lite.OpsSet.SELECT_TF_OPS)
    converter.target_spec.supported_ops = ops
    if encoding.quantize == "float16":
        converter.target_spec.supported_types = [tf.float16]
    if encoding.quantize == "int8":
        converter.representative_dataset = lambda: _as_input_lists(representative())


def _as_input_lists(images: Iterable[np.ndarray]) -> Iterator[list[np.ndarray]]:
    """The converter wants one list of model inputs per calibration sample."""
    for image in images:
        yield [np.asarray(image, dtype=np.float32)]


_NOT_BUILTIN = re.compile(r"'tf\.(\w+)' op is neither a custom op nor a flex op")
_SELECT_LINE = re.compile(r"TF Select ops:\s*([^\n]+)")


def _conversion_error(exc: Exception, encoding: Encoding) -> ExportError:
    """Turn the converter's multi-page MLIR dump into one line that names the op and the fix."""
    text = str(exc)
    ops = sorted(set(_NOT_BUILTIN.findall(text)))
    for line in _SELECT_LINE.findall(text):
        ops.extend(op.strip() for op in line.split(",") if op.strip() and op.strip() not in ops)
    if ops:
        if encoding.allow_select_tf_ops:
            return UnsupportedOpError(f"the model uses op(s) {', '.join(ops)} that neither TFLite builtins nor "
                                      "Select-TF ops provide; replace them in the model")
        return UnsupportedOpError(f"the model uses TensorFlow op(s) {', '.join(ops)} that are not TFLite builtin ops; "
                                  "replace them, or allow Select-TF ops (allow_select_tf_ops=True / "
                                  "--allow-select-tf-ops; the device then needs the Flex delegate)")
    match = re.search(r"error: ([^\n]+)", text)
    first = match.group(1).strip() if match else (text.strip().splitlines() or [type(exc).__name__])[0]
    hint = ""
    if encoding.quantize == "int8":
        hint = "; an op may lack an int8 kernel — try --quantize dynamic or float16"
    return ExportError(f"TFLite conversion ({encoding.label}) failed: {first[:300]}{hint}")
