"""Atomic writes for exported artefacts and their measured sizes.

Why atomic: an export is what gets copied to a device. A rename is atomic on POSIX, so a reader
(or a resumed pipeline) sees the old complete file or the new complete file, never a torn one.
Why gzip sizes: a sparse tensor stored densely is mostly zeros, which gzip squeezes; the gzip
size is what an over-the-air update or an app bundle really costs.
"""

from __future__ import annotations

import gzip
import io
import os
import shutil
import tarfile
import tempfile
from pathlib import Path
from typing import Callable

from ..io import default_mode, write_bytes_atomic

__all__ = ["write_bytes_atomic", "write_dir_atomic", "gzip_size", "path_sizes"]


def write_dir_atomic(path: str | os.PathLike, fill: Callable[[Path], None]) -> Path:
    """Let ``fill`` write a directory under a temporary name, then swap it in place of ``path``.

    Directories cannot be replaced in one rename when the target exists, so the old one is moved
    aside first and deleted only after the new one is in place.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    os.chmod(tmp, default_mode(directory=True))  # mkdtemp makes it private; the rename would keep that
    old = None
    try:
        fill(tmp)
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent))
            os.replace(path, old / "previous")
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    return path


def gzip_size(data: bytes) -> int:
    return len(gzip.compress(data, compresslevel=9, mtime=0))


def path_sizes(path: str | os.PathLike) -> tuple[int, int]:
    """(bytes on disk, gzip bytes) of a file, or of a directory as a tar archive."""
    path = Path(path)
    if path.is_file():
        return path.stat().st_size, gzip_size(path.read_bytes())
    size = sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        archive.add(path, arcname=path.name)
    return size, gzip_size(buffer.getvalue())
