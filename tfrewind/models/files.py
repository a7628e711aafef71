"""Loading and saving user model files safely.

Why so careful: a model file is user input. It may be missing, truncated, or carry Lambda code;
each gets a one-line error saying what to do, and loading always uses ``safe_mode`` (no arbitrary
code) and knows tfmot's wrapper classes. A Keras 3 file (which tfmot cannot prune) is translated to
tf_keras and checked against the original (:mod:`tfrewind.keras3`), or refused naming the layer.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

from .._keras import keras
from ..errors import ModelFileError
from ..io import write_with_atomic
from ..keras3.files import is_keras3_file, load_keras3_file
from .. import serialization
from .layers import CUSTOM_OBJECTS

MODEL_SUFFIXES = (".keras", ".h5")


def custom_objects() -> dict:
    """Everything a tfrewind model file may reference: our layers, tfmot's wrappers, our schedules,
    and the layers tf_keras' own applications define without registering them (ConvNeXt's
    ``LayerScale``/``StochasticDepth``: without them a saved ConvNeXt does not reload)."""
    return {**_application_layers(), **CUSTOM_OBJECTS, **serialization.custom_objects()}


def _application_layers() -> dict:
    from tf_keras.src.applications import convnext

    return {"LayerScale": convnext.LayerScale, "StochasticDepth": convnext.StochasticDepth}


def load_model_file(path: str | os.PathLike) -> keras.Model:
    """Load a tf_keras ``.keras``/``.h5`` model (a Keras 3 one translated), refusing anything else clearly."""
    path = Path(path)
    if not path.exists():
        raise ModelFileError(f"model file {str(path)!r} does not exist")
    if path.suffix not in MODEL_SUFFIXES:
        raise ModelFileError(f"model file {str(path)!r}: expected a .keras or .h5 tf_keras model")
    if path.suffix == ".keras":
        _check_keras_archive(path)
    if is_keras3_file(path):
        return load_keras3_file(path)
    try:
        with keras.utils.custom_object_scope(custom_objects()):
            if path.suffix == ".keras":
                return keras.models.load_model(path, compile=False, safe_mode=True)
            return keras.models.load_model(path, compile=False)
    except Exception as exc:  # noqa: BLE001 - any failure here means an unusable file
        reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise ModelFileError(f"model file {str(path)!r} could not be loaded ({reason}); "
                             "is it a complete tf_keras model file?") from exc


def _check_keras_archive(path: Path) -> None:
    try:
        with zipfile.ZipFile(path) as archive:
            json.loads(archive.read("metadata.json"))
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError, OSError):
        raise ModelFileError(f"model file {str(path)!r} is corrupt or not a .keras archive") from None


def save_model_atomic(model: keras.Model, path: str | os.PathLike) -> Path:
    """Save to a temporary file in the same directory, then rename: never a half-written model."""
    path = Path(path)

    def save(tmp: str) -> None:
        model.save(tmp, include_optimizer=False) if path.suffix == ".h5" else model.save(tmp)

    return write_with_atomic(path, save, suffix=path.suffix)
