"""Which Keras 3 applications cross to tf_keras and back exactly: writes docs/keras3-applications.md.

Usage (from the project root)::

    python scripts/keras3_applications.py                       # all of keras.applications (~30 min, 2 cores)
    python scripts/keras3_applications.py --only MobileNetV2,ResNet50 --out /tmp/apps.md

Each application is built by Keras 3 with ``weights=None`` at the smallest input it accepts
(32×32, else 75×75), translated to tf_keras and back, and both translations are compared with the
Keras 3 model on seeded inputs; a refusal is listed with its one-line reason.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tfrewind._keras import keras as tf_keras  # noqa: E402
from tfrewind.errors import TranslationError  # noqa: E402
from tfrewind.keras3.translate import to_keras3, to_tf_keras  # noqa: E402
from tfrewind.keras3.weights import max_output_difference, sample_inputs  # noqa: E402


def _build(keras3, name: str):
    for shape in ((32, 32, 3), (75, 75, 3)):
        try:
            return getattr(keras3.applications, name)(input_shape=shape, weights=None, classes=10), shape
        except ValueError:
            continue
    raise RuntimeError(f"{name}: no input size accepted")


def check(name: str) -> dict:
    import keras as keras3

    model, shape = _build(keras3, name)
    row = {"model": name, "input": "×".join(map(str, shape)), "layers": len(model.layers)}
    start = time.perf_counter()
    try:
        legacy = to_tf_keras(model)
        row["to_tf_keras_s"] = time.perf_counter() - start
        inputs = sample_inputs(model, seed=1)
        row["diff"], _ = max_output_difference(model, legacy, inputs)
        back = to_keras3(legacy)
        row["back_diff"], _ = max_output_difference(model, back, inputs)
        row["result"] = "both ways"
    except TranslationError as exc:
        row["result"] = f"refused: {exc}"
    keras3.backend.clear_session()
    tf_keras.backend.clear_session()
    return row


def render(rows: list[dict]) -> str:
    lines = ["# Keras 3 applications through tfrewind's translation", "",
             "Command: `python scripts/keras3_applications.py`  ",
             f"Date: {time.strftime('%Y-%m-%d %H:%M %Z')}", "",
             "Each `keras.applications` model (Keras 3, `weights=None`) translated to tf_keras and back; "
             "max |Δ| of each translation's outputs against the Keras 3 model on seeded N(0, 1) inputs "
             "(the translation itself refuses anything above 1e-5).", "",
             "| model | input | layers | result | to tf_keras (s) | max abs diff (tf_keras) | max abs diff (back) |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        if r["result"] == "both ways":
            lines.append(f"| {r['model']} | {r['input']} | {r['layers']} | both ways | {r['to_tf_keras_s']:.1f} | "
                         f"{r['diff']:.2g} | {r['back_diff']:.2g} |")
        else:
            lines.append(f"| {r['model']} | {r['input']} | {r['layers']} | {r['result']} | | | |")
    passed = sum(r["result"] == "both ways" for r in rows)
    return "\n".join(lines + ["", f"{passed} of {len(rows)} translate both ways.", ""])


def main() -> None:
    import keras as keras3

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default="", help="comma list of application names (default: all)")
    parser.add_argument("--out", default=str(ROOT / "docs" / "keras3-applications.md"))
    args = parser.parse_args()
    names = [n for n in args.only.split(",") if n] or sorted(n for n in dir(keras3.applications) if n[0].isupper())
    rows = []
    for name in names:
        rows.append(check(name))
        print(rows[-1], file=sys.stderr, flush=True)
    Path(args.out).write_text(render(rows))
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
