"""Shared fixtures. Importing tfrewind._keras first makes every test use tf_keras."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402

from tfrewind._keras import keras, tf  # noqa: E402,F401


@pytest.fixture(autouse=True)
def _clear_keras_session():
    """Fresh Keras name scopes and seeds per test, so layer names and results don't leak."""
    keras.backend.clear_session()
    keras.utils.set_random_seed(0)
    yield


@pytest.fixture(scope="session")
def digits_bundle():
    from tfrewind.config import DataConfig
    from tfrewind.data import load_data

    return load_data(DataConfig(name="digits", batch_size=64), seed=0)
