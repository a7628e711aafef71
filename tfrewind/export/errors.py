"""Export errors: user-facing (:class:`~tfrewind.errors.TfrewindError`), one line, saying what to do.

Why here and not in ``tfrewind/errors.py``: they only exist because of export, and keeping them in
this package lets the export library evolve without touching the shared module.
"""

from __future__ import annotations

from ..errors import TfrewindError


class ExportError(TfrewindError):
    """An export could not be produced (bad options, missing calibration data, conversion failure)."""


class UnsupportedOpError(ExportError):
    """The model uses TensorFlow ops that TFLite's builtin op set cannot express."""


class ExportVerificationError(ExportError):
    """The exported file does not run, or disagrees with the Keras model beyond the tolerance."""


class DataMismatchError(ExportError):
    """The dataset's images do not fit the model's input (or none that fit were given for int8)."""
