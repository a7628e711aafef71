"""``export_model``: strip, convert, verify with LiteRT, measure, report — nothing unverified ships.

Why this order: the encoding is chosen *by measurement*. Sparse encoding is tried first when the
weights are sparse enough to gain from it; if LiteRT cannot run the result (quantized + sparse
fails under LiteRT 2.3's default XNNPack delegate) or it disagrees with the Keras model, the next
encoding is tried, and the report lists every attempt and why it was or was not shipped.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from .._keras import keras
from ..choices import EXPORT_FORMATS
from ..data import DataBundle
from ..keras3.translate import as_tf_keras, is_keras3_model
from ..models import load_model_file
from ..pruning.wrappers import strip
from .convert import QUANTIZE_MODES, Encoding, convert
from .errors import ExportError, ExportVerificationError
from .files import gzip_size, write_bytes_atomic
from .report import REPORT_FILE, ExportReport, FileReport, LayerReport, write_report
from .samples import samples_for
from .stats import is_wrapped, layer_stats, parameter_counts, weight_sparsity
from .tf_formats import export_tf
from .tflite_file import TfliteInfo, inspect_tflite, match_layer
from .verify import LiteRTLoadError, LiteRTModel, Verification, compare, keras_predict, top1_accuracy
from .xnnpack import check_xnnpack_sparse

FORMATS = tuple(name for name in EXPORT_FORMATS if name != "none")
"""The formats a model can be exported to (the config's ``none`` means no export)."""
AUTO_SPARSE_THRESHOLD = 0.4
"""Sparse encoding by default from 40 % zeros in Conv/Dense kernels. Measured on small_cnn: at 30 %
the sparse file is 4 % smaller raw but larger gzipped; from 40 % it is smaller both ways (23 %
raw); below 30 % the converter encodes nothing sparsely anyway."""
FILE_SPARSITY_SOURCE = ("counted in the exported .tflite's constant weight buffers (sparse-encoded "
                        "tensors: stored values against the dense size; quantized tensors: int8 zeros)")


def export_model(model_or_path: keras.Model | str | os.PathLike, out_dir: str | os.PathLike, *,
                 format: str = "tflite", quantize: str = "none", sparse: bool | None = None,
                 data: DataBundle | None = None, xnnpack_sparse: bool = False,
                 allow_select_tf_ops: bool = False, calibration_images: int = 100,
                 eval_images: int | None = None, latency_runs: int = 50,
                 latency_threads: Sequence[int] = (1, 2), data_fallback: bool = False) -> ExportReport:
    """Export a (possibly pruned) model for the edge and prove the file runs; see module docs.

    ``model_or_path``: a tf_keras model (tfmot-wrapped or plain), a Keras 3 model, a ``.keras``/``.h5``
    file (tf_keras or Keras 3) or a run directory. ``data`` gives real test images for verification and accuracy, and calibration
    images for int8; without it verification uses seeded random inputs. ``data`` whose images do not
    fit the model's input is refused, unless ``data_fallback`` (a default dataset the user did not
    choose): then random inputs are used and the report says so (see :mod:`.samples`). Writes the
    model file and ``export.json`` into ``out_dir`` (atomically) and returns the report.
    """
    _check_options(format, quantize)
    name, model = _load(model_or_path)
    wrapped = is_wrapped(model)
    model = strip(model)
    stats = layer_stats(model)
    params, nonzero = parameter_counts(model)
    report = ExportReport(model=name, format=format, quantize=quantize, encoding="", encoding_reason="",
                          stripped_pruning_wrappers=wrapped, params=params, nonzero_params=nonzero,
                          weight_sparsity=weight_sparsity(stats), macs=sum(s.macs for s in stats),
                          nonzero_macs=sum(s.nonzero_macs for s in stats))
    report.layers = [LayerReport(s.name, s.kind, s.params, s.macs, s.sparsity, weight=s.weight,
                                 weight_size=s.weight_size) for s in stats]
    samples = samples_for(model, data, eval_images, calibration_images, fallback=data_fallback, quantize=quantize)
    report.verification_data, report.notes = samples.source, list(samples.notes)
    images = samples.images
    reference = keras_predict(model, images)
    labels = _labels_that_fit(samples.labels, reference, data, report)
    out_dir = Path(out_dir)
    if format == "tflite":
        calibration = (samples.representative, (id(data), calibration_images))
        _export_tflite(model, report, out_dir, sparse, calibration, allow_select_tf_ops, images, reference, labels)
        _measure_latency(report, out_dir, images, latency_runs, latency_threads)
    else:
        export_tf(model, report, out_dir, format, images, reference, labels)
    if labels is not None:
        report.keras_accuracy = top1_accuracy(reference, labels)
        report.test_images = len(labels)
    if xnnpack_sparse:
        report.xnnpack_sparse = check_xnnpack_sparse(model, stats).to_dict()
    write_report(report, out_dir)
    return report


def resolve_model_path(path: str | os.PathLike) -> Path:
    """A model file as given, or in a run directory the model of its last completed stage.

    Why "last completed by time": stage names belong to the pipeline; a stage is complete when its
    ``metrics.json`` exists (see :mod:`tfrewind.rundir`), so the newest one is the latest result.
    Earlier exports (directories holding ``export.json``) are skipped: they are copies, not results.
    """
    path = Path(path)
    if not path.is_dir():
        return path
    done = [p for p in path.glob("*/model.keras")
            if (p.parent / "metrics.json").exists() and not (p.parent / REPORT_FILE).exists()]
    if not done:
        raise ExportError(f"{str(path)!r} holds no completed stage with a model.keras; "
                          "give a run directory or a .keras/.h5 model file")
    return max(done, key=lambda p: (p.parent / "metrics.json").stat().st_mtime)


# ----------------------------------------------------------------------------- TFLite


def _export_tflite(model, report: ExportReport, out_dir: Path, sparse: bool | None,
                   calibration: tuple[Callable | None, object], allow_select: bool, images: np.ndarray,
                   reference: np.ndarray, labels: np.ndarray | None) -> None:
    """``calibration``: (int8 calibration images, the key they are cached under)."""
    quantize = report.quantize
    want_sparse, reason = _sparse_choice(sparse, report.weight_sparsity)
    candidates = [Encoding(quantize, s, allow_select) for s in ([True, False] if want_sparse else [False])]
    representative, calibration_key = calibration
    dense_float = convert(model, Encoding("none", False, allow_select))
    report.reference = FileReport(None, len(dense_float), gzip_size(dense_float))
    for encoding in candidates:
        content = convert(model, encoding, representative, calibration_key=calibration_key)
        info = inspect_tflite(content)
        outcome = _try_encoding(content, info, encoding, images, reference, labels, report)
        report.attempts.append({"encoding": encoding.label, "outcome": outcome})
        if outcome == "shipped":
            report.encoding_reason = reason if encoding.sparse == want_sparse else _fallback_reason(report.attempts)
            _ship_tflite(content, info, encoding, report, out_dir)
            return
    raise ExportVerificationError(f"no encoding of the model passed verification: "
                                  f"{'; '.join(a['encoding'] + ' → ' + a['outcome'] for a in report.attempts)}"
                                  f"{_quantize_hint(quantize)}")


def _try_encoding(content: bytes, info: TfliteInfo, encoding: Encoding, images: np.ndarray,
                  reference: np.ndarray, labels: np.ndarray | None, report: ExportReport) -> str:
    """Run the file in LiteRT and compare; return ``shipped`` or why not (also fills the report)."""
    if info.flex_ops:
        report.verification = {}
        report.verified_with = "not verified"
        report.notes.append(f"Select-TF op(s) {', '.join(info.flex_ops)} need the Flex delegate, which this "
                            "machine's LiteRT lacks: the file was NOT run here; test it on the device")
        return "shipped"
    try:
        outputs = LiteRTModel(content).predict(images)
    except LiteRTLoadError as exc:
        return f"does not run in LiteRT ({exc})"
    check = compare(reference, outputs, encoding.quantize, info.output_step)
    report.verification = check.to_dict()
    report.verified_with = _litert_label()
    if not check.passed:
        return (f"disagrees with Keras (top-1 agreement {check.agreement:.3f}, need ≥ {check.min_agreement}; "
                f"max |Δ| {check.max_abs_diff:.3g}, allowed {check.tolerance:.3g})")
    if check.mostly_tied:
        report.notes.append(_tied_note(check))
    if labels is not None:
        report.accuracy = top1_accuracy(outputs, labels)
    return "shipped"


def _tied_note(check: Verification) -> str:
    return (f"top-1 agreement says little here: on {check.tied_images} of {check.images} images the model's two "
            f"highest outputs differ by ≤ {check.tie_window:.2g} (below what the file resolves), so their order "
            "is a coin toss (an untrained model?); the file was held to max |Δ| "
            f"{check.max_abs_diff:.2g} ≤ {check.tolerance:.2g}")


def _ship_tflite(content: bytes, info: TfliteInfo, encoding: Encoding, report: ExportReport, out_dir: Path) -> None:
    suffix = "" if encoding.quantize == "none" else f"_{encoding.quantize}"
    path = write_bytes_atomic(out_dir / f"model{suffix}.tflite", content)
    report.files = [FileReport(str(path), len(content), gzip_size(content))]
    report.size_ratio = report.files[0].bytes / report.reference.bytes
    report.gzip_ratio = report.files[0].gzip_bytes / report.reference.gzip_bytes
    report.ops = dict(sorted(info.op_counts.items()))
    report.select_tf_ops = info.flex_ops
    actually_sparse = info.sparse_tensors > 0
    report.encoding = Encoding(encoding.quantize, actually_sparse, encoding.allow_select_tf_ops).label
    if encoding.sparse and not actually_sparse:
        report.notes.append("sparse encoding was on but no tensor was sparse enough for the converter "
                            "to encode it (it needs roughly ≥ 30 % zeros per tensor)")
    _fill_file_sparsity(report, info)


def _fill_file_sparsity(report: ExportReport, info: TfliteInfo) -> None:
    """Pair Keras layers with the file's weight tensors: by name, else by order and size.

    Why the fallback: the converter sometimes names the last layer's weights after the graph
    output (``StatefulPartitionedCall:01``); weight ops keep the model's order, so the unmatched
    leftovers pair up in sequence when their sizes agree. A tensor pairs only with the kernel the
    layer's sparsity counts (:func:`_same_weight`): a separable conv's depthwise tensor carries the
    layer's name too, but pruning masks its pointwise one.
    """
    by_name = {layer.name: layer for layer in report.layers}
    found: dict[str, object] = {}
    leftovers = []
    for weight in info.weights:
        layer = match_layer(weight.tensor, list(by_name))
        if layer is not None and layer not in found and _same_weight(by_name[layer], weight):
            found[layer] = weight
        else:
            leftovers.append(weight)
    unmatched = [layer for layer in report.layers if layer.name not in found]
    leftovers = [w for w in leftovers if match_layer(w.tensor, list(by_name)) is None]
    for layer, weight in zip(unmatched, leftovers):
        if _same_weight(layer, weight):
            found[layer.name] = weight
    for layer in report.layers:
        weight = found.get(layer.name)
        if weight is not None:
            layer.file_sparsity, layer.file_dtype, layer.sparse_encoded = (weight.sparsity, weight.dtype,
                                                                           weight.sparse_encoded)
    report.file_sparsity_source = FILE_SPARSITY_SOURCE


def _same_weight(layer: LayerReport, weight) -> bool:
    """The file tensor holds the layer's counted kernel: same size, depthwise op only for a depthwise kernel."""
    depthwise = layer.weight == "depthwise_kernel"
    return weight.size == layer.weight_size and (weight.op == "DEPTHWISE_CONV_2D") == depthwise


def _measure_latency(report: ExportReport, out_dir: Path, images: np.ndarray, runs: int,
                     threads: Sequence[int]) -> None:
    path = report.main_file
    if runs <= 0 or path is None or report.select_tf_ops:
        return
    content = path.read_bytes()
    for count in threads:
        report.latency_ms[str(count)] = LiteRTModel(content, num_threads=count).latency_ms(images[0], runs)


def _sparse_choice(sparse: bool | None, sparsity: float) -> tuple[bool, str]:
    if sparse is not None:
        return sparse, f"sparse encoding {'requested' if sparse else 'turned off'}"
    on = sparsity >= AUTO_SPARSE_THRESHOLD
    relation = "≥" if on else "<"
    return on, f"automatic: kernel sparsity {100 * sparsity:.1f} % {relation} {100 * AUTO_SPARSE_THRESHOLD:.0f} %"


def _fallback_reason(attempts: list[dict[str, str]]) -> str:
    failed = attempts[0]
    return f"fallback: {failed['encoding']} {failed['outcome']}"


def _quantize_hint(quantize: str) -> str:
    if quantize in ("int8", "dynamic"):
        return "; try more calibration images, a trained model, or --quantize float16"
    return ""


# ----------------------------------------------------------------------------- inputs


def _check_options(format: str, quantize: str) -> None:
    if format not in FORMATS:
        raise ExportError(f"format: {format!r} is not allowed; choose one of: {', '.join(FORMATS)}")
    if quantize not in QUANTIZE_MODES:
        raise ExportError(f"quantize: {quantize!r} is not allowed; choose one of: {', '.join(QUANTIZE_MODES)}")
    if format != "tflite" and quantize != "none":
        raise ExportError(f"quantize {quantize!r} applies to --format tflite only, not {format}")


def _load(model_or_path) -> tuple[str, keras.Model]:
    if isinstance(model_or_path, keras.Model) or is_keras3_model(model_or_path):
        return model_or_path.name, as_tf_keras(model_or_path)
    path = resolve_model_path(model_or_path)
    return str(path), load_model_file(path)


def _labels_that_fit(labels: np.ndarray | None, reference: np.ndarray, data: DataBundle | None,
                     report: ExportReport) -> np.ndarray | None:
    """Labels only score a model whose outputs are the dataset's classes (else: no accuracy, a note)."""
    outputs = int(np.prod(reference.shape[1:]))
    if labels is None or data is None or outputs == data.num_classes:
        return labels
    report.notes.append(f"the model has {outputs} outputs but {data.name!r} has {data.num_classes} classes: "
                        "no accuracy (verification compares the file with the Keras model only)")
    return None


def _litert_label() -> str:
    try:
        from importlib.metadata import version
        return f"ai_edge_litert {version('ai-edge-litert')} Interpreter (default XNNPack delegate)"
    except Exception:  # noqa: BLE001 - a label only
        return "ai_edge_litert Interpreter (default XNNPack delegate)"
