"""``tfrewind compare --dry-run``: the cells, how many are done, and the time the rest will take.

Why a measured estimate: the paper's grids run for hundreds to thousands of GPU-hours, and whether a
grid fits a machine is the first question before renting one. The estimate times a few training
and evaluation steps of the config's model at its batch size on the device at hand (random inputs
of the data's shape, after one step that traces), and scales them by the epochs left: original
training (when it is still to run) and each unfinished cell's budget, with a validation pass per
epoch and the test passes of each stage. It says which device it measured: numbers from a CPU do
not transfer to a GPU, so run the dry run where the grid will run. Every cell is timed as the dense
model (filter-pruned networks run faster, so those cells are over-estimated), and the input pipeline
is not timed (JPEG decoding can dominate on ImageNet).
"""

from __future__ import annotations

import math
import os
import platform
import time
from dataclasses import dataclass, field
from typing import NamedTuple

from ._keras import tf
from .compare_cells import cell_done
from .compare_config import CompareConfig
from .config import RunConfig
from .data import load_data
from .data.tfds_source import catalogue_sizes
from .errors import DataUnavailableError, TfrewindError
from .models import build_model
from .rundir import ORIGINAL
from .training import compile_model, original_schedule, set_precision


class DataSize(NamedTuple):
    """What the estimate needs to know about the data, and where it came from."""

    input_shape: tuple[int, int, int]
    num_classes: int
    train: int
    validation: int
    test: int
    source: str


@dataclass
class Timing:
    """Seconds per step measured on ``device``."""

    device: str
    gpu: bool
    steps: int
    batch_size: int
    model: str
    train_step: float
    eval_step: float


@dataclass
class ComparePlan:
    """The cells of a study, which are finished, and (when measured) the time the rest will take."""

    out: str
    original_dir: str
    cells: list[tuple[str, bool]]
    """(cell name, finished) in the order the sweep runs them."""
    original_epochs: int
    """Epochs of original training still to run (0: finished or pretrained)."""
    cell_epochs: list[int] = field(default_factory=list)
    """Retraining epochs of each unfinished cell."""
    size: DataSize | None = None
    timing: Timing | None = None
    note: str = ""
    """Why there is no estimate, if there is none."""

    @property
    def done(self) -> int:
        return sum(done for _, done in self.cells)

    def seconds(self) -> float:
        """Estimated seconds for everything left (original training and unfinished cells)."""
        size, timing = self.size, self.timing
        batches = lambda n: math.ceil(n / timing.batch_size)  # noqa: E731
        epoch = batches(size.train) * timing.train_step + batches(size.validation) * timing.eval_step
        test_pass = batches(size.test) * timing.eval_step
        original = self.original_epochs * epoch + test_pass if self.original_epochs else 0.0
        return original + sum(e * epoch + 2 * test_pass for e in self.cell_epochs)  # prune + retrain evaluations

    def lines(self) -> list[str]:
        """What the dry run prints: one line per cell, a summary and the estimate."""
        out = [f"{'done   ' if done else 'pending'}  {name}" for name, done in self.cells]
        original = f"{self.original_epochs} epochs to train" if self.original_epochs else "trained"
        out.append(f"{len(self.cells)} cells ({self.done} done, {len(self.cells) - self.done} to run) in {self.out}; "
                   f"original: {self.original_dir} ({original})")
        out.append(self._estimate_line())
        return out

    def _estimate_line(self) -> str:
        if self.timing is None or self.size is None:
            return f"estimate: none ({self.note})" if self.note else "estimate: none"
        t, size = self.timing, self.size
        hours = self.seconds() / 3600
        unit = "GPU-hours" if t.gpu else "hours"
        epochs = self.original_epochs + sum(self.cell_epochs)
        text = (f"estimate: {hours:,.1f} {unit} on this device for {epochs:,} epochs of "
                f"{math.ceil(size.train / t.batch_size):,} steps, measured here on {t.device}: {t.steps} training "
                f"steps of {t.model} at batch {t.batch_size} took {t.train_step:.3f} s/step (evaluation "
                f"{t.eval_step:.3f} s/step); split sizes from {size.source}; every cell timed as the dense model "
                "(filter-pruned cells run faster), input pipeline not timed")
        return text if t.gpu else text + "; this is not a GPU: run the dry run on the GPU machine for GPU-hours"


def plan_compare(config: CompareConfig, measure_steps: int = 5) -> ComparePlan:
    """The study's cells, which are done, and a time estimate from ``measure_steps`` measured steps
    (0: no measurement). Trains nothing and writes nothing."""
    cells = config.cells()
    original_left = config.trains_original and not (config.original_dir / ORIGINAL / "metrics.json").exists()
    plan = ComparePlan(out=str(config.out), original_dir=str(config.original_dir),
                       cells=[(cell.name, cell_done(cell)) for cell in cells],
                       original_epochs=config.base.train.epochs if original_left else 0,
                       cell_epochs=[cell.budget_epochs for cell in cells if not cell_done(cell)])
    if measure_steps < 1:
        plan.note = "nothing measured: --measure-steps 0"
        return plan
    try:
        plan.size = data_size(config.base)
    except TfrewindError as exc:
        plan.note = f"the data cannot be sized here: {exc}"
        return plan
    plan.timing = measure(config.base, plan.size, measure_steps)
    return plan


def data_size(config: RunConfig) -> DataSize:
    """Split sizes from the prepared data, else (tensorflow-datasets, not prepared) from the catalogue table."""
    try:
        bundle = load_data(config.data, seed=config.seed)
    except DataUnavailableError:
        known = catalogue_sizes(config.data)
        if known is None:
            raise
        shape, classes, train, validation, test = known
        return DataSize(shape, classes, train, validation, test,
                        "the tensorflow-datasets catalogue (the data is not prepared here)")
    count = lambda ds: int(ds.cardinality()) if int(ds.cardinality()) >= 0 else int(ds.reduce(0, lambda n, _: n + 1))  # noqa: E731
    batch = bundle.batch_size
    return DataSize(bundle.input_shape, bundle.num_classes, bundle.train_examples,
                    count(bundle.validation) * batch, count(bundle.test) * batch, "the prepared data")


def measure(config: RunConfig, size: DataSize, steps: int) -> Timing:
    """Seconds per training and per evaluation step of the config's model at its batch size, on this device."""
    batch = config.data.batch_size
    set_precision(config.mixed_precision)
    try:
        model = build_model(config.model.name, size.input_shape, size.num_classes)
        schedule = original_schedule(config.train, steps_per_epoch=max(1, math.ceil(size.train / batch)))
        compile_model(model, schedule, config.train.weight_decay, config.jit_compile)
        images = tf.random.stateless_uniform((batch, *size.input_shape), seed=(0, 1))
        labels = tf.random.stateless_uniform((batch,), seed=(0, 2), maxval=size.num_classes, dtype=tf.int64)
        train_step = _seconds_per_call(lambda: model.train_on_batch(images, labels), steps)
        eval_step = _seconds_per_call(lambda: model.test_on_batch(images, labels), steps)
    finally:
        set_precision(False)
    device, gpu = device_name()
    return Timing(device, gpu, steps, batch, model.name, train_step, eval_step)


def _seconds_per_call(call, steps: int) -> float:
    call()  # traces the step: not timed
    started = time.perf_counter()
    for _ in range(steps):
        call()  # returns numbers: the device has finished the step
    return (time.perf_counter() - started) / steps


def device_name() -> tuple[str, bool]:
    """(``GPU: <name>`` or ``CPU: <model>, N cores``, whether it is a GPU): the device Keras trains on."""
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        name = tf.config.experimental.get_device_details(gpus[0]).get("device_name", gpus[0].name)
        return f"GPU: {name}" + (f" (one of {len(gpus)})" if len(gpus) > 1 else ""), True
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"CPU: {_cpu_model()}, {cores} cores", False


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


__all__ = ["ComparePlan", "DataSize", "Timing", "data_size", "device_name", "measure", "plan_compare"]
