"""Per-layer sparsity and size reports: JSON-able dicts for ``metrics.json`` and the CLI.

Why one place: the pipeline, the invariant callbacks and the tests all ask "how sparse is this
model, layer by layer?", for wrapped and stripped models alike; the answer must be computed the
same way everywhere (zeros of the kernel as the model computes with it).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._keras import keras
from . import flops
from . import wrappers as W


def sparsity_report(model: keras.Model) -> dict[str, Any]:
    """Per-layer and overall sparsity of every prunable layer, wrapped or not.

    Each row counts the one weight tfmot prunes in the layer (:func:`.wrappers.prunable_weights`:
    the pointwise kernel of a separable conv), so the retrain and export checks compare like
    with like. ``{"layers": [{"layer", "shape", "size", "zeros", "sparsity", "wrapped"}], "size",
    "zeros", "sparsity"}``; overall sparsity is zeros over all those weights' entries.
    """
    wrapped = W.wrappers(model)
    rows = []
    for name, k in W.effective_kernels(model).items():
        zeros = int(k.size - np.count_nonzero(k))
        rows.append({"layer": name, "shape": list(k.shape), "size": int(k.size), "zeros": zeros,
                     "sparsity": zeros / k.size if k.size else 0.0, "wrapped": name in wrapped})
    size = sum(r["size"] for r in rows)
    zeros = sum(r["zeros"] for r in rows)
    return {"layers": rows, "size": size, "zeros": zeros, "sparsity": zeros / size if size else 0.0}


def size_report(before: keras.Model, after: keras.Model) -> dict[str, Any]:
    """Parameters, non-zero parameters and MACs (see :mod:`.flops`) before and after pruning."""
    return {
        "params_before": flops.count_params(before),
        "params_after": flops.count_params(after),
        "nonzero_params_before": flops.count_nonzero(before),
        "nonzero_params_after": flops.count_nonzero(after),
        "flops_before": flops.total_macs(before),
        "flops_after": flops.total_macs(after),
        "sparse_flops_after": flops.sparse_macs(after),
        "flops_unit": "multiply-accumulates",
    }
