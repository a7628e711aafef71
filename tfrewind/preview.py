"""Preview retraining schedules before spending GPU hours: CSV rows and a plot like the paper's Figure 1.

Why a separate module: the preview needs no data and no model — only the original schedule's
description and a budget — so it is instant, and the CLI's ``schedule`` command is one call here.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Sequence

from .config import RetrainConfig, TrainConfig
from .errors import ConfigError
from .retraining import OriginalRecord, build_retrain_schedule, schedule_table


def describe_original(epochs: int, lr: float, milestones: Sequence[int], steps_per_epoch: int,
                      schedule: str = "step", momentum: float = 0.9) -> OriginalRecord:
    train = TrainConfig(epochs=epochs, lr=lr, milestones=list(milestones), schedule=schedule, momentum=momentum)
    train.validate()
    return OriginalRecord.from_config(train, steps_per_epoch)


def schedule_rows(name: str, budget_epochs: int, original: OriginalRecord, per_step: bool = False,
                  config: RetrainConfig | None = None) -> list[tuple[int, float, float]]:
    stage = build_retrain_schedule(name, original, budget_epochs, config)
    return schedule_table(stage, original.steps_per_epoch, per_step=per_step)


def rows_to_csv(rows: list[tuple[int, float, float]], per_step: bool) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["step" if per_step else "epoch", "lr", "momentum"])
    for index, lr, momentum in rows:
        writer.writerow([index, f"{lr:.8g}", f"{momentum:.6g}"])
    return buffer.getvalue()


def plot_schedules(names: Sequence[str], budget_epochs: int, original: OriginalRecord, path: str | Path,
                   config: RetrainConfig | None = None) -> Path:
    """Original training followed by each retraining schedule, LR on a log axis (Figure 1 style)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .io import write_bytes_atomic

    spe = original.steps_per_epoch
    stride = max(1, spe // 20)
    original_stage = original_schedule_stage(original)
    base = schedule_table(original_stage, spe, per_step=True)[::stride]
    fig, (ax_lr, ax_m) = plt.subplots(2, 1, figsize=(8, 5.5), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    ax_lr.plot([s / spe for s, _, _ in base], [lr for _, lr, _ in base], color="black", label="original training")
    for name in names:
        rows = schedule_rows(name, budget_epochs, original, per_step=True, config=config)[::stride]
        epochs = [original.epochs + s / spe for s, _, _ in rows]
        style = "--" if name == "weight_rewind" else "-"  # WR replays the same LR as LRW
        line, = ax_lr.plot(epochs, [lr for _, lr, _ in rows], style, label=name)
        ax_m.plot(epochs, [m for _, _, m in rows], color=line.get_color())
    ax_lr.set_yscale("log")
    ax_lr.set_ylabel("learning rate")
    ax_lr.axvline(original.epochs, color="grey", linestyle=":", linewidth=1)
    ax_lr.set_title(f"Retraining schedules, budget {budget_epochs} epochs after {original.epochs} original epochs")
    ax_lr.legend(fontsize=8)
    ax_m.set_ylabel("momentum")
    ax_m.set_xlabel("epoch")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120)
    plt.close(fig)
    return write_bytes_atomic(path, buffer.getvalue())


def preview_schedule(names: Sequence[str], budget_epochs: int, original: OriginalRecord, fmt: str = "csv",
                     out: str | Path | None = None, per_step: bool = False) -> str | Path:
    """``tfrewind schedule``: one schedule's CSV text (``epoch|step,lr,momentum``), or a PNG of several.

    Why one entry point: the command and a notebook get the same preview with one call; the pieces
    (:func:`schedule_rows`, :func:`plot_schedules`) stay available for custom plots.
    """
    if fmt == "png":
        return plot_schedules(names, budget_epochs, original, out or "schedule.png")
    if len(names) != 1:
        raise ConfigError("CSV previews one schedule at a time")
    return rows_to_csv(schedule_rows(names[0], budget_epochs, original, per_step=per_step), per_step)


def original_schedule_stage(original: OriginalRecord):
    from .training import StageSchedule

    return StageSchedule(original.schedule, momentum=original.momentum, epochs=original.epochs)

