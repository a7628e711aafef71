"""Keras 3 users: models in and out of tfrewind, and the paper's schedules for Keras 3 ``model.fit``.

Translation (needs tf_keras, which tfmot prunes)::

    from tfrewind.keras3 import to_tf_keras, to_keras3
    legacy = to_tf_keras(keras3_model)        # architecture + weights, outputs checked (≤ 1e-5)
    model = to_keras3(tfrewind.strip(pruned))  # back to Keras 3, checked, pruned zeros kept

Schedules, callbacks and optimizer (Keras 3 only: importing them loads neither tf_keras nor tfmot)::

    from tfrewind.keras3 import MomentumScheduler, OneCycleLR, OneCycleMomentum, PaperSGD

Names load on first use, so the schedules never pay for (or switch on) tf_keras.
"""

from __future__ import annotations

_LAZY = {
    "to_tf_keras": "translate", "to_keras3": "translate", "is_keras3_model": "translate",
    "is_keras3_file": "files", "load_keras3_file": "files", "save_keras3": "files",
    "ConstantLR": "schedules", "StepDecayLR": "schedules", "CosineLR": "schedules", "OneCycleLR": "schedules",
    "OneCycleMomentum": "schedules", "OffsetLR": "schedules", "ScaledLRRestart": "schedules",
    "read_original": "schedules", "retraining_schedule": "schedules",
    "PaperSGD": "optim", "set_momentum": "optim",
    "MomentumScheduler": "callbacks",
}


def __getattr__(name: str):
    if name == "OriginalSchedule":
        from ..schedule_core import OriginalSchedule

        return OriginalSchedule
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'tfrewind.keras3' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY, "OriginalSchedule"})


__all__ = ["OriginalSchedule", *_LAZY]
