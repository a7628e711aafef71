"""The digits study of docs/results-digits.md, run from scratch and aggregated (issue 14).

Usage (from the project root)::

    python scripts/digits_study.py                 # runs every slice (resumable), then aggregates
    python scripts/digits_study.py --aggregate     # only rebuild docs/results-digits/ from runs/digits-study

Why a script around ``tfrewind compare``: one compare is one original training and one grid. The
study needs more than one original training (so that the spread includes it) and grids of different
shapes (every schedule only where they differ), so it runs several compares — each the real command,
resumable — and pools their ``results.csv`` files. Slices, each for both original trainings
(original seed 0 with retraining seeds 0 and 1, original seed 1 with retraining seed 2: three runs
per cell, two originals):

- ``sweep``: 8 pruning settings (global magnitude vs random weights at 80/95 %, L1 vs random filters
  at 50/75 %) × fine-tuning and 1-cycle × budgets 10 % and 25 % of T (4 and 10 epochs);
- ``long``: global magnitude at 95 % and L1 filters at 75 % × all five schedules × budget 50 % (20
  epochs) — LR and weight rewinding equal fine-tuning's LR at budgets ≤ 10 epochs here (the last
  25 % of the original schedule is at its final LR), so the 50 % budget is where they differ;
- ``keras-bn``: tf_keras' batch norm defaults (momentum 0.99, epsilon 1e-3) and no recalibration,
  as the old study ran, for a few cells of ``sweep`` (random weights at 95 %, L1 filters at 75 %,
  fine-tuning and 1-cycle, budget 10 %; one original training, three seeds).

Cut to keep the study near 40 minutes on 2 cores: sparsities 0.5 and 0.9 (weights) and 0.25
(filters), the 50 % budget for the random methods and at lower sparsities, LR/weight rewinding and
scaled-LR restarts at the short budgets (where rewinding is fine-tuning).

Everything else is ``configs/compare/digits-study.yaml``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CONFIG = "configs/compare/digits-study.yaml"
RUNS = ROOT / "runs" / "digits-study"
DOCS = ROOT / "docs" / "results-digits"
SWEEP_METHODS = ("global_magnitude:0.8,random:0.8,global_magnitude:0.95,random:0.95,"
                 "l1_filter:0.5,random_filter:0.5,l1_filter:0.75,random_filter:0.75")
LONG_METHODS = "global_magnitude:0.95,l1_filter:0.75"
ALL_SCHEDULES = "fine_tune,lr_rewind,weight_rewind,scaled_lr_restart,one_cycle"
ORIGINALS = {0: "0,1", 1: "2"}
"""Original training seed → retraining seeds run from it."""
KERAS_BN = ["--set", "model.bn_momentum=0.99", "--set", "model.bn_epsilon=0.001", "--set", "prune.recalibrate_bn=0"]


def slices() -> list[dict[str, Any]]:
    """Every compare of the study: its output directory and its command-line overrides."""
    found = []
    for original, seeds in ORIGINALS.items():
        base = ["--seeds", seeds, "--set", f"seed={original}"]
        sweep_out = RUNS / f"o{original}-sweep"
        pretrained = ["--set", f"train.pretrained={sweep_out / 'original_run'}"]
        found.append({"name": "sweep", "original": original, "out": sweep_out,
                      "args": [*base, "--set", f"grid.methods={SWEEP_METHODS}",
                               "--set", "grid.schedules=fine_tune,one_cycle", "--set", "grid.budgets=10%,25%"]})
        found.append({"name": "long", "original": original, "out": RUNS / f"o{original}-long",
                      "args": [*base, *pretrained, "--set", f"grid.methods={LONG_METHODS}",
                               "--set", f"grid.schedules={ALL_SCHEDULES}", "--set", "grid.budgets=50%"]})
    found.append({"name": "keras-bn", "original": 0, "out": RUNS / "o0-keras-bn",
                  "args": ["--seeds", "0,1,2", "--set", "seed=0", *KERAS_BN,
                           "--set", "grid.methods=random:0.95,l1_filter:0.75",
                           "--set", "grid.schedules=fine_tune,one_cycle", "--set", "grid.budgets=10%"]})
    return found


def run_slice(spec: dict[str, Any]) -> float:
    """One ``tfrewind compare`` in a fresh process (the command a user types); its wall seconds."""
    command = [sys.executable, "-m", "tfrewind.cli", "compare", "--config", CONFIG, "--out", str(spec["out"]),
               *spec["args"]]
    print(f"{time.strftime('%H:%M:%S')} {spec['out'].name}: {' '.join(command[2:])}", file=sys.stderr, flush=True)
    started = time.perf_counter()
    subprocess.run(command, cwd=ROOT, check=True)
    return time.perf_counter() - started


# ----------------------------------------------------------------------------- aggregation


def pooled_rows() -> list[dict[str, Any]]:
    """Every finished cell of every slice, with the slice, the original seed and a numeric accuracy."""
    rows = []
    for spec in slices():
        path = spec["out"] / "results.csv"
        if not path.exists():
            continue
        with path.open() as handle:
            for row in csv.DictReader(handle):
                if row["status"] != "ok":
                    continue
                row.update(slice=spec["name"], original_seed=spec["original"])
                for key in ("accuracy_after_retrain", "accuracy_best_epoch", "accuracy_before_retrain",
                            "accuracy_unpruned", "sparsity"):
                    row[key] = float(row[key]) if row[key] not in ("", None) else None
                rows.append(row)
    return rows


def family(method: str) -> str:
    return "filters" if method.endswith("_filter") else "weights"


def summary(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean ± sample std of final (and best-epoch) accuracy per slice/method/sparsity/schedule/budget."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for row in rows:
        key = (row["slice"] == "keras-bn", row["method"], row["sparsity"], row["schedule"], row["budget"])
        groups.setdefault(key, []).append(row)
    out = []
    for (keras_bn, method, sparsity, schedule, budget), members in sorted(groups.items(), key=lambda kv: str(kv[0])):
        final = [100 * m["accuracy_after_retrain"] for m in members]
        best = [100 * m["accuracy_best_epoch"] for m in members if m["accuracy_best_epoch"] is not None]
        before = [100 * m["accuracy_before_retrain"] for m in members if m["accuracy_before_retrain"] is not None]
        out.append({"keras_bn": keras_bn, "method": method, "family": family(method), "sparsity": sparsity,
                    "schedule": schedule, "budget": budget, "epochs": int(members[0]["budget_epochs"]),
                    "n": len(final), "originals": len({m["original_seed"] for m in members}),
                    "mean": statistics.mean(final), "std": statistics.stdev(final) if len(final) > 1 else 0.0,
                    "best_mean": statistics.mean(best) if best else None,
                    "before_mean": statistics.mean(before) if before else None})
    return out


def _find(table, **where):
    hits = [g for g in table if all(g[k] == v for k, v in where.items())]
    return hits[0] if hits else None


def _gap(cell: dict[str, Any], baseline: dict[str, Any]) -> tuple[float, float]:
    """``cell``'s mean minus ``baseline``'s, and one std: the larger std of the two cells."""
    return cell["mean"] - baseline["mean"], max(cell["std"], baseline["std"])


def large_lr_vs_ft(table: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per pruning setting and budget: each large-LR schedule's mean minus fine-tuning's, and whether it
    exceeds one standard deviation (the larger of the two cells' std)."""
    out = []
    for ft in [g for g in table if g["schedule"] == "fine_tune" and not g["keras_bn"]]:
        for other in [g for g in table if not g["keras_bn"] and g["schedule"] != "fine_tune"
                      and (g["method"], g["sparsity"], g["budget"]) == (ft["method"], ft["sparsity"], ft["budget"])]:
            delta, spread = _gap(other, ft)
            verdict = "beats" if delta > spread else ("worse" if delta < -spread else "within 1 std")
            out.append({"method": ft["method"], "sparsity": ft["sparsity"], "budget": ft["budget"],
                        "epochs": ft["epochs"], "schedule": other["schedule"], "delta": delta, "spread": spread,
                        "verdict": verdict})
    return out


METHODICAL = {"random": "global_magnitude", "random_filter": "l1_filter"}


def random_one_cycle_vs_methodical_ft(table: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for rand in [g for g in table if g["method"] in METHODICAL and g["schedule"] == "one_cycle" and not g["keras_bn"]]:
        ft = _find(table, method=METHODICAL[rand["method"]], sparsity=rand["sparsity"], schedule="fine_tune",
                   budget=rand["budget"], keras_bn=False)
        if ft is None:
            continue
        delta, spread = _gap(rand, ft)
        verdict = "exceeds it" if delta > spread else ("reaches it (within 1 std)" if delta >= -spread else "falls short")
        out.append({"random": rand["method"], "sparsity": rand["sparsity"], "budget": rand["budget"],
                    "epochs": rand["epochs"], "random_one_cycle": rand["mean"], "random_std": rand["std"],
                    "methodical_ft": ft["mean"], "methodical_std": ft["std"], "delta": delta, "verdict": verdict})
    return out


def bn_effect(table: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for old in [g for g in table if g["keras_bn"]]:
        new = _find(table, method=old["method"], sparsity=old["sparsity"], schedule=old["schedule"],
                    budget=old["budget"], keras_bn=False)
        if new is not None:
            out.append({"method": old["method"], "sparsity": old["sparsity"], "schedule": old["schedule"],
                        "budget": old["budget"], "epochs": old["epochs"], "keras_bn": old["mean"],
                        "keras_bn_std": old["std"], "pytorch_bn": new["mean"], "pytorch_bn_std": new["std"],
                        "delta": new["mean"] - old["mean"]})
    return out


def _pm(mean, std):
    return f"{mean:.2f} ± {std:.2f}"


def markdown(table, vs_ft, vs_random, bn, dense: list[float]) -> str:
    """The generated tables of the doc (the reading is written by hand in docs/results-digits.md)."""
    schedules = ["fine_tune", "lr_rewind", "weight_rewind", "scaled_lr_restart", "one_cycle"]
    lines = [f"Unpruned originals: {', '.join(f'{100 * d:.2f} %' for d in dense)} test accuracy.", "",
             "### Final test accuracy (%), mean ± std over 3 runs (2 original trainings); best epoch's mean in brackets",
             "", "| pruning | sparsity | budget (epochs) | " + " | ".join(schedules) + " |",
             "|---|---:|---:|" + "---:|" * len(schedules)]
    keys = sorted({(g["family"], g["method"], g["sparsity"], g["epochs"]) for g in table if not g["keras_bn"]},
                  key=lambda k: (k[0] != "weights", k[2], k[1].startswith("random"), k[3]))
    for fam, method, sparsity, epochs in keys:
        cells = []
        for schedule in schedules:
            g = _find(table, method=method, sparsity=sparsity, epochs=epochs, schedule=schedule, keras_bn=False)
            cells.append(f"{_pm(g['mean'], g['std'])} ({g['best_mean']:.1f})" if g else "")
        lines.append(f"| {method} | {sparsity:g} | {epochs} | " + " | ".join(cells) + " |")
    lines += ["", "### Does a large-LR schedule beat fine-tuning by more than one std?", "",
              "Δ = schedule − fine_tune (points); 1 std = the larger std of the two cells.", "",
              "| pruning | sparsity | epochs | schedule | Δ | 1 std | verdict |", "|---|---:|---:|---|---:|---:|---|"]
    for r in sorted(vs_ft, key=lambda r: (r["method"], r["sparsity"], r["epochs"], r["schedule"])):
        lines.append(f"| {r['method']} | {r['sparsity']:g} | {r['epochs']} | {r['schedule']} | {r['delta']:+.2f} | "
                     f"{r['spread']:.2f} | {r['verdict']} |")
    lines += ["", "### Random pruning + 1-cycle vs methodical pruning + fine-tuning", "",
              "| random | sparsity | epochs | random + one_cycle | methodical + fine_tune | Δ | verdict |",
              "|---|---:|---:|---:|---:|---:|---|"]
    for r in sorted(vs_random, key=lambda r: (r["random"], r["sparsity"], r["epochs"])):
        lines.append(f"| {r['random']} | {r['sparsity']:g} | {r['epochs']} | {_pm(r['random_one_cycle'], r['random_std'])} | "
                     f"{_pm(r['methodical_ft'], r['methodical_std'])} | {r['delta']:+.2f} | {r['verdict']} |")
    lines += ["", "### tf_keras' batch norm defaults (momentum 0.99, epsilon 1e-3, no recalibration) vs PyTorch's", "",
              "| pruning | sparsity | schedule | epochs | tf_keras BN | PyTorch BN | Δ |", "|---|---:|---|---:|---:|---:|---:|"]
    for r in sorted(bn, key=lambda r: (r["method"], r["epochs"], r["schedule"])):
        lines.append(f"| {r['method']} | {r['sparsity']:g} | {r['schedule']} | {r['epochs']} | "
                     f"{_pm(r['keras_bn'], r['keras_bn_std'])} | {_pm(r['pytorch_bn'], r['pytorch_bn_std'])} | "
                     f"{r['delta']:+.2f} |")
    return "\n".join(lines) + "\n"


def plot(table, path: Path) -> None:
    """Accuracy vs sparsity per schedule, one panel per budget; weights on top, filters below."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    budgets = sorted({g["epochs"] for g in table if not g["keras_bn"]})
    share = {g["epochs"]: g["budget"] for g in table}  # "10%": the grid's own label, T read from no constant
    fig, axes = plt.subplots(2, len(budgets), figsize=(4.2 * len(budgets), 7), squeeze=False, sharey="row")
    colours = {"fine_tune": "tab:blue", "lr_rewind": "tab:orange", "weight_rewind": "tab:green",
               "scaled_lr_restart": "tab:purple", "one_cycle": "tab:red"}
    for row, fam in enumerate(("weights", "filters")):
        for col, epochs in enumerate(budgets):
            ax = axes[row][col]
            for schedule, colour in colours.items():
                for method in sorted({g["method"] for g in table if g["family"] == fam}):
                    points = sorted((g["sparsity"], g["mean"], g["std"]) for g in table
                                    if not g["keras_bn"] and g["method"] == method and g["schedule"] == schedule
                                    and g["epochs"] == epochs)
                    if not points:
                        continue
                    xs, ys, es = zip(*points)
                    ax.errorbar(xs, ys, yerr=es, color=colour, marker="o", capsize=3,
                                linestyle="--" if method.startswith("random") else "-",
                                label=f"{method} + {schedule}")
            ax.set_title(f"{fam}: budget {epochs} epochs ({share[epochs]} of T)")
            ax.set_xlabel("share of weights removed" if fam == "weights" else "share of filters removed")
            ax.grid(alpha=0.3)
            if col == 0:  # the short budgets hold every method: solid = methodical, dashed = random
                ax.set_ylabel("final test accuracy (%)")
                ax.legend(fontsize=6, loc="lower left")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def aggregate(timing: dict[str, Any] | None = None) -> None:
    from tfrewind.io import read_json, write_json_atomic, write_text_atomic

    rows = pooled_rows()
    table = summary(rows)
    vs_ft, vs_random, bn = large_lr_vs_ft(table), random_one_cycle_vs_methodical_ft(table), bn_effect(table)
    dense = sorted({r["accuracy_unpruned"] for r in rows if r["slice"] == "sweep"})
    DOCS.mkdir(parents=True, exist_ok=True)
    columns = ["slice", "original_seed", *[k for k in rows[0] if k not in ("slice", "original_seed")]] if rows else []
    with (DOCS / "results.csv").open("w") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    write_text_atomic(DOCS / "results.md", markdown(table, vs_ft, vs_random, bn, dense))
    plot(table, DOCS / "accuracy_vs_sparsity.png")
    store = DOCS / "study.json"
    previous = read_json(store) if store.exists() else {}
    write_json_atomic(store, {"timing": timing or previous.get("timing"), "summary": table, "large_lr_vs_ft": vs_ft,
                              "random_one_cycle_vs_methodical_ft": vs_random, "bn": bn, "cells": len(rows)})
    print(f"{len(rows)} cells → {DOCS}", file=sys.stderr)


def commit() -> str:
    return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                          check=True).stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--aggregate", action="store_true", help="only pool the finished slices into docs/")
    args = parser.parse_args()
    if not args.aggregate:
        started, load = time.perf_counter(), os.getloadavg()[0]
        walls = {f"{s['out'].name}": run_slice(s) for s in slices()}
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        timing = {"commit": commit(), "wall_s": time.perf_counter() - started, "slices_s": walls,
                  "cpu_s": usage.ru_utime + usage.ru_stime, "load_before": load, "load_after": os.getloadavg()[0],
                  "finished": time.strftime("%Y-%m-%d %H:%M %Z"), "cores": os.cpu_count()}
        print(json.dumps(timing), file=sys.stderr)
        aggregate(timing)
    else:
        aggregate()


if __name__ == "__main__":
    main()
