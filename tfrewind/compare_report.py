"""Results of a compare directory, rebuilt from its run directories alone: ``results.csv`` (one row per
cell), ``results.md`` (mean ± std over seeds, difference to the unpruned model), ``accuracy_vs_budget.png``
(the paper's teaser figure, one panel per pruning method) and ``schedules_b<E>.png`` (its Figure 1).

Why separate from :mod:`tfrewind.compare`: ``tfrewind compare`` (at the end of a sweep) and
``tfrewind report DIR`` (at any time, e.g. while a sweep runs elsewhere) share this one code path,
and it only reads ``metrics.json``/``cell.json``/``error.json`` files — never a model. It sits below
the sweep: the cell layout it reads is :mod:`tfrewind.compare_cells`, and it never imports
:mod:`tfrewind.compare`.
"""

from __future__ import annotations

import csv
import io
import math
import statistics
from pathlib import Path
from typing import Any

from .compare_cells import CELL_FILE, ERROR_FILE, cell_done, cell_final_stages
from .compare_config import Cell, CompareConfig
from .io import read_json, write_bytes_atomic, write_text_atomic
from .schedule_record import record_path

CSV_FILE = "results.csv"
MARKDOWN_FILE = "results.md"
ACCURACY_PLOT = "accuracy_vs_budget.png"

COLUMNS = ["cell", "method", "label", "sparsity", "preset", "schedule", "budget", "budget_epochs", "seed", "status",
           "accuracy_unpruned", "accuracy_before_retrain", "accuracy_after_retrain", "accuracy_best_epoch", "sparsity_achieved",
           "params", "nonzero_params", "flops", "sparse_flops", "retrain_seconds", "cell_seconds", "error"]
"""``flops`` are multiply-accumulates of the (physically) pruned model; ``sparse_flops`` count only
non-zero weights; ``params`` count every weight, ``nonzero_params`` the ones left after pruning.
``accuracy_after_retrain`` is the final model's test accuracy, ``accuracy_best_epoch`` the highest
test accuracy over the last retraining's epochs (what the paper's code logs; :data:`FINAL_VS_BEST`)."""

FINAL_VS_BEST = ("final: the model retraining ends with, the default because it is the model you keep and export "
                 "(choosing the epoch by its test accuracy would select on the test set); best: the best epoch's "
                 "test accuracy over retraining, what the paper's code (NPTM) logs and reports.")


def write_results(config: CompareConfig) -> tuple[list[dict[str, Any]], list[Path]]:
    """Read every cell's run directory and write the CSV, the Markdown table and the plots."""
    out = config.out_dir
    dense = _dense(config)
    cells = config.cells()
    rows = [cell_row(cell, dense) for cell in cells]
    groups = summarise(rows)
    files = [write_text_atomic(out / CSV_FILE, rows_to_csv(rows)),
             write_text_atomic(out / MARKDOWN_FILE, markdown(config, rows, groups, dense))]
    if any(g["n"] for g in groups):
        files.append(plot_accuracy(config, groups, dense, out / ACCURACY_PLOT))
    files += plot_schedule_curves(config, cells)
    return rows, files


def _dense(config: CompareConfig) -> dict[str, Any]:
    path = config.original_dir / "original" / "metrics.json"
    return read_json(path) if path.exists() else {}


def cell_row(cell: Cell, dense: dict[str, Any]) -> dict[str, Any]:
    """One CSV row: the cell's grid coordinates and the numbers of its metrics.json files."""
    prune = cell.config.prune
    structured_spec = prune.preset is not None or prune.ratios is not None or prune.macs is not None
    row: dict[str, Any] = {
        "cell": cell.name, "method": prune.method, "label": cell.method.name,
        "sparsity": "" if structured_spec else prune.sparsity, "preset": prune.preset or "",
        "schedule": cell.schedule, "budget": cell.budget, "budget_epochs": cell.budget_epochs, "seed": cell.seed,
        "accuracy_unpruned": dense.get("test_accuracy", ""),
    }
    path = cell.path
    prune_stages = sorted(p.parent.name for p in path.glob("prune*/metrics.json"))
    if prune_stages:
        first = read_json(path / prune_stages[0] / "metrics.json")
        last = read_json(path / prune_stages[-1] / "metrics.json")
        report = last.get("report", {})
        row.update({"accuracy_before_retrain": first.get("test_accuracy"),
                    "params": report.get("params_after"), "nonzero_params": report.get("nonzero_params_after"),
                    "flops": report.get("flops_after"), "sparse_flops": report.get("sparse_flops_after")})
    if cell_done(cell):
        final = read_json(path / cell_final_stages(cell.config)[0] / "metrics.json")
        row.update({"status": "ok", "accuracy_after_retrain": final.get("test_accuracy"),
                    "accuracy_best_epoch": max((final.get("history") or {}).get("test_accuracy") or [None]),
                    "sparsity_achieved": (final.get("sparsity") or {}).get("sparsity"),
                    "retrain_seconds": final.get("seconds")})
        if (path / CELL_FILE).exists():
            row["cell_seconds"] = read_json(path / CELL_FILE).get("seconds")
    elif (path / ERROR_FILE).exists():
        error = read_json(path / ERROR_FILE)
        row.update({"status": "failed", "error": error.get("error", ""), "cell_seconds": error.get("seconds")})
    else:
        row["status"] = "pending"
    return {key: ("" if row.get(key) is None else row.get(key, "")) for key in COLUMNS}


def rows_to_csv(rows: list[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (repr(v) if isinstance(v, float) else v) for k, v in row.items()})
    return buffer.getvalue()


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean and sample std (n − 1) over seeds per (method, schedule, budget), in grid order."""
    dense = next((r["accuracy_unpruned"] for r in rows if r["accuracy_unpruned"] != ""), None)
    groups: dict[tuple, dict[str, Any]] = {}
    for row in rows:
        key = (row["label"], row["schedule"], row["budget_epochs"])
        group = groups.setdefault(key, {"label": row["label"], "schedule": row["schedule"],
                                        "budget": row["budget"], "budget_epochs": row["budget_epochs"],
                                        "after": [], "best": [], "before": [], "nonzero_params": [], "flops": [],
                                        "sparse_flops": [], "seconds": [], "failed": 0, "pending": 0})
        if row["status"] == "ok":
            group["after"].append(float(row["accuracy_after_retrain"]))
            for column, key_ in (("accuracy_before_retrain", "before"), ("accuracy_best_epoch", "best")):
                if row[column] != "":
                    group[key_].append(float(row[column]))
            for key_ in ("nonzero_params", "flops", "sparse_flops"):
                if row[key_] != "":
                    group[key_].append(float(row[key_]))
            if row["cell_seconds"] != "":
                group["seconds"].append(float(row["cell_seconds"]))
        else:
            group[row["status"]] += 1
    out = []
    for group in groups.values():
        after, before, best = group["after"], group["before"], group["best"]
        group.update({"n": len(after), "mean": _mean(after), "std": _std(after), "before_mean": _mean(before),
                      "before_std": _std(before), "best_mean": _mean(best), "best_std": _std(best),
                      "delta": None if dense in (None, "") or not after else _mean(after) - float(dense)})
        out.append(group)
    return out


def _mean(values: list[float]) -> float | None:
    return statistics.fmean(values) if values else None


def _std(values: list[float]) -> float | None:
    return statistics.stdev(values) if len(values) > 1 else None


def _pct(mean: float | None, std: float | None = None) -> str:
    if mean is None:
        return "–"
    return f"{100 * mean:.2f}" + ("" if std is None else f" ± {100 * std:.2f}")


def _signed(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:+.2f}"


def _count(value: Any) -> str:
    if value in (None, "") or (isinstance(value, float) and math.isnan(value)):
        return "–"
    value = float(value)
    return f"{value / 1e6:.2f} M" if value >= 1e6 else f"{value / 1e3:.1f} k" if value >= 1e3 else f"{value:.0f}"


def markdown(config: CompareConfig, rows: list[dict[str, Any]], groups: list[dict[str, Any]],
             dense: dict[str, Any]) -> str:
    base = config.base
    statuses = [r["status"] for r in rows]
    lines = [f"# Compare: {config.description or config.out_dir.name}", ""]
    lines.append(f"Dataset `{base.data.name}`, model `{base.model.name}`; original training {config.original_epochs()} "
                 f"epochs (`{base.train.schedule}`, lr {base.train.lr:g}), shared by every cell "
                 f"(`{config.original_dir}`). Seeds {', '.join(map(str, config.grid.seeds))} vary pruning and "
                 "retraining (random masks/filters, data order), not the original training.")
    lines.append("")
    lines.append(f"**Unpruned model: {_pct(dense.get('test_accuracy'))} % test accuracy**, "
                 f"{_count(dense.get('params'))} parameters. Cells: {statuses.count('ok')} finished, "
                 f"{statuses.count('failed')} failed, {statuses.count('pending')} pending.")
    lines += _recalibration_note(base)
    lines += ["", "## Test accuracy after retraining (%, mean ± std over seeds): final (Δ to the unpruned model) "
              "and best epoch", "", FINAL_VS_BEST, ""]
    schedules = config.grid.schedules
    lines.append("| method | budget (epochs) | " + " | ".join(f"{s} final | {s} best" for s in schedules) + " |")
    lines.append("|---|---:|" + "---:|---:|" * len(schedules))
    index = {(g["label"], g["schedule"], g["budget_epochs"]): g for g in groups}
    budgets = sorted({g["budget_epochs"] for g in groups})
    for spec in config.grid.methods:
        for budget in budgets:
            cells = []
            for schedule in schedules:
                g = index.get((spec.name, schedule, budget))
                cells.append("– | –" if g is None or not g["n"] else
                             f"{_pct(g['mean'], g['std'])} ({_signed(g['delta'])})" + _incomplete(g, config)
                             + f" | {_pct(g['best_mean'], g['best_std'])}")
            lines.append(f"| {spec.name} | {budget} | " + " | ".join(cells) + " |")
    lines += ["", "## Every (method, schedule, budget)", "",
              "| method | schedule | budget | n | before retraining % | final % | best epoch % | Δ (final) to unpruned | "
              "non-zero params | MACs (dense kernels) | MACs (non-zero) | time per cell (s) |",
              "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for g in groups:
        lines.append(f"| {g['label']} | {g['schedule']} | {g['budget_epochs']} | {g['n']} | "
                     f"{_pct(g['before_mean'], g['before_std'])} | {_pct(g['mean'], g['std'])} | "
                     f"{_pct(g['best_mean'], g['best_std'])} | {_signed(g['delta'])} | "
                     f"{_count(_mean(g['nonzero_params']))} | {_count(_mean(g['flops']))} | "
                     f"{_count(_mean(g['sparse_flops']))} | "
                     f"{_seconds(g['seconds'])} |")
    failed = [r for r in rows if r["status"] == "failed"]
    if failed:
        lines += ["", "## Failed cells", ""] + [f"- `{r['cell']}`: {r['error']}" for r in failed]
    lines += ["", "std: sample standard deviation over seeds (n − 1); n: finished seeds. Δ: mean accuracy after "
              "retraining minus the unpruned model's. Every number comes from the cells' `metrics.json` "
              "(`results.csv` has one row per cell).", ""]
    if config.out_dir.joinpath(ACCURACY_PLOT).exists() or any(g["n"] for g in groups):
        lines += [f"![accuracy vs budget]({ACCURACY_PLOT})", ""]
    for budget in budgets:
        lines += [f"![schedules, budget {budget}](schedules_b{budget}.png)", ""]
    return "\n".join(lines)


def _recalibration_note(base) -> list[str]:
    """Say when BN statistics were recalibrated: it changes what "before retraining" and "final" measure."""
    parts = [f"after pruning on {base.prune.recalibrate_bn} training batches (before the accuracy before retraining)"
             if base.prune.recalibrate_bn else "", f"after retraining on {base.retrain.recalibrate_bn} batches (final "
             "is measured after it, the per-epoch best before it)" if base.retrain.recalibrate_bn else ""]
    parts = [p for p in parts if p]
    return ["", "Batch-norm statistics recalibrated " + "; ".join(parts) + "."] if parts else []


def _seconds(values: list[float]) -> str:
    return "–" if not values else f"{_mean(values):.0f}"


def headline_table(out: str | Path) -> str:
    """The first table of ``results.md`` (accuracy after retraining per method × budget × schedule)."""
    lines = (Path(out) / MARKDOWN_FILE).read_text().splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("## ")), len(lines))
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    return "\n".join(lines[start:end]).strip()


def _incomplete(group: dict[str, Any], config: CompareConfig) -> str:
    return "" if group["n"] == len(config.grid.seeds) else f" n={group['n']}"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    _pyplot().close(fig)
    return write_bytes_atomic(path, buffer.getvalue())


def plot_accuracy(config: CompareConfig, groups: list[dict[str, Any]], dense: dict[str, Any], path: Path) -> Path:
    """Accuracy after retraining vs budget: one panel per method, one line per schedule (± std)."""
    plt = _pyplot()
    labels = [m.name for m in config.grid.methods]
    ncols = 2 if len(labels) in (2, 4) else min(len(labels), 3)
    nrows = math.ceil(len(labels) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.6 * ncols + 0.4, 3.6 * nrows + 0.5), sharey=True,
                             squeeze=False)
    panels = list(axes.flat)
    for ax in panels[len(labels):]:
        ax.set_visible(False)
    colours = {s: f"C{i}" for i, s in enumerate(config.grid.schedules)}
    for ax, label in zip(panels, labels):
        for schedule in config.grid.schedules:
            points = sorted((g["budget_epochs"], g["mean"], g["std"] or 0.0) for g in groups
                            if g["label"] == label and g["schedule"] == schedule and g["n"])
            if points:
                ax.errorbar([p[0] for p in points], [100 * p[1] for p in points], yerr=[100 * p[2] for p in points],
                            marker="o", capsize=3, color=colours[schedule], label=schedule)
        if dense.get("test_accuracy") is not None:
            ax.axhline(100 * dense["test_accuracy"], color="black", linestyle="--", linewidth=1, label="unpruned")
        ax.set_title(label, fontsize=10)
        ax.set_xlabel("retraining budget (epochs)")
        ax.set_xticks(sorted({g["budget_epochs"] for g in groups}))
        ax.grid(alpha=0.3)
    for row in axes:
        row[0].set_ylabel("test accuracy (%)")
    panels[0].legend(fontsize=8)
    seeds = len(config.grid.seeds)
    fig.suptitle(f"{config.base.model.name} on {config.base.data.name}: accuracy after retraining, "
                 + (f"mean ± std over {seeds} seeds" if seeds > 1 else "1 seed"), fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def plot_schedule_curves(config: CompareConfig, cells: list[Cell]) -> list[Path]:
    """The LR (and momentum) curves of the grid's schedules after the recorded original schedule, per budget."""
    record = record_path(config.original_dir)
    if not record.exists():
        return []
    from .preview import plot_schedules
    from .retraining import OriginalRecord

    original = OriginalRecord.from_file(record)
    budgets = sorted({cell.budget_epochs for cell in cells})
    return [plot_schedules(config.grid.schedules, budget, original, config.out_dir / f"schedules_b{budget}.png",
                           config=config.base.retrain) for budget in budgets]


__all__ = ["COLUMNS", "cell_row", "headline_table", "markdown", "plot_accuracy", "plot_schedule_curves", "rows_to_csv", "summarise",
           "write_results"]
