"""tfrewind: prune tf_keras models and retrain them the way that matters (Le & Hua, ICLR 2021).

The public API — what the README shows and each ``tfrewind`` command calls — is importable from
here; everything else lives in its module (``tfrewind.pruning``, ``tfrewind.schedules``, …).
Names load on first use, so ``import tfrewind`` (and ``tfrewind --help``) does not pay for
importing TensorFlow.

A whole run (``tfrewind train``), configured like the command line (``--set`` keys)::

    config = tfrewind.load_config("configs/paper/cifar10-resnet56-A.yaml", {"retrain.schedule": "one_cycle"})
    config = tfrewind.RunConfig()                          # or the defaults: digits, small CNN, LR rewinding
    result = tfrewind.train(config)                        # → tfrewind.RunResult(run_dir, stages)
    print(result.stages["retrain"]["test_accuracy"])

The other commands' back-ends (``tfrewind prune / retrain / export / schedule``)::

    path, report = tfrewind.prune_file("model.keras", config)            # writes model_pruned.keras
    result = tfrewind.retrain_model("model_pruned.keras", config)        # a run directory
    export = tfrewind.export_path("runs/<run>", config)                  # TFLite, verified with LiteRT
    original = tfrewind.describe_original(160, 0.1, [80, 120], 782)      # the paper's CIFAR recipe
    print(tfrewind.preview_schedule(["lr_rewind"], 72, original))        # CSV epoch,lr,momentum

The pieces, in your own script::

    data = tfrewind.load_data(config.data, seed=0)                        # tf.data splits + shapes
    model = tfrewind.build_model("resnet20", data.input_shape, data.num_classes)
    model = tfrewind.load_model_file("model.keras")                       # safe, clear errors
    pruned = tfrewind.prune(model, config.prune, seed=0).model            # tfmot wrappers or surgery
    tfrewind.recalibrate_bn(pruned, data.train.take(50))                 # BN statistics of the pruned net
    plain = tfrewind.strip(pruned)                                        # no wrappers, zeros kept
    report = tfrewind.export_model(plain, "export/", quantize="int8", data=data)

Retraining schedules in your own ``model.fit`` (see the README's example)::

    original = tfrewind.OriginalRecord.from_file("runs/<run>/original/schedule.json")
    stage = tfrewind.build_retrain_schedule("one_cycle", original, budget_epochs=72)
    lr = tfrewind.OffsetLR(original.schedule, (original.epochs - 72) * original.steps_per_epoch)
    steps = 72 * original.steps_per_epoch
    optimizer = tfrewind.PaperSGD(tfrewind.OneCycleLR(max_lr=0.1, total_steps=steps), momentum=0.95)
    callbacks = [tfrewind.MomentumScheduler(tfrewind.OneCycleMomentum(total_steps=steps)),
                 tfrewind.ScheduleLogger("logs/schedule")]

Keras 3 models (``import keras``) go in and come back out (:mod:`tfrewind.keras3`, which also
holds the schedules for a Keras 3 ``model.fit``)::

    pruned = tfrewind.prune(keras3_model, config.prune, seed=0).model     # translated, checked, pruned
    back = tfrewind.keras3.to_keras3(tfrewind.strip(pruned))              # a Keras 3 model again

The paper's comparison (``tfrewind compare`` / ``tfrewind report``)::

    study = tfrewind.load_compare_config("configs/compare/digits.yaml", {"grid.seeds": [0]})
    print("\n".join(tfrewind.plan_compare(study).lines()))   # cells, done, time measured on this device
    tfrewind.run_compare(study)
    rows, files = tfrewind.report("runs/compare-digits")

Every bad input raises a one-line :class:`tfrewind.TfrewindError` subclass::

    try:
        tfrewind.train(tfrewind.load_config(None, {"model.name": "resnet7"}))
    except tfrewind.TfrewindError as exc:
        print(exc)
"""

from __future__ import annotations

from ._version import __version__

# public name → the module that defines it (imported on first access: see __getattr__)
_LAZY = {
    "RunConfig": "config", "load_config": "config",
    "train": "pipeline", "RunResult": "pipeline",
    "prune_file": "commands", "retrain_model": "commands", "export_path": "commands",
    "describe_original": "preview", "preview_schedule": "preview",
    "load_data": "data", "build_model": "models", "load_model_file": "models",
    "prune": "pruning", "strip": "pruning", "recalibrate_bn": "batchnorm",
    "export_model": "export",
    "build_retrain_schedule": "retraining", "OriginalRecord": "retraining",
    "OffsetLR": "schedules", "OneCycleLR": "schedules", "OneCycleMomentum": "schedules",
    "PaperSGD": "optim",
    "MomentumScheduler": "callbacks", "ScheduleLogger": "callbacks",
    "run_compare": "compare", "load_compare_config": "compare", "report": "compare",
    "plan_compare": "compare_estimate",
    "TfrewindError": "errors",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        module = importlib.import_module(f".{_LAZY[name]}", __name__)
        return getattr(module, name)
    raise AttributeError(f"module 'tfrewind' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__all__ = ["__version__", *_LAZY]
