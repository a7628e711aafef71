"""Every name a user can choose, in one light module: the registries the config and the CLI read.

Why here and not next to the builders: the builders import TensorFlow, and ``tfrewind --help``,
``train --help`` and config validation must not wait for it. The built-in names are declared
here once; the module named in each comment registers a builder under each of them (see
:class:`~tfrewind.registry.Registry`). A name registered at run time (a plugin, a test) joins the
choices of the CLI, its ``--help`` and the config's validation without any other change.
"""

from __future__ import annotations

from typing import Any

from .registry import Registry

ORIGINAL_SCHEDULES: Registry[Any] = Registry(
    "original schedule", ordered=True, declare=("step", "cosine", "one_cycle"))
"""LR shapes of original training: builders in :mod:`tfrewind.training`."""

RETRAIN_SCHEDULES: Registry[Any] = Registry(
    "retraining schedule", ordered=True,
    declare=("fine_tune", "lr_rewind", "weight_rewind", "scaled_lr_restart", "one_cycle"))
"""Retraining schedules of the paper, in its order: builders in :mod:`tfrewind.retraining`."""

PRUNE_METHODS: Registry[Any] = Registry(
    "pruning method", declare=("magnitude", "global_magnitude", "random", "m_by_n", "l1_filter", "l2_filter",
                               "random_filter", "fpgm_filter", "bn_scale_filter", "taylor_filter",
                               "hrank_filter"))
"""Pruning methods: :mod:`tfrewind.pruning.unstructured`, and one ``<criterion>_filter`` channel method per
criterion of :mod:`tfrewind.pruning.criteria` (:mod:`tfrewind.pruning.structured`)."""

ALLOCATIONS: Registry[Any] = Registry("MACs allocation", ordered=True, declare=("uniform", "global"))
"""How channel pruning shares a MACs target among groups: :mod:`tfrewind.pruning.allocation`."""

STRATEGIES: Registry[Any] = Registry(
    "distribution strategy", ordered=True, declare=("default", "mirrored", "multi_worker", "tpu"))
"""tf.distribute strategies: builders in :mod:`tfrewind.training`."""

PRUNING_SCHEDULES: Registry[Any] = Registry(
    "pruning schedule", ordered=True, declare=("one_shot", "gradual", "iterative", "soft"))
"""When to prune: the pipeline's stages and :mod:`tfrewind.pruning.schedules` act on these names."""

AUGMENTATIONS: Registry[Any] = Registry("augmentation", ordered=True,
                                        declare=("auto", "none", "cifar", "crop", "imagenet"))
"""Training augmentations: :mod:`tfrewind.data.pipeline`."""

EXPORT_FORMATS: Registry[Any] = Registry(
    "export format", ordered=True, declare=("none", "tflite", "keras", "saved_model", "keras3"))
"""Export formats (``none``: no export): :mod:`tfrewind.export.core`."""

QUANTIZE_MODES: Registry[Any] = Registry("quantization", ordered=True, declare=("none", "dynamic", "int8", "float16"))
"""TFLite quantizations: :mod:`tfrewind.export.convert`."""

EXECUTORS: Registry[Any] = Registry("executor", ordered=True, declare=("local", "ray"))
"""Where ``tfrewind compare`` runs its cells: :mod:`tfrewind.compare` (local) and :mod:`tfrewind.compare_ray`."""
