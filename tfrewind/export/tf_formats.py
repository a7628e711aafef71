"""Export to Keras (``.keras``, tf_keras or Keras 3) or a SavedModel: write the stripped model, reload
it, check it agrees.

Why apart from the TFLite path (:mod:`tfrewind.export.core`): these formats keep every weight as
float32 and need no encoding choice; only the reload-and-compare step is shared. ``keras3`` writes a
``.keras`` file Keras 3 loads (:mod:`tfrewind.keras3`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .._keras import tf
from ..models import load_model_file, save_model_atomic
from .errors import ExportVerificationError
from .files import path_sizes, write_dir_atomic
from .report import ExportReport, FileReport
from .verify import compare, keras_predict, top1_accuracy


def export_tf(model, report: ExportReport, out_dir: Path, format: str, images: np.ndarray,
              reference: np.ndarray, labels: np.ndarray | None) -> None:
    """Write a stripped ``.keras`` or SavedModel, reload it, and check it computes the same thing."""
    if format == "keras":
        path = save_model_atomic(model, out_dir / "model.keras")
        outputs = keras_predict(load_model_file(path), images)
        report.verified_with = "reloaded with tf_keras (safe_mode)"
    elif format == "keras3":
        path, outputs = _export_keras3(model, out_dir / "model.keras", images)
        report.verified_with = "reloaded with Keras 3 (keras.saving.load_model, safe_mode)"
    else:
        path = write_dir_atomic(out_dir / "saved_model",
                                lambda tmp: model.save(tmp, save_format="tf", include_optimizer=False))
        outputs = saved_model_predict(path, images)
        report.verified_with = "reloaded with tf.saved_model.load (serving_default)"
    report.encoding, report.encoding_reason = "float32", f"{format} stores every weight as float32"
    size, gz = path_sizes(path)
    report.files = [FileReport(str(path), size, gz)]
    check = compare(reference, outputs, "none")
    report.verification = check.to_dict()
    if not check.passed:
        raise ExportVerificationError(f"the reloaded {format} model disagrees with the original "
                                      f"(max |Δ| {check.max_abs_diff:.3g}, top-1 agreement {check.agreement:.3f})")
    if labels is not None:
        report.accuracy = top1_accuracy(outputs, labels)


def _export_keras3(model, path: Path, images: np.ndarray) -> tuple[Path, np.ndarray]:
    """Write a Keras 3 ``.keras`` (checked ≤ 1e-5 on seeded inputs by :func:`~tfrewind.keras3.save_keras3`)
    and return its outputs on ``images``, which the caller holds to the float rule of every export.

    Why not 1e-5 on the test images too: a barely trained net amplifies the two APIs' rounding
    differences. Measured on a 2-epoch MobileNetV2 whose stale batch-norm statistics push
    pre-activations to ~1,500: 2.7e-4 against outputs of 5.3 — while tf_keras' own ``predict`` and
    ``model(x)`` of that one model differ by 1.1e-4.
    """
    from ..keras3.files import save_keras3
    from ..keras3.sides import import_keras3

    path, _ = save_keras3(model, path)
    reloaded = import_keras3().saving.load_model(path, compile=False, safe_mode=True)
    return path, np.asarray(reloaded.predict(images, verbose=0), dtype=np.float32)


def saved_model_predict(path: Path, images: np.ndarray, batch_size: int = 64) -> np.ndarray:
    serve = tf.saved_model.load(str(path)).signatures["serving_default"]
    (input_name,) = serve.structured_input_signature[1].keys()
    chunks = []
    for start in range(0, len(images), batch_size):
        result = serve(**{input_name: tf.constant(images[start:start + batch_size])})
        chunks.append(np.asarray(next(iter(result.values()))))
    return np.concatenate(chunks, axis=0)


__all__ = ["export_tf", "saved_model_predict"]
