"""Models: the registry of architectures and loading of user model files."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Sequence

from .._keras import keras
from ..errors import ModelFileError
from . import applications, resnet_cifar, resnet_imagenet, small_cnn, vgg_cifar  # noqa: F401  (register entries)
from .files import MODEL_SUFFIXES, custom_objects, load_model_file, save_model_atomic
from .layers import PYTORCH_BN, BatchNorm
from .registry import MODELS


def is_model_path(name: str) -> bool:
    return Path(name).suffix in MODEL_SUFFIXES or "/" in name or Path(name).exists()


def build_model(name: str, input_shape: Sequence[int], num_classes: int, bn: BatchNorm | None = None) -> keras.Model:
    """Build a registered architecture, or load a user's model file and check it fits the data.

    ``bn``: batch-norm settings for the built-in models that take them (:func:`takes_batch_norm`;
    default PyTorch's); Keras applications and model files keep their own.
    """
    if not is_model_path(name):
        extra = {"bn": bn} if bn is not None and takes_batch_norm(name) else {}
        return MODELS.get(name)(tuple(input_shape), num_classes, **extra)
    model = load_model_file(name)
    check_model_fits(model, input_shape, num_classes, source=name)
    return model


def takes_batch_norm(name: str) -> bool:
    """Whether model ``name`` is a builder with a ``bn`` parameter (the paper's models), i.e. honours
    ``model.bn_momentum``/``model.bn_epsilon``."""
    return not is_model_path(name) and "bn" in inspect.signature(MODELS.get(name)).parameters


def check_model_fits(model: keras.Model, input_shape: Sequence[int], num_classes: int, source: str) -> None:
    got_in = tuple(model.input_shape[1:])
    got_out = model.output_shape[-1]
    if any(g is not None and g != w for g, w in zip(got_in, input_shape)) or len(got_in) != len(input_shape):
        raise ModelFileError(f"model {source!r} takes inputs of shape {got_in}, the data gives {tuple(input_shape)}")
    if got_out != num_classes:
        raise ModelFileError(f"model {source!r} has {got_out} outputs, the data has {num_classes} classes")


__all__ = ["MODELS", "PYTORCH_BN", "BatchNorm", "build_model", "check_model_fits", "custom_objects",
           "is_model_path", "load_model_file", "save_model_atomic", "takes_batch_norm"]
