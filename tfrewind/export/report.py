"""The export report: one dataclass, written as ``export.json``, printable as a table.

Why both sizes and gzip sizes next to a dense float reference: a pruned model's zeros only shrink
the raw file with sparse encoding, but they always shrink the compressed download; the reference
(the same model converted as plain float32, never written to disk) makes the ratios honest.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..io import write_json_atomic

REPORT_FILE = "export.json"


@dataclass
class FileReport:
    path: str | None
    """None for the in-memory dense float reference."""
    bytes: int
    gzip_bytes: int


@dataclass
class LayerReport:
    name: str
    kind: str
    params: int
    macs: int
    keras_sparsity: float
    """Zeros in the Keras kernel ``weight`` (after stripping pruning wrappers)."""
    file_sparsity: float | None = None
    """Zeros kept in the exported .tflite weight tensor (read back from the file); None if not found."""
    file_dtype: str | None = None
    sparse_encoded: bool = False
    weight: str = "kernel"
    """The kernel the sparsities count: the one pruning masks (``pointwise_kernel`` of a separable conv)."""
    weight_size: int = 0


@dataclass
class ExportReport:
    model: str
    format: str
    quantize: str
    encoding: str
    """What was shipped, e.g. ``float32, sparse encoding``."""
    encoding_reason: str
    """Why this encoding: requested, automatic (weight sparsity vs threshold) or fallback."""
    attempts: list[dict[str, str]] = field(default_factory=list)
    """Every encoding tried, in order, with its outcome (``shipped`` or why not)."""
    stripped_pruning_wrappers: bool = False
    params: int = 0
    nonzero_params: int = 0
    weight_sparsity: float = 0.0
    """Zeros over all Conv/Dense kernels."""
    macs: int = 0
    """Multiply-accumulates per image (Conv/Dense), dense."""
    nonzero_macs: int = 0
    files: list[FileReport] = field(default_factory=list)
    reference: FileReport | None = None
    """The same model as a dense float32 .tflite (not written), for size comparison."""
    size_ratio: float | None = None
    gzip_ratio: float | None = None
    layers: list[LayerReport] = field(default_factory=list)
    file_sparsity_source: str = ""
    ops: dict[str, int] = field(default_factory=dict)
    select_tf_ops: list[str] = field(default_factory=list)
    verification: dict[str, Any] = field(default_factory=dict)
    verified_with: str = ""
    verification_data: str = ""
    """The images verification ran on: a dataset's test split, or generated inputs (no labels)."""
    test_images: int = 0
    accuracy: float | None = None
    """Top-1 of the exported file on the test split (LiteRT for .tflite)."""
    keras_accuracy: float | None = None
    """Top-1 of the Keras model on the same images."""
    latency_ms: dict[str, float] = field(default_factory=dict)
    """Median batch-1 LiteRT latency per image, keyed by thread count."""
    xnnpack_sparse: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def main_file(self) -> Path | None:
        return Path(self.files[0].path) if self.files and self.files[0].path else None


def write_report(report: ExportReport, out_dir: str | os.PathLike) -> Path:
    return write_json_atomic(Path(out_dir) / REPORT_FILE, report.to_dict())


def format_table(report: ExportReport) -> str:
    """A plain-text summary for the terminal: the numbers a user decides on, then per-layer sparsity."""
    rows = [("model", report.model), ("format", report.format),
            ("encoding", f"{report.encoding} ({report.encoding_reason})"),
            ("parameters", f"{report.params:,} ({report.nonzero_params:,} non-zero, "
                           f"kernel sparsity {_pct(report.weight_sparsity)})"),
            ("MACs / image", f"{report.macs:,} ({report.nonzero_macs:,} on non-zero weights)")]
    for item in report.files:
        rows.append(("file", f"{item.path}: {_kb(item.bytes)}, gzip {_kb(item.gzip_bytes)}"))
    if report.reference is not None:
        rows.append(("dense float ref", f"{_kb(report.reference.bytes)}, gzip {_kb(report.reference.gzip_bytes)}"))
        rows.append(("size vs ref", f"{_ratio(report.size_ratio)} raw, {_ratio(report.gzip_ratio)} gzip"))
    check = report.verification
    if check:
        ties = f", {check['tied_images']} near-tied" if check.get("tied_images") else ""
        rows.append(("verification", f"{'passed' if check.get('passed') else 'FAILED'}: top-1 agreement "
                                     f"{check['agreement']:.3f} (≥ {check['min_agreement']}), max |Δ| "
                                     f"{check['max_abs_diff']:.2e} (≤ {check['tolerance']:.2e}) on "
                                     f"{check['images']} images{ties}"))
    if report.verification_data:
        rows.append(("verified on", report.verification_data))
    if report.accuracy is not None:
        keras_acc = f" (Keras {report.keras_accuracy:.4f})" if report.keras_accuracy is not None else ""
        rows.append(("test accuracy", f"{report.accuracy:.4f}{keras_acc} on {report.test_images} images"))
    for threads, ms in report.latency_ms.items():
        rows.append((f"latency {threads} thr", f"{ms:.3f} ms / image (median, batch 1)"))
    if report.xnnpack_sparse is not None:
        x = report.xnnpack_sparse
        rows.append(("XNNPack sparse", "compatible" if x["compatible"] else f"not compatible: {x['problem']}"))
    rows.extend(("note", note) for note in report.notes)
    width = max(len(key) for key, _ in rows)
    lines = [f"{key:<{width}}  {value}" for key, value in rows]
    if report.layers:
        lines += ["", _layer_table(report.layers)]
    return "\n".join(lines)


def _layer_table(layers: list[LayerReport]) -> str:
    header = ("layer", "kind", "params", "sparsity (Keras)", "sparsity (file)", "dtype", "sparse-enc")
    body = [(layer.name, layer.kind, f"{layer.params:,}", _pct(layer.keras_sparsity),
             _pct(layer.file_sparsity) if layer.file_sparsity is not None else "-",
             layer.file_dtype or "-", "yes" if layer.sparse_encoded else "no") for layer in layers]
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in [header, *body])


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f} %"


def _kb(size: int) -> str:
    return f"{size / 1024:,.1f} KiB"


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}×"
