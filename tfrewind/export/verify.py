"""Run an exported ``.tflite`` with LiteRT and hold it against the Keras model it came from.

Why tolerances differ per quantization (measured on small_cnn/digits and ResNet-20/synthetic,
logits compared on real test images; "scale" is the largest |logit| of the Keras model):

* float32 (dense or sparse encoding): same arithmetic up to summation order → max |Δ| ≤ 1e-3·scale,
  top-1 agreement ≥ 0.99 (a near-tie may flip).
* float16 weights: ≤ 5e-2·scale, agreement ≥ 0.95.
* dynamic / int8: rounding everywhere; the max |Δ| bound (≤ 0.5·scale) only catches a broken file,
  the user-visible promise is top-1 agreement ≥ 0.9 with the float model.

Why ties count as agreement: a file cannot order two classes whose Keras outputs differ by less
than its own output resolution. Untrained application models (weights=None, 32×32) collapse:
EfficientNetB0's softmax is 0.1 for every class to within 1e-8, so Keras' argmax is float noise,
while the int8 file (softmax output step 1/256) holds exact ties and answers class 0. Exact
agreement was then the share of images where the noise picked class 0 — 0.896 on one random init,
0.703 on another — and the same export passed or failed with the init. So a different top-1
counts as agreeing when Keras scores the file's pick within the tie window of its own best: the
file's output step (the int8 output's quantization scale), and at least one int8 step of the output
range (scale/127) for the quantized modes or the max |Δ| tolerance for the float ones. Images whose
two best Keras outputs lie within the window are counted (``tied_images``): when most are, top-1
agreement says little and max |Δ| alone tests the file, which the report says.

A file that does not even load (e.g. sparse-encoded quantized models under LiteRT 2.3's default
XNNPack delegate fail in ``allocate_tensors``) raises :class:`LiteRTLoadError` so the caller can
choose another encoding; a file that runs but disagrees fails verification.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass

import numpy as np
from ai_edge_litert.interpreter import Interpreter

from .._keras import keras

TOLERANCES = {  # quantize → (max |Δ| relative to the largest |logit|, minimum top-1 agreement)
    "none": (1e-3, 0.99),
    "float16": (5e-2, 0.95),
    "dynamic": (0.5, 0.9),
    "int8": (0.5, 0.9),
}
TIE_WINDOWS = {  # quantize → outputs closer than this (relative to the largest |logit|) are tied
    "none": TOLERANCES["none"][0],
    "float16": TOLERANCES["float16"][0],
    "dynamic": 1 / 127,
    "int8": 1 / 127,
}


class LiteRTLoadError(RuntimeError):
    """LiteRT refused the file (allocate_tensors/invoke failed)."""


@dataclass
class Verification:
    images: int
    max_abs_diff: float
    logit_scale: float
    tolerance: float
    agreement: float
    """Top-1 agreement, a different pick within ``tie_window`` of Keras' best counting as agreeing."""
    min_agreement: float
    passed: bool
    exact_agreement: float = 1.0
    """Plain argmax equality (near-ties may go either way)."""
    tie_window: float = 0.0
    tied_images: int = 0
    """Images whose two best Keras outputs are within ``tie_window``: their top-1 is a coin toss."""

    @property
    def mostly_tied(self) -> bool:
        return self.images > 0 and self.tied_images > self.images // 2

    def to_dict(self) -> dict:
        return asdict(self)


class LiteRTModel:
    """A ``.tflite`` in LiteRT's interpreter, fed float images in batches of any size."""

    def __init__(self, content: bytes, num_threads: int | None = None):
        try:
            self.interpreter = Interpreter(model_content=content, num_threads=num_threads)
            self.interpreter.allocate_tensors()
        except (RuntimeError, ValueError) as exc:
            raise LiteRTLoadError(_first_line(exc)) from exc
        self._batch = int(self.interpreter.get_input_details()[0]["shape"][0])

    def predict(self, images: np.ndarray, batch_size: int = 64) -> np.ndarray:
        chunks = [self._run(images[i:i + batch_size]) for i in range(0, len(images), batch_size)]
        return np.concatenate(chunks, axis=0)

    def _run(self, batch: np.ndarray) -> np.ndarray:
        interp = self.interpreter
        inp = interp.get_input_details()[0]
        if len(batch) != self._batch:
            interp.resize_tensor_input(inp["index"], [len(batch), *inp["shape"][1:]])
            self._allocate()
            self._batch = len(batch)
            inp = interp.get_input_details()[0]
        interp.set_tensor(inp["index"], _to_input(batch, inp))
        try:
            interp.invoke()
        except (RuntimeError, ValueError) as exc:
            raise LiteRTLoadError(_first_line(exc)) from exc
        out = interp.get_output_details()[0]
        return _from_output(interp.get_tensor(out["index"]), out)

    def _allocate(self) -> None:
        try:
            self.interpreter.allocate_tensors()
        except (RuntimeError, ValueError) as exc:
            raise LiteRTLoadError(_first_line(exc)) from exc

    def latency_ms(self, image: np.ndarray, runs: int, warmup: int = 3) -> float:
        """Median wall time of one batch-1 inference (the median shrugs off other processes' noise)."""
        single = image[None, ...] if image.ndim == len(self.interpreter.get_input_details()[0]["shape"]) - 1 else image
        self._run(single)
        for _ in range(warmup):
            self.interpreter.invoke()
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            self.interpreter.invoke()
            times.append(time.perf_counter() - start)
        return 1000.0 * statistics.median(times)


def keras_predict(model: keras.Model, images: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """``predict``, not ``model(x)``: a model trained under MirroredStrategy cannot be called eagerly
    outside its scope, but ``predict`` works (see DESIGN.md)."""
    return np.asarray(model.predict(images, batch_size=batch_size, verbose=0), dtype=np.float32)


def compare(reference: np.ndarray, exported: np.ndarray, quantize: str,
            output_step: float | None = None) -> Verification:
    """Max |Δ| of the outputs and top-1 agreement up to ties, judged by the tolerance of ``quantize``.

    ``output_step``: the file's output resolution (an int8 output's quantization scale), if any.
    """
    rel_tol, min_agreement = TOLERANCES[quantize]
    reference = reference.reshape(len(reference), -1)
    exported = exported.reshape(len(exported), -1).astype(np.float32)
    scale = float(np.max(np.abs(reference))) if reference.size else 0.0
    max_diff = float(np.max(np.abs(reference - exported))) if reference.size else 0.0
    tolerance = rel_tol * max(scale, 1e-6) + 1e-6
    window = max(TIE_WINDOWS[quantize] * scale, output_step or 0.0)
    exact, agreement, tied = _top1_agreement(reference, exported, window)
    passed = bool(np.isfinite(max_diff) and max_diff <= tolerance and agreement >= min_agreement)
    return Verification(len(reference), max_diff, scale, tolerance, agreement, min_agreement, passed,
                        exact, window, tied)


def _top1_agreement(reference: np.ndarray, exported: np.ndarray, window: float) -> tuple[float, float, int]:
    """(exact agreement, agreement up to ties, images whose Keras top two lie within ``window``)."""
    if len(reference) == 0 or reference.shape[1] < 2:  # one output: no top-1 to disagree on
        return 1.0, 1.0, 0
    rows = np.arange(len(reference))
    best, picked = reference.argmax(axis=1), exported.argmax(axis=1)
    gap = reference[rows, best] - reference[rows, picked]
    top2 = np.sort(reference, axis=1)[:, -2:]
    tied = int(np.sum(top2[:, 1] - top2[:, 0] <= window))
    return float(np.mean(best == picked)), float(np.mean(gap <= window)), tied


def top1_accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    labels = labels.argmax(axis=-1) if labels.ndim > 1 else labels
    return float(np.mean(logits.reshape(len(logits), -1).argmax(axis=1) == labels.astype(np.int64)))


def _to_input(batch: np.ndarray, detail: dict) -> np.ndarray:
    """Quantize float images for an integer input (kept general: float I/O is our default)."""
    dtype = detail["dtype"]
    if np.issubdtype(dtype, np.floating):
        return batch.astype(dtype)
    scale, zero = detail["quantization"]
    info = np.iinfo(dtype)
    return np.clip(np.round(batch / scale + zero), info.min, info.max).astype(dtype)


def _from_output(values: np.ndarray, detail: dict) -> np.ndarray:
    if np.issubdtype(values.dtype, np.floating):
        return values.astype(np.float32)
    scale, zero = detail["quantization"]
    return ((values.astype(np.float32) - zero) * scale).astype(np.float32)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:300]
