"""Models: the registry of architectures and loading of user model files."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from .._keras import keras
from ..errors import ModelFileError
from . import applications, resnet_cifar, resnet_imagenet, small_cnn, vgg_cifar  # noqa: F401  (register entries)
from .files import MODEL_SUFFIXES, custom_objects, load_model_file, save_model_atomic
from .registry import MODELS


def is_model_path(name: str) -> bool:
    return Path(name).suffix in MODEL_SUFFIXES or "/" in name or Path(name).exists()


def build_model(name: str, input_shape: Sequence[int], num_classes: int) -> keras.Model:
    """Build a registered architecture, or load a user's model file and check it fits the data."""
    if not is_model_path(name):
        return MODELS.get(name)(tuple(input_shape), num_classes)
    model = load_model_file(name)
    check_model_fits(model, input_shape, num_classes, source=name)
    return model


def check_model_fits(model: keras.Model, input_shape: Sequence[int], num_classes: int, source: str) -> None:
    got_in = tuple(model.input_shape[1:])
    got_out = model.output_shape[-1]
    if any(g is not None and g != w for g, w in zip(got_in, input_shape)) or len(got_in) != len(input_shape):
        raise ModelFileError(f"model {source!r} takes inputs of shape {got_in}, the data gives {tuple(input_shape)}")
    if got_out != num_classes:
        raise ModelFileError(f"model {source!r} has {got_out} outputs, the data has {num_classes} classes")


__all__ = ["MODELS", "build_model", "check_model_fits", "custom_objects", "is_model_path",
           "load_model_file", "save_model_atomic"]
