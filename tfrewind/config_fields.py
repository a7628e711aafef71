"""What each config field says about itself: its type, default, docstring and choices.

Why: the CLI generates its options from the fields (as open_lth's ``Hparams.add_args`` does), so
a flag's type, default and ``--help`` text cannot drift from the config. The documentation of a
field is its attribute docstring (the string literal under it, PEP 257), read from the class
source with :mod:`ast`. Why docstrings and not ``field(metadata={"help": ...})``: they stay where
a reader and Sphinx look for them, keep each dataclass one line per field, and the YAML, the API
and the CLI share them. Without the source (a zipped or frozen install), fields lose only their
help text.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import re
import sys
import typing
from dataclasses import dataclass
from typing import Any

from .config import RunConfig
from .registry import Registry

_MISSING: Any = dataclasses.MISSING


@dataclass(frozen=True)
class FieldSpec:
    """One config field as the CLI needs it."""

    key: str
    """Dotted key, e.g. ``train.epochs`` (what ``--set`` takes)."""
    hint: Any
    """The annotation, resolved (``int``, ``str | None``, ``list[float] | None``, …)."""
    default: Any
    """The dataclass default (``dataclasses.MISSING`` for a required field)."""
    choices: Registry[Any] | None
    """The registry whose names the field takes, if any."""
    owner: type
    """The dataclass that declares the field."""

    @property
    def doc(self) -> str:
        """The field's docstring as one plain line (RST double backticks removed); read only when asked."""
        return _docs(self.owner).get(self.key.rsplit(".", 1)[-1], "")


def field_spec(key: str, root: type = RunConfig) -> FieldSpec:
    """The field at dotted ``key`` below dataclass ``root``, read when called (the default is not cached)."""
    cls, name = _owner(key, root)
    f = next(f for f in dataclasses.fields(cls) if f.name == name)
    default = f.default_factory() if f.default_factory is not _MISSING else f.default
    return FieldSpec(key, _hints(cls)[name], default, f.metadata.get("choices"), cls)


def field_doc(key: str, root: type = RunConfig) -> str:
    return field_spec(key, root).doc


def _owner(key: str, root: type) -> tuple[type, str]:
    """(the dataclass that declares the last part of ``key``, that part)."""
    cls = root
    *sections, name = key.split(".")
    for section in sections:
        cls = _hints(cls)[section]
    if not dataclasses.is_dataclass(cls) or name not in {f.name for f in dataclasses.fields(cls)}:
        raise KeyError(f"no config field {key!r} in {root.__name__}")
    return cls, name


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _docs(cls: type) -> dict[str, str]:
    """Attribute docstrings of ``cls``: the string literal right after each annotated field."""
    return _module_docs(cls.__module__).get(cls.__qualname__, {})


@functools.cache
def _module_docs(module: str) -> dict[str, dict[str, str]]:
    """{class name: {field: docstring}} for the top-level classes of ``module``, parsed once.

    Why not ``inspect.getsource(cls)``: it re-parses the whole module for every class (≈ 0.1 s each
    here), and help is rendered on every ``--help``.
    """
    try:
        tree = ast.parse(inspect.getsource(sys.modules[module]))
    except (OSError, TypeError, KeyError):
        return {}
    return {node.name: _field_docs(node.body) for node in tree.body if isinstance(node, ast.ClassDef)}


def _field_docs(body: list[ast.stmt]) -> dict[str, str]:
    docs = {}
    for statement, following in zip(body, body[1:]):
        if (isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name)
                and isinstance(following, ast.Expr) and isinstance(following.value, ast.Constant)
                and isinstance(following.value.value, str)):
            docs[statement.target.id] = _plain(following.value.value)
    return docs


def _plain(doc: str) -> str:
    """One line, RST literals as plain text: ``--help`` shows it as written."""
    return re.sub(r"\s+", " ", doc.replace("``", "")).strip()
