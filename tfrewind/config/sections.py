"""Run configuration: the dataclasses, their fields' documentation and their validation.

Why dataclasses (as in open_lth's hparams): one typed, documented source of truth per stage that
is written next to every run, so a run directory says exactly how it was made. Validation happens
once, at the edge, and every message names the field (``train.lr``) and what is allowed. Reading
YAML and ``--set`` values into these classes is :mod:`tfrewind.config.parse`.
Fields whose value is a name carry their registry (:mod:`tfrewind.choices`) in ``metadata``:
the CLI lists and accepts what it holds, and the closed choices (schedules of original training,
strategies, export formats, …) are checked here against it. Names that need their builders
(datasets, models, pruning methods, retraining schedules) are checked by the registries
themselves before anything is written (the pipeline's pre-flight validation). Each field's
docstring is its documentation and its ``--help`` text (:mod:`tfrewind.config_fields`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Iterable, Union

from ..choices import (ALLOCATIONS, AUGMENTATIONS, EXPORT_FORMATS, ORIGINAL_SCHEDULES, PRUNE_METHODS, PRUNING_SCHEDULES,
                      QUANTIZE_MODES, RETRAIN_SCHEDULES, STRATEGIES)
from ..errors import ConfigError
from .checks import _check, _check_choice, _default, _finite, _named, parse_budget  # noqa: F401


@dataclass
class DataConfig:
    """Which data, and how it is fed."""

    name: str = "digits"
    """Registered dataset (``digits``: offline, ``synthetic``, ``image_folder``) or any tensorflow-datasets
    name (``cifar10``, ``mnist``, …)."""
    data_dir: str | None = None
    """tensorflow-datasets data dir, or the root folder for ``image_folder``."""
    batch_size: int = 64
    """Batch size (the global batch under a distribution strategy)."""
    validation_fraction: float = 0.1
    """Share of the training split held out for validation (never the test split)."""
    augment: str = _named("auto", AUGMENTATIONS)
    """Training augmentation: ``auto`` (pad-4 crop + flip for 32×32 colour images, none otherwise), ``none``,
    ``cifar`` (crop + flip), ``crop``, ``imagenet`` (random-resized crop to ``image_size`` + flip; evaluation
    images resized to ``image_size``·256/224 on the short side and center-cropped, as torchvision's recipe)."""
    image_size: int | None = None
    """Resize images to this square size (needed for datasets of mixed sizes, e.g. imagenette)."""
    shuffle_buffer: int = 10_000
    """Training examples in the shuffle buffer (capped at the training split's size)."""
    download: bool = True
    """Allow tensorflow-datasets to download a dataset that is not prepared in ``data_dir``."""
    manual_dir: str | None = None
    """Folder with a manual-download dataset's files (``imagenet2012``: ILSVRC2012_img_train.tar and
    ILSVRC2012_img_val.tar), prepared into ``data_dir`` on first use without network; default
    ``data_dir``/downloads/manual."""

    def validate(self) -> None:
        _check(self.batch_size >= 1, "data.batch_size", "must be a positive integer")
        _check(0.0 < self.validation_fraction < 1.0, "data.validation_fraction", "must be in (0, 1)")
        _check_choice(self.augment, AUGMENTATIONS, "data.augment")
        _check(self.image_size is None or self.image_size >= 8, "data.image_size", "must be ≥ 8 or null")
        _check(self.shuffle_buffer >= 1, "data.shuffle_buffer", "must be a positive integer")


@dataclass
class ModelConfig:
    """Which network: a registered name or a path to a ``.keras``/``.h5`` model (tf_keras or Keras 3)."""

    name: str = "small_cnn"
    """Registered model (``small_cnn``, ``resnet20``/``32``/``56``/``110``, ``vgg16``/``19``, ``mobilenet_v2``,
    ``mobilenet_v2_035`` (width 0.35), ``resnet50``, ImageNet ``resnet18``/``34`` in torchvision's layout) or a
    path to a tf_keras or Keras 3 ``.keras``/``.h5`` file (Keras 3 is translated, and the run also ends
    with a Keras 3 file)."""
    bn_momentum: float = 0.9
    """Batch-norm momentum (Keras' sense) of the built-in small_cnn/resnet/vgg: 0.9 = PyTorch's 0.1; tf_keras' 0.99."""
    bn_epsilon: float = 1e-5
    """Batch-norm epsilon of the built-in models (PyTorch's; tf_keras' 1e-3). Applications and files keep theirs."""

    def validate(self) -> None:
        _check(_finite(self.bn_momentum) and 0.0 <= self.bn_momentum < 1.0, "model.bn_momentum", "must be in [0, 1)")
        _check(_finite(self.bn_epsilon) and self.bn_epsilon > 0, "model.bn_epsilon", "must be > 0")


@dataclass
class TrainConfig:
    """Original (dense) training; its LR schedule is recorded because LR rewinding replays it."""

    epochs: int = 30
    """Original training epochs."""
    lr: float = 0.1
    """Peak learning rate of original training."""
    momentum: float = 0.9
    """SGD momentum (retraining keeps it, except 1-cycle, which cycles its own)."""
    weight_decay: float = 1e-4
    """PyTorch-style (coupled) weight decay on every weight, as in the paper's code."""
    schedule: str = _named("step", ORIGINAL_SCHEDULES)
    """Shape of the original LR schedule (``step``: ×``gamma`` at each milestone)."""
    milestones: list[float] = field(default_factory=lambda: [0.5, 0.75])
    """Step-decay epochs: all in (0, 1) as fractions of ``epochs``, or all ≥ 1 as epoch numbers."""
    gamma: float = 0.1
    """Step decay: the LR is multiplied by ``gamma`` at each milestone."""
    checkpoint_epochs: Union[list[int], str] = "auto"
    """Epochs whose weights are kept for weight rewinding: ``auto``, ``all``, ``none`` or a list."""
    pretrained: str | None = None
    """Skip original training and start from this model file or finished run directory (whose recorded
    schedule and checkpoints LR and weight rewinding replay)."""

    def validate(self) -> None:
        _check(self.epochs >= 1, "train.epochs", "must be a positive integer")
        _check(_finite(self.lr) and self.lr > 0, "train.lr", "must be a positive number")
        _check(0.0 <= self.momentum < 1.0, "train.momentum", "must be in [0, 1)")
        _check(_finite(self.weight_decay) and self.weight_decay >= 0, "train.weight_decay", "must be ≥ 0")
        _check_choice(self.schedule, ORIGINAL_SCHEDULES, "train.schedule")
        _check(0.0 < self.gamma <= 1.0, "train.gamma", "must be in (0, 1]")
        self.milestone_epochs()  # validates the milestones
        if isinstance(self.checkpoint_epochs, str):
            _check_choice(self.checkpoint_epochs, ("auto", "all", "none"), "train.checkpoint_epochs")
        else:
            bad = [e for e in self.checkpoint_epochs if not 0 <= e <= self.epochs]
            _check(not bad, "train.checkpoint_epochs", f"epochs must be in [0, {self.epochs}], got {bad}")

    def milestone_epochs(self) -> list[int]:
        """The step-decay epochs as integers, sorted."""
        ms = list(self.milestones)
        if not ms:
            return []
        if all(0.0 < m < 1.0 for m in ms):
            epochs = [int(round(m * self.epochs)) for m in ms]
        elif all(m >= 1 and float(m).is_integer() for m in ms):
            epochs = [int(m) for m in ms]
        else:
            raise ConfigError(
                f"train.milestones: use fractions in (0, 1) or whole epochs ≥ 1, not a mix: {ms}"
            )
        _check(epochs == sorted(epochs), "train.milestones", f"must be increasing, got {ms}")
        return epochs

    def checkpoint_epoch_list(self) -> list[int]:
        """The epochs (0 = initialisation) whose weights original training keeps."""
        spec = self.checkpoint_epochs
        if spec == "none":
            return []
        if spec == "all" or (spec == "auto" and self.epochs <= 50):
            return list(range(self.epochs + 1))
        if spec == "auto":  # long runs: every 5th epoch keeps disk use bounded
            return sorted(set(range(0, self.epochs + 1, 5)) | {self.epochs})
        return sorted(set(spec))


@dataclass
class PruneConfig:
    """What to remove, and when."""

    method: str = _named("global_magnitude", PRUNE_METHODS)
    """Pruning method, or ``none`` for dense training only."""
    sparsity: float = 0.8
    """Target fraction of weights (or filters) removed, in (0, 1)."""
    ratios: list[float] | None = None
    """Channel methods: share of channels removed per prunable channel group, in model order (overrides
    ``sparsity``, which removes that share from every group)."""
    macs: float | None = None
    """Channel methods: prune to at most this share of the dense MACs (instead of ``sparsity``), e.g. 0.5."""
    allocation: str = _named("uniform", ALLOCATIONS)
    """With ``macs``: one ratio for every group (``uniform``), or rank by normalised score (``global``)."""
    round_to: int = 1
    """Channel methods: keep channel counts multiples of this (8 or 16 suit SIMD kernels)."""
    ignored_layers: list[str] | None = None
    """Channel methods: layer names whose channels all stay (their whole groups are not pruned)."""
    ratios_from: str = "global_magnitude"
    """Whose per-layer ratios ``random`` copies: a pruning method's (``global_magnitude``, ``magnitude``) or
    ``uniform`` (other methods refuse another value)."""
    preset: str | None = None
    """Named per-layer filter ratios from the paper (``resnet56-A``, ``resnet56-B``, ``vgg16-A``, …)."""
    policy: str | None = None
    """``xnnpack``: tfmot's PruneForLatencyOnXNNPack (prune only what XNNPack's sparse kernels run);
    unstructured methods only."""
    schedule: str = _named("one_shot", PRUNING_SCHEDULES)
    """When to prune: once before retraining, gradually during it (tfmot), in prune-retrain rounds, or ``soft``
    (channel methods; SFP: zeroed at each retraining epoch's end, they may recover, removed at its end)."""
    rounds: int = 3
    """Iterative pruning: number of prune-retrain rounds (other schedules refuse another value)."""
    recalibrate_bn: int = 50
    """Re-estimate batch-norm statistics after pruning from this many training batches (≤ 1 epoch; 0: off)."""

    def validate(self) -> None:
        if self.method == "none":
            return
        _check(
            _finite(self.sparsity) and 0.0 < self.sparsity < 1.0,
            "prune.sparsity",
            f"must be strictly between 0 and 1, got {self.sparsity}",
        )
        if self.ratios is not None:
            bad = [r for r in self.ratios if not (_finite(r) and 0.0 <= r < 1.0)]
            _check(not bad, "prune.ratios", f"each ratio must be in [0, 1), got {bad}")
        _check_choice(self.schedule, PRUNING_SCHEDULES, "prune.schedule")
        _check(self.macs is None or (_finite(self.macs) and 0.0 < self.macs < 1.0), "prune.macs",
               f"must be strictly between 0 and 1 (the share of MACs kept), got {self.macs}")
        _check_choice(self.allocation, ALLOCATIONS, "prune.allocation")
        _check(isinstance(self.round_to, int) and self.round_to >= 1, "prune.round_to",
               f"must be a positive integer, got {self.round_to!r}")
        _check(self.rounds >= 1, "prune.rounds", "must be a positive integer")
        _check(self.recalibrate_bn >= 0, "prune.recalibrate_bn", "must be ≥ 0 (batches; 0: off)")
        _check(self.schedule == "iterative" or self.rounds == _default(PruneConfig, "rounds"), "prune.rounds",
               f"only the iterative schedule prunes in rounds, not {self.schedule}; "
               "set prune.schedule=iterative (--prune-schedule iterative) or drop prune.rounds")


@dataclass
class RetrainConfig:
    """How the pruned network is retrained (the paper's subject)."""

    schedule: str = _named("lr_rewind", RETRAIN_SCHEDULES)
    """Retraining schedule (Le & Hua 2021: fine-tuning, LR rewinding, weight rewinding, scaled LR restart, 1-cycle)."""
    budget: str = "50%"
    """Retraining budget: epochs (``72``) or a share of original training (``45%``)."""
    fine_tune_lr: float | None = None
    """Fine-tuning LR; default: the last LR of the original schedule."""
    div_factor: float = 100.0
    """1-cycle: it starts at the peak LR / ``div_factor``."""
    final_div_factor: float = 100.0
    """1-cycle: it ends at its start LR / ``final_div_factor``."""
    pct_start: float = 0.1
    """1-cycle: share of the steps spent rising to the peak LR."""
    max_momentum: float = 0.95
    """1-cycle: momentum at the start and the end."""
    base_momentum: float = 0.85
    """1-cycle: momentum at the peak LR."""
    recalibrate_bn: int = 0
    """Re-estimate batch-norm statistics after retraining from this many training batches (≤ 1 epoch; 0: off)."""

    def validate(self) -> None:
        self.budget_epochs(original_epochs=1_000_000)
        _check(self.fine_tune_lr is None or self.fine_tune_lr > 0, "retrain.fine_tune_lr", "must be > 0")
        _check(self.div_factor >= 1, "retrain.div_factor", "must be ≥ 1")
        _check(self.final_div_factor >= 1, "retrain.final_div_factor", "must be ≥ 1")
        _check(0.0 < self.pct_start < 1.0, "retrain.pct_start", "must be in (0, 1)")
        _check(self.recalibrate_bn >= 0, "retrain.recalibrate_bn", "must be ≥ 0 (batches; 0: off)")
        _check(0 <= self.base_momentum <= self.max_momentum < 1, "retrain.base_momentum",
               "need 0 ≤ base_momentum ≤ max_momentum < 1")

    def budget_epochs(self, original_epochs: int) -> int:
        """Resolve the budget (``72`` or ``45%``) to whole epochs (at least 1)."""
        return parse_budget(self.budget, original_epochs)


@dataclass
class ExportConfig:
    """Edge export after the last stage."""

    format: str = _named("tflite", EXPORT_FORMATS)
    """Export the final model at the end (``tflite`` files are verified with LiteRT; ``keras3``: a Keras 3
    ``.keras``; ``none``: no export)."""
    quantize: str = _named("none", QUANTIZE_MODES)
    """TFLite quantization: ``dynamic`` (int8 weights), ``int8`` (full integer, calibrated on training images),
    ``float16``; ``none``: float32."""
    sparse: bool | None = None
    """Sparse TFLite encoding; default: on when the weights are sparse (and the file still runs). tflite only."""

    def validate(self) -> None:
        _check_choice(self.format, EXPORT_FORMATS, "export.format")
        _check_choice(self.quantize, QUANTIZE_MODES, "export.quantize")
        _check(self.format == "tflite" or self.quantize == "none", "export.quantize",
               f"quantization applies to tflite only, not {self.format}")
        _check(self.format == "tflite" or self.sparse is None, "export.sparse",
               f"sparse encoding applies to tflite only, not {self.format}")


@dataclass
class RunConfig:
    """Everything one run needs; written as ``config.yaml`` in the run directory."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    prune: PruneConfig = field(default_factory=PruneConfig)
    retrain: RetrainConfig = field(default_factory=RetrainConfig)
    export: ExportConfig = field(default_factory=ExportConfig)
    seed: int = 0
    """Seed for weights, data order, augmentation and random masks/filters."""
    deterministic: bool = False
    """Turn on TensorFlow op determinism (slower, bitwise repeatable)."""
    strategy: str = _named("default", STRATEGIES)
    """tf.distribute strategy: ``default`` (one device), ``mirrored`` (all local GPUs/devices),
    ``multi_worker`` (TF_CONFIG), ``tpu``. ``data.batch_size`` is the global batch."""
    mixed_precision: bool = False
    """``mixed_float16`` compute (for GPUs; slower on CPUs)."""
    jit_compile: bool = False
    """XLA-compile the train step (measured ~2.6× slower on a 2-core CPU; may help on GPUs)."""
    out: str | None = None
    """Run directory; default: a new directory under ``runs/``. Re-running on an existing run directory
    resumes it."""

    def validate(self) -> "RunConfig":
        for section in (self.data, self.model, self.train, self.prune, self.retrain, self.export):
            section.validate()
        _check(self.seed >= 0, "seed", "must be ≥ 0")
        _check_choice(self.strategy, STRATEGIES, "strategy")
        _check(not (self.mixed_precision and self.strategy in ("mirrored", "multi_worker")), "mixed_precision",
               "tfmot's pruning wrappers fail under mixed_float16 with a mirrored strategy (pruning_impl casts "
               "masks to float16); use one of the two")
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
