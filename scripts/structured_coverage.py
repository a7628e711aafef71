"""Channel-pruning coverage of ``tf_keras.applications``, written to docs/structured-pruning.md.

Usage (from the project root)::

    python scripts/structured_coverage.py                  # every constructor; resumes
    python scripts/structured_coverage.py --smallest       # the smallest variant of each family only
    python scripts/structured_coverage.py --only ResNet50,VGG16 --redo
    python scripts/structured_coverage.py --render         # rewrite the doc's table from the JSON

For every constructor in ``tf_keras.applications`` (found by listing the module, not by a list
kept here) the script builds the model with ``weights=None`` at the smallest input it accepts —
32×32, or the minimum the constructor's own check names (75 for Inception, 71 for Xception) —
saves it and runs the commands a user would (the ``tfrewind`` command line's own entry point, in a
fresh process per model)::

    tfrewind prune MODEL.keras --prune l1_filter --config macs.yaml --out MODEL_pruned.keras
    tfrewind export MODEL_pruned.keras --out MODEL_export

(``macs.yaml`` holds ``prune: {macs: 0.5}``, the same config as ``--macs 0.5``), and records the
MACs ratio reached, the rebuild error, whether LiteRT ran the exported file and agreed with Keras,
or the one-line refusal. Results go to docs/structured-coverage.json as each model finishes
(atomically), so an interrupted run resumes where it stopped. Order: the smallest variant of every
family first, then the others by their relative size in their family, so that the table is useful
early and the largest models (ConvNeXtXLarge, EfficientNetB7, RegNetY320…) come last.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import inspect
import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tfrewind.io import read_json, write_json_atomic, write_text_atomic  # noqa: E402

STORE = ROOT / "docs" / "structured-coverage.json"
DOC = ROOT / "docs" / "structured-pruning.md"
WORK = Path("/tmp/tfrewind-coverage")
MACS_TARGET = 0.5
MACS_BAR = 0.55
SMALL_INPUT = 32
MODEL_TIMEOUT_S = 2 * 3600

FAMILIES = [  # (family, constructor-name pattern); first match wins, unmatched names are their own family
    ("MobileNet v1", r"MobileNet$"), ("MobileNet v2", r"MobileNetV2$"), ("MobileNet v3", r"MobileNetV3"),
    ("ResNet v1", r"ResNet\d+$"), ("ResNet v2", r"ResNet\d+V2$"), ("ResNet-RS", r"ResNetRS"),
    ("DenseNet", r"DenseNet"), ("EfficientNet v1", r"EfficientNetB\d"), ("EfficientNet v2", r"EfficientNetV2"),
    ("Inception", r"InceptionV3$"), ("Inception-ResNet", r"InceptionResNet"), ("Xception", r"Xception"),
    ("NASNet", r"NASNet"), ("RegNet", r"RegNet"), ("ConvNeXt", r"ConvNeXt"), ("VGG", r"VGG"),
]
BAR_FAMILIES = ["MobileNet v1", "MobileNet v2", "MobileNet v3", "ResNet v1", "ResNet v2", "DenseNet",
                "EfficientNet v1", "EfficientNet v2", "Inception", "Xception", "NASNet", "RegNet", "ConvNeXt",
                "VGG"]
"""The families issue 13 names: at least 90 % of them must succeed."""
_SIZE_WORDS = {"Tiny": 0, "Mobile": 0, "Small": 1, "S": 1, "Base": 2, "M": 2, "Large": 3, "L": 3, "XLarge": 4}
_MIN_SIZE = re.compile(r"must be at least (\d+)x(\d+)")


# ----------------------------------------------------------------------------- which models


def constructors() -> list[str]:
    """Every public model constructor of ``tf_keras.applications`` (a function taking ``weights``)."""
    from tfrewind._keras import keras

    apps = keras.applications
    return sorted(name for name, fn in vars(apps).items()
                  if not name.startswith("_") and inspect.isfunction(fn) and name[0].isupper()
                  and "weights" in inspect.signature(fn).parameters)


def family(name: str) -> str:
    return next((fam for fam, pattern in FAMILIES if re.search(pattern, name)), name)


def size_key(name: str) -> tuple[int, int, str]:
    """Rank a variant within its family: size word (Tiny < Small < Base < Large < XLarge), then number.

    Version tokens (V2, V3) are dropped first so ResNet50V2 ranks by 50 and EfficientNetV2B1 by 1.
    """
    bare = re.sub(r"V\d", "", name)
    word = re.search(r"(XLarge|Large|Base|Small|Mobile|Tiny|[SML])$", bare)
    number = re.findall(r"\d+", bare)
    return (_SIZE_WORDS[word.group(1)] if word else 0, int(number[-1]) if number else 0, name)


def ordered(names: list[str]) -> list[str]:
    """Smallest variant of every family first (the issue's families before the others), then the rest by
    their relative size in their family, so the largest (ConvNeXtXLarge, EfficientNetB7, …) come last."""
    by_family: dict[str, list[str]] = {}
    for name in names:
        by_family.setdefault(family(name), []).append(name)
    position: dict[str, tuple[int, bool, float]] = {}
    for fam, members in by_family.items():
        for i, name in enumerate(sorted(members, key=size_key)):
            position[name] = (0 if i == 0 else 1, fam not in BAR_FAMILIES, i / max(len(members) - 1, 1))
    return sorted(names, key=lambda n: (*position[n], size_key(n)[1], n))


def build_smallest(name: str, size: int | None = None, **kwargs: Any):
    """``weights=None`` at ``size``, else at 32×32 or the minimum the constructor's own check names."""
    from tfrewind._keras import keras

    constructor = getattr(keras.applications, name)
    side = size or SMALL_INPUT
    try:
        return constructor(weights=None, input_shape=(side, side, 3), **kwargs), side
    except ValueError as exc:
        found = _MIN_SIZE.search(str(exc))
        if size is not None or not found:
            raise
        side = int(found.group(1))
        return constructor(weights=None, input_shape=(side, side, 3), **kwargs), side


# ----------------------------------------------------------------------------- one model


def _cli(args: list[str]) -> tuple[int, str]:
    """Run the ``tfrewind`` command line (:func:`tfrewind.cli.main`: Click parsing, config, the
    library call, errors mapped to exit codes and one line) as a shell would; (exit status, stderr).

    In this process, not a fresh one: :func:`main` already runs every model in a fresh process,
    and on this shared machine each TensorFlow start-up costs tens of seconds.
    """
    from tfrewind.cli import main as tfrewind_main

    err = io.StringIO()
    code = 0
    with contextlib.redirect_stderr(err):
        try:
            tfrewind_main(args)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return code, err.getvalue()


def _error_line(stderr: str) -> str:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    flagged = [line for line in lines if line.startswith("tfrewind:")]
    return (flagged or lines or ["(no message)"])[-1]


def _names_a_layer(message: str, layer_names: set[str]) -> bool:
    """Does the refusal name a layer of the model (quoted, as tfrewind's messages do)?"""
    return any(f"'{name}'" in message or f'"{name}"' in message for name in layer_names)


def cover(name: str, work: Path, size: int | None = None, **kwargs: Any) -> dict[str, Any]:
    """Build, save, ``tfrewind prune … --macs 0.5``, ``tfrewind export``; what a user would see, as a dict.

    ``kwargs`` go to the constructor (e.g. ``alpha=0.35``). ``status`` is ``ok`` (pruned and a
    verified .tflite), ``refused`` (tfrewind's one-line error, exit 2), or ``error`` (anything
    else: a crash, a non-verified export) with the message.
    """
    from tfrewind._keras import keras

    work.mkdir(parents=True, exist_ok=True)
    row: dict[str, Any] = {"model": name, "family": family(name), "kwargs": kwargs}
    started, cpu = time.perf_counter(), time.process_time()
    keras.backend.clear_session()
    keras.utils.set_random_seed(0)
    model, side = build_smallest(name, size, **kwargs)
    dense_path = work / f"{name}.keras"
    model.save(dense_path)
    layer_names = {layer.name for layer in model.submodules if isinstance(layer, keras.layers.Layer)}
    row.update(input=side, params=int(model.count_params()), build_s=time.perf_counter() - started)
    del model
    keras.backend.clear_session()
    _prune(row, dense_path, work / f"{name}_pruned.keras", layer_names)
    if row["status"] == "pruned":
        _export(row, work / f"{name}_pruned.keras", work / f"{name}_export")
    row["total_s"], row["cpu_s"] = time.perf_counter() - started, time.process_time() - cpu
    return row


def _prune(row: dict[str, Any], dense: Path, pruned: Path, layer_names: set[str]) -> None:
    config = dense.with_name("macs.yaml")
    config.write_text(f"prune:\n  macs: {MACS_TARGET}\n")  # = --macs 0.5 (a YAML works before and after that flag)
    command = ["prune", str(dense), "--prune", "l1_filter", "--config", str(config), "--out", str(pruned)]
    row["prune_command"] = f"tfrewind prune {dense.name} --prune l1_filter --config macs.yaml (prune.macs: {MACS_TARGET})"
    started = time.perf_counter()
    code, stderr = _cli(command)
    row["prune_s"] = time.perf_counter() - started
    if code != 0:
        message = _error_line(stderr)
        row.update(status="refused" if code == 2 else "error", message=message,
                   names_layer=_names_a_layer(message, layer_names), exit=code)
        return
    report = read_json(pruned.with_suffix(".json"))["report"]
    row.update(status="pruned", dense_macs=report["flops_before"], pruned_macs=report["flops_after"],
               macs_ratio=report["macs_ratio"], params_after=report["params_after"],
               groups_prunable=len(report["layers"]), groups_total=len(report["layers"]) + len(report["unprunable"]),
               rebuild_max_abs_diff=report["rebuild_max_abs_diff"],
               unprunable_examples=list(report["unprunable"].values())[:3])


def _export(row: dict[str, Any], pruned: Path, out: Path) -> None:
    started = time.perf_counter()
    code, stderr = _cli(["export", str(pruned), "--out", str(out)])
    row["export_s"] = time.perf_counter() - started
    if code != 0:
        row.update(status="error", tflite_verified=False, message=f"export: {_error_line(stderr)}", exit=code)
        return
    report = read_json(out / "export.json")
    verification = report.get("verification") or {}
    verified = bool(verification.get("passed")) and report.get("verified_with", "").startswith("ai_edge_litert")
    row.update(tflite_verified=verified, tflite_max_abs_diff=verification.get("max_abs_diff"),
               tflite_bytes=report["files"][0]["bytes"], verified_with=report.get("verified_with"),
               status="ok" if verified else "error")
    if not verified:
        row["message"] = f"export not verified: {report.get('verified_with')} {verification}"


def succeeded(row: dict[str, Any]) -> bool:
    """The issue's bar: ≤ 0.55 of the dense MACs and a .tflite that LiteRT ran and verified."""
    return row.get("status") == "ok" and row.get("macs_ratio", 1.0) <= MACS_BAR


# ----------------------------------------------------------------------------- the table


def _fmt_macs(macs: int | None) -> str:
    return "–" if macs is None else f"{macs / 1e6:,.1f} M"


def _row_line(name: str, row: dict[str, Any] | None) -> str:
    if row is None:
        return f"| {name} | {family(name)} | not run | | | | | | |"
    if row["status"] in ("refused", "error") and "macs_ratio" not in row:
        return (f"| {name} | {row['family']} | {row['input']} | {_fmt_macs(row.get('dense_macs'))} | "
                f"{row['status']}: `{row['message']}` | | | | {_time(row)} |")
    verified = "yes" if row.get("tflite_verified") else f"no: `{row.get('message', '')}`"
    return (f"| {name} | {row['family']} | {row['input']} | {_fmt_macs(row['dense_macs'])} | "
            f"{row['macs_ratio']:.3f}{'' if succeeded(row) or row['status'] != 'ok' else ' (> 0.55)'} | "
            f"{row['groups_prunable']}/{row['groups_total']} | {row['rebuild_max_abs_diff']:.1e} | {verified} | "
            f"{_time(row)} |")


def _time(row: dict[str, Any]) -> str:
    return f"{row['total_s']:.0f} s" + (f" / {row['cpu_s']:.0f} s" if "cpu_s" in row else "")


def _family_summary(rows: dict[str, dict[str, Any]], names: list[str]) -> list[str]:
    lines = ["| family | constructors run | reach ≤ 0.55 MACs with a verified .tflite | refused | errors |",
             "|---|---|---|---|---|"]
    families = BAR_FAMILIES + sorted({family(n) for n in names} - set(BAR_FAMILIES))
    for fam in families:
        ran = [rows[n] for n in names if family(n) == fam and n in rows]
        total = sum(1 for n in names if family(n) == fam)
        ok = [r["model"] for r in ran if succeeded(r)]
        refused = [r["model"] for r in ran if r["status"] == "refused"]
        errors = [r["model"] for r in ran if r["status"] == "error" or (r["status"] == "ok" and not succeeded(r))]
        lines.append(f"| {fam}{'' if fam in BAR_FAMILIES else ' (not in the bar)'} | {len(ran)} of {total} | "
                     f"{len(ok)} | {', '.join(refused) or '–'} | {', '.join(errors) or '–'} |")
    return lines


def _bar(rows: dict[str, dict[str, Any]], names: list[str]) -> str:
    """A family succeeds when every variant of it that ran succeeded (and at least one ran)."""
    done = []
    for fam in BAR_FAMILIES:
        ran = [rows[n] for n in names if family(n) == fam and n in rows]
        if ran and all(succeeded(r) for r in ran):
            done.append(fam)
    untested = [fam for fam in BAR_FAMILIES if not any(family(n) == fam and n in rows for n in names)]
    text = (f"**{len(done)} of {len(BAR_FAMILIES)} families of the issue's bar succeed** "
            f"({100 * len(done) / len(BAR_FAMILIES):.0f} %; the bar is ≥ 90 %): every variant that ran reached "
            f"≤ {MACS_BAR} of the dense MACs with a LiteRT-verified .tflite.")
    missing = [fam for fam in BAR_FAMILIES if fam not in done and fam not in untested]
    if missing:
        text += f" Not met: {', '.join(missing)}."
    if untested:
        text += f" Not run: {', '.join(untested)}."
    return text


BEGIN, END = "<!-- coverage: begin (scripts/structured_coverage.py) -->", "<!-- coverage: end -->"


def render(rows: dict[str, dict[str, Any]], names: list[str]) -> str:
    ran = [n for n in ordered(names) if n in rows]
    when = sorted(r["measured"] for r in rows.values() if "measured" in r)
    lines = [BEGIN, "## Coverage: `tf_keras.applications`", "",
             "Command: `python scripts/structured_coverage.py` (resumes; `--smallest` runs one variant per family, "
             "`--render` only rewrites this section).  ",
             f"Measured {when[0] if when else '?'} – {when[-1] if when else '?'}, "
             f"{len(ran)} of {len(names)} constructors run.", "",
             "Each constructor is built with `weights=None` at the smallest input it accepts (32×32, or the minimum "
             "its own input check names: 75 for InceptionV3/InceptionResNetV2, 71 for Xception), saved, then pruned "
             f"and exported in fresh processes with the real commands: `tfrewind prune MODEL.keras --prune l1_filter` "
             f"with `prune.macs: {MACS_TARGET}` (uniform allocation) and `tfrewind export MODEL_pruned.keras` "
             "(float32 .tflite, run with LiteRT and compared with Keras on 32 generated inputs). "
             "*rebuild error* is the largest absolute output difference between the rebuilt smaller model and the "
             "full model with the removed channels zeroed; *time* covers building, saving and both commands, as "
             "wall time on a 2-core machine shared with other jobs (load ≈ 10) and as CPU time of the process.", "",
             _bar(rows, names), "", "### Families", ""]
    lines += _family_summary(rows, names)
    lines += ["", "### Constructors", "",
              "| constructor | family | input | dense MACs | MACs ratio | groups prunable/total | rebuild error "
              "| TFLite verified | time (wall / CPU) |", "|---|---|---|---|---|---|---|---|---|"]
    lines += [_row_line(n, rows.get(n)) for n in ordered(names)]
    return "\n".join(lines + ["", END]) + "\n"


def write_doc(rows: dict[str, dict[str, Any]], names: list[str], path: Path = DOC) -> None:
    """Replace only this script's section: the rest of the page is written by hand (or other scripts)."""
    section = render(rows, names)
    text = path.read_text() if path.exists() else "# Structured (channel) pruning\n\n"
    if BEGIN in text and END in text:
        text = text[:text.index(BEGIN)] + section + text[text.index(END) + len(END) + 1:]
    else:
        text = text.rstrip("\n") + "\n\n" + section
    write_text_atomic(path, text)


# ----------------------------------------------------------------------------- main


def run_fresh(name: str, work: Path) -> dict[str, Any]:
    """:func:`cover` in a fresh Python process: memory is returned after each model (the largest hold
    gigabytes), and a crash or a hang becomes an ``error`` row instead of the end of the run."""
    work.mkdir(parents=True, exist_ok=True)
    result = work / "row.json"
    result.unlink(missing_ok=True)
    started = time.perf_counter()
    try:
        done = subprocess.run([sys.executable, __file__, "--one", name, "--work", str(work)], cwd=ROOT,
                              capture_output=True, text=True, timeout=MODEL_TIMEOUT_S)
        failure = None if result.exists() else f"exit {done.returncode}: {_error_line(done.stderr)}"
    except subprocess.TimeoutExpired:
        failure = f"timed out after {MODEL_TIMEOUT_S} s"
    if failure is None:
        return read_json(result)
    return {"model": name, "family": family(name), "status": "error", "input": "?", "message": failure,
            "total_s": time.perf_counter() - started}


def _one(name: str, work: Path) -> None:
    """The child of :func:`run_fresh`: one model, its row written to ``work/row.json``."""
    try:
        row = cover(name, work)
    except Exception as exc:  # noqa: BLE001 - a constructor that does not build is a row, not a crash
        first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
        row = {"model": name, "family": family(name), "status": "error", "input": "?", "total_s": 0.0,
               "message": f"{type(exc).__name__}: {first}"}
    write_json_atomic(work / "row.json", row)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default="", help="comma list of constructor names (default: all)")
    parser.add_argument("--smallest", action="store_true", help="only the smallest variant of each family")
    parser.add_argument("--redo", action="store_true", help="run models already in the JSON again")
    parser.add_argument("--render", action="store_true", help="only rewrite the doc from the JSON")
    parser.add_argument("--work", default=str(WORK), help="where the model files go")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        return _one(args.one, Path(args.work))
    names = constructors()
    rows: dict[str, dict[str, Any]] = read_json(STORE) if STORE.exists() else {}
    chosen = ordered(names)
    if args.smallest:
        firsts = {}
        for name in chosen:
            firsts.setdefault(family(name), name)
        chosen = list(firsts.values())
    if args.only:
        wanted = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = sorted(set(wanted) - set(names))
        if unknown:
            parser.error(f"not constructors of tf_keras.applications: {', '.join(unknown)}")
        chosen = [n for n in chosen if n in wanted]
    for name in [] if args.render else chosen:
        if name in rows and not args.redo:
            continue
        print(f"{time.strftime('%H:%M:%S')} {name} …", file=sys.stderr, flush=True)
        row = run_fresh(name, Path(args.work) / name)
        row["measured"] = time.strftime("%Y-%m-%d %H:%M %Z")
        rows[name] = row
        write_json_atomic(STORE, rows)
        write_doc(rows, names)
        shown = {k: row.get(k) for k in ("status", "macs_ratio", "tflite_verified", "message", "total_s")}
        print(f"  {json.dumps(shown)}", file=sys.stderr, flush=True)
    write_doc(rows, names)
    print(f"wrote {DOC}", file=sys.stderr)


if __name__ == "__main__":
    main()
