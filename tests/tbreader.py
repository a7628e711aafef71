"""Read TensorBoard event files back with TensorBoard's own reader (as a user's TensorBoard would)."""

from __future__ import annotations

from pathlib import Path

import tensorflow as tf
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator


def read_scalars(log_dir: str | Path) -> dict[str, list[tuple[int, float]]]:
    """All scalar series in ``log_dir`` as ``{tag: [(step, value), ...]}`` (TF2 writes tensors)."""
    accumulator = EventAccumulator(str(log_dir), size_guidance={"tensors": 0, "scalars": 0})
    accumulator.Reload()
    series = {tag: [(e.step, float(tf.make_ndarray(e.tensor_proto))) for e in accumulator.Tensors(tag)]
              for tag in accumulator.Tags()["tensors"]}
    series.update({tag: [(e.step, e.value) for e in accumulator.Scalars(tag)]
                   for tag in accumulator.Tags()["scalars"]})
    return series
