"""Edge export: strip pruning wrappers, convert to TFLite (or .keras / SavedModel), verify the file
with LiteRT against the Keras model, and report sizes, kept sparsity, accuracy and latency.

Public API::

    report = export_model(model_or_path, out_dir, format="tflite", quantize="int8", data=bundle)
    print(format_table(report))
"""

from __future__ import annotations

from .convert import QUANTIZE_MODES
from .core import AUTO_SPARSE_THRESHOLD, FORMATS, export_model, resolve_model_path
from .errors import DataMismatchError, ExportError, ExportVerificationError, UnsupportedOpError
from .report import REPORT_FILE, ExportReport, FileReport, LayerReport, format_table
from .verify import TOLERANCES
from .xnnpack import XNNPackCheck, check_xnnpack_sparse

__all__ = ["AUTO_SPARSE_THRESHOLD", "FORMATS", "QUANTIZE_MODES", "REPORT_FILE", "TOLERANCES", "DataMismatchError",
           "ExportError", "ExportReport", "ExportVerificationError", "FileReport", "LayerReport", "UnsupportedOpError",
           "XNNPackCheck", "check_xnnpack_sparse", "export_model", "format_table", "resolve_model_path"]
