"""The curated public API: what the README shows and what each command calls is ``tfrewind.NAME``."""

from __future__ import annotations

import ast
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import tfrewind
from tfrewind import cli

ROOT = Path(__file__).resolve().parents[1]

# command → the public function it calls (a new command needs its entry, and a public function)
COMMAND_API = {"train": "train", "schedule": "preview_schedule", "prune": "prune_file", "retrain": "retrain_model",
               "export": "export_path", "compare": "run_compare", "report": "report"}


def readme_names() -> set[str]:
    """Names the README shows: imported from tfrewind in its Python blocks, or written ``tfrewind.x.Name``
    or ``Name(...)`` in inline code (names of ``tfrewind.keras3``, the Keras 3 side: :func:`keras3_names`)."""
    text = (ROOT / "README.md").read_text()
    names = set()
    for block in re.findall(r"```python\n(.*?)```", text, re.S):
        for module, imported in re.findall(r"from (tfrewind[\w.]*) import ([\w, ]+)", block):
            if module != "tfrewind.keras3":
                names.update(n.strip() for n in imported.split(","))
    for span in re.findall(r"`([^`\n]+)`", text):
        span = re.sub(r"\btfrewind\.keras3\.\w+", "", span)  # keras3_names() checks those
        names.update(re.findall(r"\btfrewind(?:\.[a-z_]\w*)*\.([A-Za-z_]\w*)\b(?!\.)", span))
        names.update(re.findall(r"(?<![\w.])([A-Z]\w*)\(", span))
    return {n for n in names if importlib.util.find_spec(f"tfrewind.{n}") is None}  # modules are not names


def keras3_names() -> set[str]:
    """Names the README imports from ``tfrewind.keras3`` or writes ``tfrewind.keras3.Name``."""
    text = (ROOT / "README.md").read_text()
    names = set()
    for block in re.findall(r"```python\n(.*?)```", text, re.S):
        for imported in re.findall(r"from tfrewind\.keras3 import (\([^)]*\)|[\w, ]+)", block):
            names.update(n.strip() for n in imported.strip("()").split(",") if n.strip())
    return names | set(re.findall(r"\btfrewind\.keras3\.([A-Za-z_]\w*)", text))


def test_every_name_the_readme_shows_is_public():
    names = readme_names()
    assert {"PaperSGD", "OffsetLR", "build_retrain_schedule", "train"} <= names  # the reader finds them
    for name in sorted(names):
        assert name in tfrewind.__all__, name
        assert getattr(tfrewind, name) is not None


def test_every_keras3_name_the_readme_shows_is_public_in_tfrewind_keras3():
    from tfrewind import keras3

    names = keras3_names()
    assert {"MomentumScheduler", "OneCycleLR", "to_tf_keras", "retraining_schedule"} <= names
    for name in sorted(names):
        assert name in keras3.__all__, name
        assert getattr(keras3, name) is not None


def test_each_public_name_is_documented_with_an_example():
    """``help(tfrewind)`` shows every public name used in an example (``tfrewind.NAME``)."""
    for name in tfrewind.__all__:
        if name != "__version__":
            assert f"tfrewind.{name}" in tfrewind.__doc__, name


def test_the_public_names_are_the_objects_their_modules_define():
    from tfrewind import pipeline, schedules

    assert tfrewind.train is pipeline.train  # tfrewind.pipeline.train stays importable
    assert tfrewind.OffsetLR is schedules.OffsetLR
    assert sorted(dir(tfrewind)) == sorted(set(dir(tfrewind)) | set(tfrewind.__all__))


def test_each_command_calls_its_public_function():
    """``tfrewind COMMAND`` is one call into the public API (the CLI is a thin shell)."""
    assert set(cli.cli.commands) == set(COMMAND_API)
    for command, name in COMMAND_API.items():
        assert name in tfrewind.__all__, name
        tree = ast.parse(Path(cli.__file__).read_text())
        func = next(node for node in ast.walk(tree)
                    if isinstance(node, ast.FunctionDef) and node.name == cli.cli.commands[command].callback.__name__)
        imported = {alias.asname or alias.name: alias.name for node in ast.walk(func)
                    if isinstance(node, ast.ImportFrom) for alias in node.names}
        called = {imported.get(node.func.id, node.func.id) for node in ast.walk(func)
                  if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)}
        assert name in called, f"tfrewind {command} does not call tfrewind.{name}"


def test_import_tfrewind_does_not_import_tensorflow():
    code = "import sys, tfrewind; tfrewind.__all__; print('TF' if 'tensorflow' in sys.modules else 'no TF')"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert result.stdout.strip() == "no TF"
