"""Atomic file writes: a temporary file in the same directory, then ``os.replace``.

Why: runs get killed (pre-emption, Ctrl-C). A rename is atomic on POSIX file systems, so a reader
sees either the old complete file or the new complete file — never a truncated one that looks done.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Callable


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    return write_bytes_atomic(path, text.encode("utf-8"))


def default_mode(directory: bool = False) -> int:
    """The permissions ``open()``/``mkdir()`` would give under the current umask.

    Why: ``mkstemp``/``mkdtemp`` create private (0600/0700) files, and a rename keeps that mode, so
    without this every model and metrics file would be unreadable to the user's colleagues.
    """
    umask = os.umask(0)
    os.umask(umask)
    return (0o777 if directory else 0o666) & ~umask


def write_with_atomic(path: str | os.PathLike, write: Callable[[str], None], suffix: str = ".tmp") -> Path:
    """Let ``write(tmp)`` (a library's own saver) fill a temporary file beside ``path``, then rename.

    ``suffix`` matters for savers that choose a format from the name (``.keras``, ``.weights.h5``).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.fchmod(fd, default_mode())
    os.close(fd)
    try:
        write(tmp)
        fsync_file(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.fchmod(fd, default_mode())
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def fsync_file(path: str | os.PathLike) -> None:
    """Flush a file another library wrote (a model, weights) to disk before it is renamed into place."""
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def write_json_atomic(path: str | os.PathLike, data: Any) -> Path:
    return write_text_atomic(path, json.dumps(_jsonable(data), indent=2, sort_keys=False) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    return json.loads(Path(path).read_text())


def _jsonable(value: Any) -> Any:
    """Plain JSON: numpy scalars to Python numbers, non-finite floats to null."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 1) == 0:
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
