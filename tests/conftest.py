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


@pytest.fixture(scope="session")
def dense_digits_run(tmp_path_factory):
    """One finished dense run (``clirun.DENSE_RUN_ARGS``) for the tests that read it or start from it
    (``--pretrained``): trained once per session instead of once per test module. Tests that move
    files in it put them back."""
    from clirun import DENSE_RUN_ARGS, run_ok

    out = tmp_path_factory.mktemp("dense_digits") / "dense"
    run_ok([*DENSE_RUN_ARGS, "--out", str(out)])
    return out
