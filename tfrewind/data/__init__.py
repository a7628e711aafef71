"""Data: registered sources (``digits``, ``synthetic``, ``image_folder``), any tensorflow-datasets
image-classification dataset by name, and the shared ``tf.data`` pipeline."""

from __future__ import annotations

from ..config import DataConfig
from . import digits, image_folder, synthetic  # noqa: F401  (register entries)
from .pipeline import DataBundle, build_pipelines
from .registry import DATASETS, RawSplits
from .tfds_source import tfds_source


def load_data(config: DataConfig, seed: int = 0) -> DataBundle:
    """Load ``config.name`` — a registered source, else a tensorflow-datasets name."""
    source = DATASETS.get(config.name) if config.name in DATASETS else tfds_source
    return build_pipelines(source(config), config, seed)


__all__ = ["DATASETS", "DataBundle", "RawSplits", "load_data"]
