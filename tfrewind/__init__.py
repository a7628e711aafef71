"""tfrewind: prune tf_keras models and retrain them the way that matters (Le & Hua, ICLR 2021).

The public API is imported lazily so that ``tfrewind --help`` and config validation do not pay for
importing TensorFlow.
"""

from __future__ import annotations

__version__ = "0.1.0"

_LAZY = {
    "RunConfig": "config", "load_config": "config",
    "train": "pipeline", "RunResult": "pipeline",
    "load_data": "data", "build_model": "models",
    "PaperSGD": "optim",
    "prune": "pruning", "strip": "pruning",
    "build_retrain_schedule": "retraining", "OriginalRecord": "retraining",
    "export_model": "export",
    "run_compare": "compare", "load_compare_config": "compare", "report": "compare",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        module = importlib.import_module(f".{_LAZY[name]}", __name__)
        return getattr(module, name)
    raise AttributeError(f"module 'tfrewind' has no attribute {name!r}")


__all__ = ["__version__", *_LAZY]
