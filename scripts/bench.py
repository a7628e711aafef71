"""Benchmarks P1–P9 of tfrewind, measured side by side in one run, written to docs/benchmarks.md.

Usage (from the project root)::

    python scripts/bench.py                     # all of P1–P9, writes docs/benchmarks.md
    python scripts/bench.py --only P1,P3 --out /tmp/bench.md

Why side by side: on a shared 2-core machine absolute times drift by tens of percent; the two
variants of each comparison are run interleaved (A, B, A, B, …) in one process and reported as the
ratio of medians, which is what the targets are about.
"""

from __future__ import annotations

import argparse
import gzip
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tfrewind._keras import keras, tf  # noqa: E402
from tfrewind.config import DataConfig, PruneConfig  # noqa: E402

ROUNDS = 3


# ----------------------------------------------------------------------------- helpers


class EpochTimer(keras.callbacks.Callback):
    """Wall time of each epoch (the first one includes tracing, so it is dropped)."""

    def __init__(self):
        super().__init__()
        self.times: list[float] = []
        self._start = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.times.append(time.perf_counter() - self._start)


def synthetic_bundle(batch_size: int, augment: str = "cifar"):
    from tfrewind.data import load_data

    return load_data(DataConfig(name="synthetic", batch_size=batch_size, augment=augment), seed=0)


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import tensorflow_model_optimization as tfmot

    return (f"{os.cpu_count()} CPU cores ({cpu}), Python {platform.python_version()}, TensorFlow {tf.__version__}, "
            f"tf_keras {keras.__version__}, tfmot {tfmot.__version__}")


# ----------------------------------------------------------------------------- P1


def p1_wrapper_overhead(epochs: int = 3) -> dict:
    """Retraining epoch time: tfrewind (wrappers + callbacks + PaperSGD) / plain tf_keras, ResNet-20."""
    from tfrewind.callbacks import MomentumScheduler, ScheduleLogger
    from tfrewind.models import build_model
    from tfrewind.monitor import SparsityMonitor
    from tfrewind.optim import PaperSGD
    from tfrewind.pruning import prune, pruning_callbacks
    from tfrewind.schedules import OneCycleLR, OneCycleMomentum

    data = synthetic_bundle(128)
    steps = data.steps_per_epoch * epochs
    logdir = Path(tempfile.mkdtemp(prefix="bench-p1-"))

    def plain():
        keras.utils.set_random_seed(0)
        model = build_model("resnet20", data.input_shape, data.num_classes)
        model.compile(keras.optimizers.SGD(0.05, momentum=0.9),
                      keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
        return model, []

    def tfrewind_variant():
        keras.utils.set_random_seed(0)
        dense = build_model("resnet20", data.input_shape, data.num_classes)
        model = prune(dense, PruneConfig(method="global_magnitude", sparsity=0.8), seed=0).model
        model.compile(PaperSGD(OneCycleLR(0.05, steps), momentum=0.95, weight_decay=1e-4),
                      keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
        callbacks = [*pruning_callbacks(model), MomentumScheduler(OneCycleMomentum(steps)),
                     SparsityMonitor(logdir / "sparsity"), ScheduleLogger(logdir / "schedule", every_n_steps=4),
                     keras.callbacks.TensorBoard(str(logdir), write_graph=False, profile_batch=0),
                     keras.callbacks.BackupAndRestore(str(logdir / "backup"))]
        return model, callbacks

    times = {"plain": [], "tfrewind": []}
    for _ in range(ROUNDS):
        for name, build in (("plain", plain), ("tfrewind", tfrewind_variant)):
            keras.backend.clear_session()
            model, callbacks = build()
            timer = EpochTimer()
            model.fit(data.train, epochs=epochs + 1, callbacks=[*callbacks, timer], verbose=0)
            times[name] += timer.times[1:]
    plain_s, ours_s = statistics.median(times["plain"]), statistics.median(times["tfrewind"])
    return {"plain_s": plain_s, "tfrewind_s": ours_s, "ratio": ours_s / plain_s,
            "steps_per_epoch": data.steps_per_epoch, "samples": len(times["plain"])}


# ----------------------------------------------------------------------------- P2


def p2_input_pipeline(epochs: int = 3) -> dict:
    """Training steps/s fed by tfrewind's tf.data pipeline (augmenting) vs by in-memory tensors."""
    from tfrewind.models import build_model

    data = synthetic_bundle(128)
    images = np.concatenate([x.numpy() for x, _ in data.train_plain])
    labels = np.concatenate([y.numpy() for _, y in data.train_plain])
    in_memory = tf.data.Dataset.from_tensor_slices((images, labels)).batch(128)
    in_memory = in_memory.cache()
    list(in_memory)  # materialise: "in-memory tensors"

    raw = {}
    for name, dataset in (("pipeline", data.train), ("in_memory", in_memory)):
        start = time.perf_counter()
        batches = sum(1 for _ in dataset)
        raw[name] = batches / (time.perf_counter() - start)

    times = {"pipeline": [], "in_memory": []}
    for _ in range(ROUNDS):
        for name, dataset in (("pipeline", data.train), ("in_memory", in_memory)):
            keras.backend.clear_session()
            keras.utils.set_random_seed(0)
            model = build_model("resnet20", data.input_shape, data.num_classes)
            model.compile(keras.optimizers.SGD(0.05, momentum=0.9),
                          keras.losses.SparseCategoricalCrossentropy(from_logits=True))
            timer = EpochTimer()
            model.fit(dataset, epochs=epochs + 1, callbacks=[timer], verbose=0)
            times[name] += [data.steps_per_epoch / t for t in timer.times[1:]]
    pipe, mem = statistics.median(times["pipeline"]), statistics.median(times["in_memory"])
    return {"pipeline_steps_s": pipe, "in_memory_steps_s": mem, "ratio": pipe / mem,
            "pipeline_only_batches_s": raw["pipeline"], "in_memory_only_batches_s": raw["in_memory"]}


# ----------------------------------------------------------------------------- P3


def _gzip_size(path: Path) -> int:
    return len(gzip.compress(path.read_bytes(), compresslevel=9))


def p3_tflite_sizes(sparsities=(0.0, 0.5, 0.8, 0.9, 0.95)) -> dict:
    """ResNet-20 .tflite size and gzip size vs the dense float file, float and int8."""
    from tfrewind.export import export_model
    from tfrewind.models import build_model
    from tfrewind.pruning import prune, strip

    data = synthetic_bundle(64, augment="none")
    keras.utils.set_random_seed(0)
    dense = build_model("resnet20", data.input_shape, data.num_classes)
    # Two epochs of training: an untrained network's near-uniform logits make int8 top-1 agreement
    # (a verification gate) a coin toss, and real exports are of trained networks.
    dense.compile(keras.optimizers.SGD(0.05, momentum=0.9), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    dense.fit(data.train, epochs=2, verbose=0)
    rows = []
    base = None
    for sparsity in sparsities:
        model = dense if sparsity == 0 else strip(prune(dense, PruneConfig(method="global_magnitude",
                                                                              sparsity=sparsity), seed=0).model)
        for quantize in ("none", "int8"):
            out = Path(tempfile.mkdtemp(prefix="bench-p3-"))
            report = export_model(model, out, quantize=quantize, data=data, eval_images=64, latency_runs=3,
                                  latency_threads=(1,))
            file = Path(report.files[0].path)
            size, gz = file.stat().st_size, _gzip_size(file)
            if base is None:
                base = (size, gz)
            rows.append({"sparsity": sparsity, "quantize": quantize, "encoding": report.encoding,
                         "bytes": size, "gzip": gz, "size_ratio": size / base[0], "gzip_ratio": gz / base[1]})
    return {"dense_float_bytes": base[0], "dense_float_gzip": base[1], "rows": rows}


# ----------------------------------------------------------------------------- P4


def p4_filter_latency() -> dict:
    """LiteRT latency of L1-filter-pruned ResNet-20/56 (25 %, 50 %) vs dense, next to the FLOPs ratio."""
    from tfrewind.export import export_model
    from tfrewind.models import build_model
    from tfrewind.pruning import prune

    data = synthetic_bundle(64, augment="none")
    rows = []
    for name in ("resnet20", "resnet56"):
        keras.utils.set_random_seed(0)
        dense = build_model(name, data.input_shape, data.num_classes)
        dense_report = None
        for ratio in (0.0, 0.25, 0.5):
            model = dense if ratio == 0 else prune(dense, PruneConfig(method="l1_filter", sparsity=ratio), seed=0).model
            report = export_model(model, Path(tempfile.mkdtemp(prefix="bench-p4-")), data=data, eval_images=64,
                                  latency_runs=200, latency_threads=(1, 2))
            if ratio == 0:
                dense_report = report
            row = {"model": name, "filters_removed": ratio, "macs": report.macs,
                   "flops_ratio": report.macs / dense_report.macs}
            for threads in ("1", "2"):
                row[f"latency_ms_{threads}"] = report.latency_ms[threads]
                row[f"latency_ratio_{threads}"] = report.latency_ms[threads] / dense_report.latency_ms[threads]
            rows.append(row)
    return {"rows": rows}


# ----------------------------------------------------------------------------- P7

CHANNEL_MODELS = ("MobileNetV2", "ResNet50", "EfficientNetB0")
P7_VARIANTS = {"dense": None, "l1, MACs 0.5": {}, "l1, MACs 0.5, round_to 16": {"round_to": 16}}
P7_FILES = Path(tempfile.gettempdir()) / "tfrewind-bench-p7"
"""The pruned and exported files, kept so that ``P7_REUSE=1`` re-measures latency without the ~30 min
of pruning and converting at 224×224 (only for re-measuring: the files are not rebuilt then)."""
SIMD_CHANNELS = 16
"""XNNPack's f32 conv/GEMM kernels on AVX-512 compute 16 output channels at a time (``nr`` = 16)."""


def _activation_elements(model) -> int:
    """Values all layers write for one image: the memory traffic that shrinks with the channel ratio
    (about √ of the MACs ratio), not with the MACs ratio."""
    from tfrewind.pruning.wrappers import all_layers

    total = 0
    for layer in all_layers(model):
        if isinstance(layer, keras.layers.InputLayer):
            continue
        shapes = layer.output_shape if isinstance(layer.output_shape, list) else [layer.output_shape]
        total += sum(int(np.prod([d for d in shape[1:] if d])) for shape in shapes)
    return total


def _padded_macs(model, layers) -> float:
    """MACs with every Conv/Dense output width rounded up to the SIMD tile: what the kernels compute."""
    from tfrewind.pruning.wrappers import all_layers

    width = {layer.name: int(layer.output_shape[-1]) for layer in all_layers(model)
             if not isinstance(layer.output_shape, list)}
    return sum(row.macs * -(-width[row.name] // SIMD_CHANNELS) * SIMD_CHANNELS / width[row.name]
               for row in layers if width.get(row.name))


def _p7_files(name: str, size: int) -> tuple[dict[str, bytes], dict[str, dict]]:
    """Dense and pruned float .tflite files of one application (verified by export_model), and facts."""
    from tfrewind.export import export_model
    from tfrewind.io import read_json, write_json_atomic
    from tfrewind.pruning import prune

    where = P7_FILES / f"{name}_{size}"
    if os.environ.get("P7_REUSE") == "1" and (where / "facts.json").exists():
        facts = read_json(where / "facts.json")
        return {v: (where / f"{i}.tflite").read_bytes() for i, v in enumerate(facts)}, facts
    keras.backend.clear_session()
    keras.utils.set_random_seed(0)
    dense = getattr(keras.applications, name)(weights=None, input_shape=(size, size, 3))
    files, facts = {}, {}
    for i, (variant, options) in enumerate(P7_VARIANTS.items()):
        model = dense if options is None else prune(
            dense, PruneConfig(method="l1_filter", macs=0.5, **options), seed=0).model
        report = export_model(model, where / str(i), latency_runs=0)
        files[variant] = report.main_file.read_bytes()
        (where / f"{i}.tflite").write_bytes(files[variant])
        depthwise = sum(layer.macs for layer in report.layers if layer.kind == "DepthwiseConv2D")
        facts[variant] = {"macs": report.macs, "params": report.params, "depthwise_macs": depthwise,
                          "padded_macs": _padded_macs(model, report.layers),
                          "activations": _activation_elements(model), "bytes": len(files[variant])}
    write_json_atomic(where / "facts.json", facts)
    return files, facts


def _interleaved_ms(files: dict[str, bytes], image: np.ndarray, threads: int, rounds: int, block: int) -> dict:
    """Batch-1 latency per variant, the variants taking turns (A, B, C, A, B, C, …, ``block``
    invocations per turn): the median wall time and the median CPU time of every variant's invocations.

    Why CPU time too: on a shared machine the wall time includes the time other jobs held the core
    (here the median wall time of one inference is often twice its CPU time). The process's CPU time
    is the work the inference did itself; with one thread it is the latency a quiet core would show
    (with two, it adds both threads' work, the spin-waits of XNNPack's thread pool included).
    """
    from tfrewind.export.verify import LiteRTModel

    models = {}
    for name, content in files.items():
        models[name] = LiteRTModel(content, num_threads=threads)
        models[name].latency_ms(image, 1, warmup=2)  # sets the input tensor, warms the caches up
    wall: dict[str, list[float]] = {name: [] for name in files}
    cpu: dict[str, list[float]] = {name: [] for name in files}
    for _ in range(rounds):
        for name, model in models.items():
            for _ in range(block):
                start, start_cpu = time.perf_counter(), time.process_time()
                model.interpreter.invoke()
                cpu[name].append(1000.0 * (time.process_time() - start_cpu))
                wall[name].append(1000.0 * (time.perf_counter() - start))
    return {name: {"median": statistics.median(wall[name]), "cpu": statistics.median(cpu[name]),
                   "runs": len(wall[name])} for name in files}


def p7_channel_latency(size: int = 224, rounds: int = 40, block: int = 3) -> dict:
    """LiteRT latency of applications pruned by l1 channel groups to 0.5 of their MACs, vs dense."""
    rows = []
    for name in CHANNEL_MODELS:
        files, facts = _p7_files(name, size)
        image = np.random.default_rng(0).normal(size=(size, size, 3)).astype(np.float32)
        latency = {str(t): _interleaved_ms(files, image, t, rounds, block) for t in (1, 2)}
        base = facts["dense"]
        for variant, fact in facts.items():
            row = {"model": name, "variant": variant, **fact, "macs_ratio": fact["macs"] / base["macs"],
                   "padded_macs_ratio": fact["padded_macs"] / base["padded_macs"],
                   "activations_ratio": fact["activations"] / base["activations"],
                   "depthwise_share": fact["depthwise_macs"] / fact["macs"]}
            for t, by_variant in latency.items():
                for stat in ("median", "cpu"):
                    row[f"latency_{stat}_ms_{t}"] = by_variant[variant][stat]
                    row[f"latency_{stat}_ratio_{t}"] = by_variant[variant][stat] / by_variant["dense"][stat]
            rows.append(row)
    return {"rows": rows, "size": size, "rounds": rounds, "block": block}


# ----------------------------------------------------------------------------- P5


def p5_default_train() -> dict:
    """Wall time of the README's main job, `tfrewind train`, in a fresh process."""
    out = Path(tempfile.mkdtemp(prefix="bench-p5-")) / "run"
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "from tfrewind.cli import main; main()", "train", "--out", str(out),
                    "--quiet"], check=True, cwd=ROOT, capture_output=True)
    return {"seconds": time.perf_counter() - start}


# ----------------------------------------------------------------------------- P6


def p6_test_each_epoch(epochs: int = 3) -> dict:
    """Retraining epoch time with the per-epoch test evaluation (best-epoch accuracy) / without it.

    Synthetic data has CIFAR-10's test/train ratio (512/2560 = 10,000/50,000), so the ratio is what a
    CIFAR-10 retraining epoch costs more; validation runs in both variants, as in every stage.
    """
    from tfrewind.models import build_model
    from tfrewind.training import EpochTestAccuracy

    data = synthetic_bundle(128)
    times = {"without": [], "with": []}
    for _ in range(ROUNDS):
        for name in times:
            keras.backend.clear_session()
            keras.utils.set_random_seed(0)
            model = build_model("resnet20", data.input_shape, data.num_classes)
            model.compile(keras.optimizers.SGD(0.05, momentum=0.9),
                          keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
            timer = EpochTimer()  # last: its epoch time includes the test pass
            callbacks = [EpochTestAccuracy(data.test), timer] if name == "with" else [timer]
            model.fit(data.train, validation_data=data.validation, epochs=epochs + 1, callbacks=callbacks, verbose=0)
            times[name] += timer.times[1:]
    without, with_test = statistics.median(times["without"]), statistics.median(times["with"])
    return {"without_s": without, "with_s": with_test, "ratio": with_test / without, "samples": len(times["with"])}


# ----------------------------------------------------------------------------- P8

P8_GRID = ["--seeds", "0", "--set", "grid.budgets=25%"]
"""A slice of configs/compare/digits.yaml: 4 methods × 3 schedules × 1 budget (8 epochs) × 1 seed."""
P8_MACHINES = (1, 2, 4, 8, 16)


def _compare(out: Path, pretrained: Path, *extra: str) -> float:
    """Wall time of one `tfrewind compare` of the P8 grid in a fresh process (TF import included)."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "tfrewind.cli", "compare", "--config", "configs/compare/digits.yaml",
                    *P8_GRID, "--set", f"train.pretrained={pretrained}", "--out", str(out), *extra],
                   check=True, cwd=ROOT, capture_output=True)
    return time.perf_counter() - start


def _cell_seconds(out: Path) -> list[float]:
    from tfrewind.io import read_json

    return [read_json(p)["seconds"] for p in sorted((out / "cells").glob("*/cell.json"))]


def makespan(seconds: list[float], slots: int, overhead: float) -> float:
    """Wall time of cells on ``slots`` parallel slots, each cell to the first free slot in grid order
    (what Ray's scheduler does with one task per free slot), plus a per-slot start-up cost."""
    free = [overhead] * slots
    for cell in seconds:
        i = free.index(min(free))
        free[i] += cell
    return max(free)


def p8_ray_vs_local() -> dict:
    """The digits grid slice: `--executor ray --cpus-per-cell 1` vs `local`, and a cluster projection."""
    from tfrewind.compare import load_compare_config
    from tfrewind.config import dump_yaml

    root = Path(tempfile.mkdtemp(prefix="bench-p8-"))
    dense, dense_yaml = root / "dense", root / "dense.yaml"
    dense_yaml.write_text(dump_yaml(load_compare_config(ROOT / "configs/compare/digits.yaml",
                                                        {"out": str(root / "unused")}).original_config()))
    subprocess.run([sys.executable, "-m", "tfrewind.cli", "train", "--config", str(dense_yaml), "--quiet",
                    "--out", str(dense)], check=True, cwd=ROOT, capture_output=True)
    local_s = _compare(root / "local", dense)
    ray_s = _compare(root / "ray", dense, "--executor", "ray", "--cpus-per-cell", "1")
    local_cells, ray_cells = _cell_seconds(root / "local"), _cell_seconds(root / "ray")
    slots_here = os.cpu_count() or 1
    # what the Ray run spent beyond its cells: Ray's start-up, TF import in the workers, the probe
    overhead = max(0.0, ray_s - makespan(ray_cells, slots_here, 0.0))
    projection = [{"machines": n, "slots": n * slots_here,
                   "seconds": makespan(ray_cells, n * slots_here, overhead)} for n in P8_MACHINES]
    return {"cells": len(local_cells), "local_s": local_s, "ray_s": ray_s, "ratio": ray_s / local_s,
            "local_cell_mean_s": statistics.mean(local_cells), "ray_cell_mean_s": statistics.mean(ray_cells),
            "ray_cell_sum_s": sum(ray_cells), "overhead_s": overhead, "slots_here": slots_here,
            "projection": projection, "load_before": os.getloadavg()[0]}
def p9_keras3_translation(names=("EfficientNetB0", "ResNet50"), shape=(224, 224, 3)) -> dict:
    """Keras 3 → tf_keras translation time (rebuild, weight copy, output check) and back, next to
    building the same application natively in tf_keras, interleaved per round."""
    import keras as keras3

    from tfrewind.keras3.graph import rebuild
    from tfrewind.keras3.sides import sides
    from tfrewind.keras3.translate import to_keras3
    from tfrewind.keras3.weights import check_same_outputs, copy_weights

    source, target = sides()
    rows = []
    for name in names:
        times: dict[str, list[float]] = {k: [] for k in ("native", "rebuild", "weights", "check", "back")}
        difference = 0.0
        for _ in range(ROUNDS):
            keras.backend.clear_session()
            keras3.backend.clear_session()
            start = time.perf_counter()
            getattr(keras.applications, name)(input_shape=shape, weights=None, classes=10)
            times["native"].append(time.perf_counter() - start)
            model = getattr(keras3.applications, name)(input_shape=shape, weights=None, classes=10)
            marks = [time.perf_counter()]
            legacy = rebuild(model, source, target)
            marks.append(time.perf_counter())
            copy_weights(model, legacy, source, target)
            marks.append(time.perf_counter())
            difference = max(difference, check_same_outputs(model, legacy, source, target))
            marks.append(time.perf_counter())
            to_keras3(legacy)
            marks.append(time.perf_counter())
            for key, (a, b) in zip(("rebuild", "weights", "check", "back"), zip(marks, marks[1:])):
                times[key].append(b - a)
        row = {"model": name, "layers": len(model.layers), "max_abs_diff": difference,
               **{f"{key}_s": statistics.median(values) for key, values in times.items()}}
        row["to_tf_keras_s"] = row["rebuild_s"] + row["weights_s"] + row["check_s"]
        row["ratio_to_native"] = row["to_tf_keras_s"] / row["native_s"]
        rows.append(row)
    return {"rows": rows, "input_shape": list(shape)}


# ----------------------------------------------------------------------------- report


def render(results: dict, command: str) -> str:
    lines = ["# Benchmarks", "", f"Command: `{command}`  ",
             f"Rendered on: {machine()} (each benchmark's machine is listed below)  ",
             f"Date: {time.strftime('%Y-%m-%d %H:%M %Z')}", "",
             "Every comparison runs its variants interleaved in one process (A, B, A, B, …, "
             f"{ROUNDS} rounds) and reports the ratio of medians; the first epoch of each fit (tracing) "
             "is dropped.", ""]
    for name in sorted(results):
        on = f" on {results[name]['machine']}" if "machine" in results[name] else ""
        lines.append(f"- {name} measured {results[name].get('measured', '?')}{on}")
    lines.append("")
    if "P1" in results:
        r = results["P1"]
        lines += ["## P1 — retraining epoch, tfrewind vs plain tf_keras (ResNet-20, 32×32×3, batch 128)", "",
                  "| variant | median s/epoch |", "|---|---|",
                  f"| plain tf_keras (dense, SGD, no callbacks) | {r['plain_s']:.3f} |",
                  f"| tfrewind (80 % fixed-mask wrappers, PaperSGD, 1-cycle + momentum, sparsity monitor, "
                  f"schedule logger, TensorBoard, BackupAndRestore) | {r['tfrewind_s']:.3f} |", "",
                  f"**Ratio {r['ratio']:.3f}×** (target ≤ 1.05×; {r['steps_per_epoch']} steps/epoch, "
                  f"{r['samples']} epochs per variant).", ""]
    if "P2" in results:
        r = results["P2"]
        lines += ["## P2 — input pipeline vs in-memory tensors (ResNet-20 training steps/s)", "",
                  "| feed | train steps/s | batches/s without the model |", "|---|---|---|",
                  f"| tfrewind tf.data (cache, shuffle, pad-crop-flip, batch, prefetch) | "
                  f"{r['pipeline_steps_s']:.2f} | {r['pipeline_only_batches_s']:.1f} |",
                  f"| in-memory tensors | {r['in_memory_steps_s']:.2f} | {r['in_memory_only_batches_s']:.1f} |", "",
                  f"**Ratio {r['ratio']:.3f}×** (target ≥ 0.95×).", ""]
    if "P3" in results:
        r = results["P3"]
        lines += ["## P3 — .tflite size vs the dense float file (ResNet-20, global magnitude)", "",
                  f"Dense float file: {r['dense_float_bytes']:,} B, gzip {r['dense_float_gzip']:,} B.", "",
                  "| sparsity | quantize | encoding shipped | bytes | × dense | gzip | gzip × dense |",
                  "|---|---|---|---|---|---|---|"]
        for row in r["rows"]:
            lines.append(f"| {row['sparsity']:.0%} | {row['quantize']} | {row['encoding']} | {row['bytes']:,} | "
                         f"{row['size_ratio']:.3f} | {row['gzip']:,} | {row['gzip_ratio']:.3f} |")
        lines += ["", "Targets at 90 %: ≤ 0.15× (float), ≤ 0.06× (int8).", ""]
    if "P4" in results:
        lines += ["## P4 — LiteRT latency of filter-pruned ResNets vs FLOPs", "",
                  "| model | filters removed | MACs ratio | latency 1 thr (ms) | ratio | latency 2 thr (ms) | ratio |",
                  "|---|---|---|---|---|---|---|"]
        for row in results["P4"]["rows"]:
            lines.append(f"| {row['model']} | {row['filters_removed']:.0%} | {row['flops_ratio']:.3f} | "
                         f"{row['latency_ms_1']:.3f} | {row['latency_ratio_1']:.3f} | {row['latency_ms_2']:.3f} | "
                         f"{row['latency_ratio_2']:.3f} |")
        lines += ["", "Target: latency ratio ≤ 1.2 × MACs ratio. Filter pruning removes each BasicBlock's "
                  "first-conv filters (as in the paper's code), so the residual width is unchanged.", ""]
    if "P5" in results:
        lines += ["## P5 — the default `tfrewind train`", "",
                  f"Wall time {results['P5']['seconds']:.1f} s in a fresh process (TF import included; digits, "
                  "small_cnn, 30 + 15 epochs, prune, export). Target ≤ 180 s.", ""]
    if "P6" in results:
        r = results["P6"]
        lines += ["## P6 — per-epoch test evaluation in retraining (ResNet-20, synthetic, CIFAR-10's test/train "
                  "ratio)", "", "| variant | median s/epoch |", "|---|---|",
                  f"| validation only | {r['without_s']:.3f} |",
                  f"| validation + test accuracy each epoch (for the best-epoch column) | {r['with_s']:.3f} |", "",
                  f"**Ratio {r['ratio']:.3f}×** ({r['samples']} epochs per variant).", ""]
    if "P7" in results:
        lines += _render_p7(results["P7"])
    if "P8" in results:
        r = results["P8"]
        lines += ["## P8 — `tfrewind compare --executor ray --cpus-per-cell 1` vs `local` (digits)", "",
                  f"{r['cells']} cells of `configs/compare/digits.yaml` (`{' '.join(P8_GRID)}`, 8 retraining epochs "
                  "each) from one dense run trained beforehand; each command once, in a fresh process, local "
                  "first (not interleaved: each takes minutes). Rerun: `python scripts/bench.py --only P8`.", "",
                  "| executor | wall s | mean s per cell (cell.json) |", "|---|---|---|",
                  f"| local (one cell at a time, TensorFlow on all cores) | {r['local_s']:.1f} | "
                  f"{r['local_cell_mean_s']:.1f} |",
                  f"| ray, --cpus-per-cell 1 ({r['slots_here']} cells at once, 1 thread each) | {r['ray_s']:.1f} | "
                  f"{r['ray_cell_mean_s']:.1f} |", "",
                  f"**Ratio ray / local {r['ratio']:.3f}×** (1-minute load average before: {r['load_before']:.1f}).",
                  "", "Projected wall time of the same cells on N such machines (2 cells at once each), from the "
                  "measured Ray per-cell times: each cell to the first free slot in grid order, plus the "
                  f"measured fixed Ray cost of {r['overhead_s']:.0f} s (start-up, worker TensorFlow imports):", "",
                  "| machines | slots | projected wall s | speed-up vs 1 machine |", "|---|---|---|---|"]
        one = r["projection"][0]["seconds"]
        for row in r["projection"]:
            speedup = one / row["seconds"]
            lines.append(f"| {row['machines']} | {row['slots']} | {row['seconds']:.0f} | {speedup:.2f}× |")
        lines.append("")
    if "P9" in results:
        r = results["P9"]
        lines += [f"## P9 — Keras 3 → tf_keras translation time ({'×'.join(map(str, r['input_shape']))} inputs)", "",
                  "| model | layers | tf_keras native build (s) | rebuild (s) | weights (s) | output check (s) | "
                  "to tf_keras total (s) | × native build | back to Keras 3, checked (s) | max abs diff |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for row in r["rows"]:
            lines.append(f"| {row['model']} | {row['layers']} | {row['native_s']:.2f} | {row['rebuild_s']:.2f} | "
                         f"{row['weights_s']:.2f} | {row['check_s']:.2f} | {row['to_tf_keras_s']:.2f} | "
                         f"{row['ratio_to_native']:.2f} | {row['back_s']:.2f} | {row['max_abs_diff']:.2g} |")
        lines += ["", "Medians of the rounds. \"Native build\" is `tf_keras.applications.<model>(weights=None)` "
                  "in the same process, for scale: the rebuild is the same work (tf_keras creating every layer "
                  "and its graph).", ""]
    return "\n".join(lines) + "\n"


def _render_p7(r: dict) -> list[str]:
    lines = [f"## P7 — LiteRT latency of channel-pruned applications vs MACs ({r['size']}×{r['size']}, float32)", "",
             "`tfrewind prune MODEL --prune l1_filter --macs 0.5` (uniform allocation; `weights=None`, 1000 "
             "classes), the dense and pruned .tflite files run in LiteRT (default XNNPack delegate) in turns: "
             f"{r['rounds']} turns of {r['block']} batch-1 invocations per file and thread count. Rerun: "
             "`python scripts/bench.py --only P7` (`P7_REUSE=1` re-measures the files of the last run).", "",
             "| model | variant | MACs (M) | MACs ratio | padded to 16 | activations ratio | depthwise share | "
             "threads | wall ms (median) | ratio | ÷ MACs ratio | CPU ms (median) | ratio | ÷ MACs ratio |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in r["rows"]:
        for t in ("1", "2"):
            lines.append(
                f"| {row['model']} | {row['variant']} | {row['macs'] / 1e6:,.0f} | {row['macs_ratio']:.3f} | "
                f"{row['padded_macs_ratio']:.3f} | {row['activations_ratio']:.3f} | {row['depthwise_share']:.1%} | {t} | "
                + " | ".join(f"{row[f'latency_{s}_ms_{t}']:.1f} | {row[f'latency_{s}_ratio_{t}']:.3f} | "
                             f"{row[f'latency_{s}_ratio_{t}'] / row['macs_ratio']:.2f}" for s in ("median", "cpu"))
                + " |")
    lines += ["", "Target: latency ratio ≤ 1.2 × MACs ratio (the ÷ columns ≤ 1.2). *Padded to 16*: the MACs ratio "
              "with every layer's output channels rounded up to 16, what XNNPack's AVX-512 kernels compute. "
              "*Activations ratio*: values all layers write per image, pruned ÷ dense (memory traffic). "
              "*Depthwise share*: depthwise convs' share of the model's MACs. *CPU ms*: the process's CPU time per "
              "inference (with 2 threads: both threads' work, not a latency).", ""]
    return lines


NOTES_MARKER = "<!-- notes: kept by scripts/bench.py -->"


def _kept_notes(path: str) -> str:
    """The hand-written reading below the marker survives re-runs (numbers above it are regenerated)."""
    try:
        text = Path(path).read_text()
    except OSError:
        return ""
    return text[text.index(NOTES_MARKER):] if NOTES_MARKER in text else ""


BENCHMARKS = {"P1": p1_wrapper_overhead, "P2": p2_input_pipeline, "P3": p3_tflite_sizes,
              "P4": p4_filter_latency, "P5": p5_default_train, "P6": p6_test_each_epoch,
              "P7": p7_channel_latency, "P8": p8_ray_vs_local,
              "P9": p9_keras3_translation}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default=",".join(BENCHMARKS), help="comma list of P1..P9")
    parser.add_argument("--out", default=str(ROOT / "docs" / "benchmarks.md"))
    args = parser.parse_args()
    chosen = [name.strip() for name in args.only.split(",") if name.strip()]
    from tfrewind.io import read_json, write_json_atomic, write_text_atomic

    # Results accumulate in a JSON beside the Markdown, each with when it was measured, so that
    # `--only P3` refreshes one section without losing the others (and a crash loses nothing).
    store = Path(args.out).with_suffix(".json")
    results = read_json(store) if store.exists() else {}
    for name in chosen:
        print(f"running {name} …", file=sys.stderr, flush=True)
        started = time.perf_counter()
        results[name] = {**BENCHMARKS[name](), "measured": time.strftime("%Y-%m-%d %H:%M %Z"), "machine": machine()}
        print(f"  {name} done in {time.perf_counter() - started:.0f} s: {results[name]}", file=sys.stderr, flush=True)
        write_json_atomic(store, results)
        write_text_atomic(args.out, render(results, "python scripts/bench.py [--only P1,…]") + _kept_notes(args.out))
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
