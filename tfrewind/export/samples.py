"""Export's sample images: from a dataset whose images fit the model's input, else generated.

Why it matters: export runs the model on samples three times — the Keras reference, the LiteRT
check and int8 calibration — so they must have the model's input shape. A dataset fits when its
image shape equals the model's input (a free dimension matches anything) or equals it plus a
trailing channel of 1: tfmot's tutorial model takes 28×28 and reshapes to 28×28×1 itself, and
mnist's 28×28×1 images then feed it as 28×28. Without fitting data, seeded generated inputs still
prove the file computes what the Keras model does, but they carry no labels (no accuracy) and
would calibrate int8 on noise instead of images (refused).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np

from .._keras import keras
from ..data import DataBundle
from .errors import DataMismatchError, ExportError

GENERATED_IMAGES = 32


@dataclass
class Samples:
    """What verification runs on, and where it came from (for the report)."""

    images: np.ndarray
    labels: np.ndarray | None
    source: str
    """e.g. ``digits test split (360 images)`` or ``32 generated inputs (seeded N(0, 1))``."""
    notes: list[str]
    representative: Callable[[], Iterator[np.ndarray]] | None
    """Calibration images for int8 (None without fitting data)."""


def model_input_shape(model: keras.Model) -> tuple[int | None, ...]:
    """The model's input shape without the batch axis; one-input models only."""
    shape = model.input_shape
    if isinstance(shape, list):
        raise ExportError(f"the model has {len(shape)} inputs; export handles models with one input")
    return tuple(None if d is None else int(d) for d in shape[1:])


def fits(model_shape: tuple[int | None, ...], data_shape: tuple[int, ...]) -> bool:
    """Same shape (free model dims match anything), or the data has an extra trailing channel of 1."""
    if len(data_shape) == len(model_shape) + 1 and data_shape[-1] == 1:
        data_shape = data_shape[:-1]
    return len(data_shape) == len(model_shape) and all(m is None or m == d for m, d in zip(model_shape, data_shape))


def shape_text(shape: tuple[int | None, ...]) -> str:
    return "×".join("?" if d is None else str(d) for d in shape)


def _accepted(want: tuple[int | None, ...]) -> str:
    return f"{shape_text(want)} (or {shape_text(want)}×1)" if len(want) == 2 else shape_text(want)


def samples_for(model: keras.Model, data: DataBundle | None, limit: int | None, calibration_images: int,
                *, fallback: bool = False, quantize: str = "none") -> Samples:
    """Test images (and calibration images) of ``data`` shaped for ``model``; see module docs.

    ``data`` that does not fit is refused with one line, unless ``fallback`` (the CLI's default
    dataset, which the user did not choose): then generated inputs are used and the report says so.
    """
    want = model_input_shape(model)
    if data is not None and not fits(want, tuple(data.input_shape)):
        got = shape_text(tuple(data.input_shape))
        if not fallback:
            raise DataMismatchError(f"dataset {data.name!r} gives {got} images but the model takes {shape_text(want)}: "
                                    f"choose a --dataset (data=...) whose images are {_accepted(want)}")
        if quantize == "int8":
            raise DataMismatchError(f"--quantize int8 needs calibration images of the model's input shape "
                                    f"{shape_text(want)}, and the default dataset {data.name!r} gives {got}: choose a "
                                    f"--dataset whose images are {_accepted(want)}, or --quantize dynamic or float16")
        samples = _generated(want)
        samples.notes.append(f"the default dataset {data.name!r} gives {got} images, not the model's "
                             f"{shape_text(want)}: verified on {samples.source}, so no accuracy; for accuracy "
                             f"and int8 choose a --dataset whose images are {_accepted(want)}")
        return samples
    if data is None:
        samples = _generated(want)
        samples.notes.append(f"no dataset given: verified on {samples.source}, so no accuracy")
        return samples
    return _from_dataset(want, data, limit, calibration_images)


def _from_dataset(want: tuple[int | None, ...], data: DataBundle, limit: int | None,
                  calibration_images: int) -> Samples:
    xs, ys, count = [], [], 0
    for x, y in data.test:
        xs.append(np.asarray(x, np.float32))
        ys.append(np.asarray(y))
        count += len(xs[-1])
        if limit is not None and count >= limit:
            break
    images, labels = np.concatenate(xs)[:limit], np.concatenate(ys)[:limit]

    def representative() -> Iterator[np.ndarray]:
        for image in data.representative_images(calibration_images):
            yield _shaped(image, want)

    return Samples(_shaped(images, want), labels, f"{data.name} test split ({len(images)} images)", [],
                   representative)


def _generated(want: tuple[int | None, ...]) -> Samples:
    if any(d is None for d in want):
        raise DataMismatchError(f"the model's input shape {shape_text(want)} has free dimensions: pass --dataset "
                                "(data=...) so export has images to run it on")
    images = np.random.default_rng(0).normal(size=(GENERATED_IMAGES, *want)).astype(np.float32)
    return Samples(images, None, f"{GENERATED_IMAGES} generated inputs (seeded N(0, 1) noise)", [], None)


def _shaped(images: np.ndarray, want: tuple[int | None, ...]) -> np.ndarray:
    """Drop the trailing channel of 1 when the model's input has no channel axis (see :func:`fits`)."""
    return images[..., 0] if images.ndim == len(want) + 2 else images
