"""Keras 3 model files: recognise them, load them as tf_keras, write a tf_keras model as one.

Why a scan before loading: Keras 3 fails on a class it cannot find with a message about
registration, and refuses a ``Lambda`` in safe mode with a paragraph; reading the archive's config
first names the layer the translation cannot take, in one line, before anything is built.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import Any, Iterator

from ..errors import ModelFileError, TranslationError
from ..io import write_with_atomic
from .layer_config import CODE_LAYERS
from .sides import sides
from .translate import to_keras3, to_tf_keras
from .weights import allowed, max_output_difference, sample_inputs


def keras_version(path: str | os.PathLike) -> str | None:
    """The Keras version a ``.keras``/``.h5`` file was written by, or ``None`` if it does not say."""
    path = Path(path)
    try:
        if path.suffix == ".keras":
            with zipfile.ZipFile(path) as archive:
                return str(json.loads(archive.read("metadata.json")).get("keras_version", "")) or None
        if path.suffix == ".h5":
            import h5py

            with h5py.File(path, "r") as handle:
                version = handle.attrs.get("keras_version")
            return version.decode() if isinstance(version, bytes) else (str(version) if version else None)
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return None
    return None


def is_keras3_file(path: str | os.PathLike) -> bool:
    """Whether Keras 3 wrote this model file (its metadata says ``3.x``)."""
    return (keras_version(path) or "").startswith("3.")


def load_keras3_file(path: str | os.PathLike):
    """Load a Keras 3 ``.keras``/``.h5`` (safe mode) and return its verified tf_keras twin."""
    path = Path(path)
    _refuse_code_and_custom_layers(path)
    keras3, _ = sides()
    try:
        model = keras3.api.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as exc:  # noqa: BLE001 - any failure here means an unusable file
        reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise ModelFileError(f"model file {str(path)!r}: Keras 3 could not load it ({reason})") from exc
    try:
        return to_tf_keras(model)
    except TranslationError as exc:
        raise TranslationError(f"model file {str(path)!r}: {exc}") from None


def save_keras3(model, path: str | os.PathLike) -> tuple[Path, float]:
    """Write a tf_keras model (no pruning wrappers) as a Keras 3 ``.keras`` file, atomically.

    The file is reloaded with Keras 3 and its outputs compared with ``model``'s on sample inputs
    (:func:`~tfrewind.keras3.weights.allowed`); returns the path and that difference.
    """
    keras3, _ = sides()
    translated = to_keras3(model)
    path = write_with_atomic(path, translated.save, suffix=".keras")
    reloaded = keras3.api.saving.load_model(path, compile=False, safe_mode=True)
    difference, scale = max_output_difference(model, reloaded, sample_inputs(model))
    if not difference <= allowed(scale):
        raise TranslationError(f"{str(path)!r} reloaded in Keras 3 differs from the tf_keras model by "
                               f"{difference:.3g} (allowed {allowed(scale):.3g})")
    return path, difference


def _refuse_code_and_custom_layers(path: Path) -> None:
    if path.suffix != ".keras":
        return
    try:
        with zipfile.ZipFile(path) as archive:
            config = json.loads(archive.read("config.json"))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        raise ModelFileError(f"model file {str(path)!r} is corrupt or not a .keras archive") from None
    for entry in _layer_entries(config.get("config", {})):
        module, name, kind = str(entry.get("module") or ""), entry.get("name") or "?", entry.get("class_name")
        if kind in CODE_LAYERS:
            raise TranslationError(f"model file {str(path)!r}: layer {name!r} is a {kind} holding Python code, "
                                   "which has no safe tf_keras counterpart; replace it with a standard Keras layer")
        if not module.startswith("keras"):
            raise TranslationError(f"model file {str(path)!r}: layer {name!r} is a custom class "
                                   f"{module + '.' if module else ''}{kind}, which has no tf_keras counterpart; "
                                   "only standard Keras layers can be translated")


def _layer_entries(config: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every layer record of a model config, nested models' layers included."""
    for entry in config.get("layers", []) if isinstance(config, dict) else []:
        yield entry
        if isinstance(entry.get("config"), dict) and "layers" in entry["config"]:
            yield from _layer_entries(entry["config"])


__all__ = ["is_keras3_file", "keras_version", "load_keras3_file", "save_keras3"]
