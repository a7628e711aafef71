"""The small checks every config section uses: one-line errors that name the field."""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import field
from typing import Any, Iterable

from ..errors import ConfigError
from ..registry import Registry


def _named(default: str, registry: Registry[Any]) -> Any:
    """A field whose value is a name from ``registry`` (what the CLI lists and accepts)."""
    return field(default=default, metadata={"choices": registry})


def parse_budget(budget: str | int | float, original_epochs: int) -> int:
    """``72`` → 72 epochs; ``45%`` → 45 % of the original epochs (rounded, at least 1)."""
    text = str(budget).strip()
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*%", text)
    if match:
        share = float(match.group(1)) / 100.0
        _check(0.0 < share, "retrain.budget", f"a share must be > 0 %, got {text}")
        return max(1, int(round(share * original_epochs)))
    if re.fullmatch(r"\d+", text) and int(text) >= 1:
        return int(text)
    raise ConfigError(f"retrain.budget: give whole epochs (72) or a share of original training (45%), got {text!r}")


def _default(cls: type, name: str) -> Any:
    """A field's default value: what "not given" looks like for a field that has one."""
    return next(f.default for f in dataclasses.fields(cls) if f.name == name)


def _finite(x: float) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


def _check(ok: bool, key: str, message: str) -> None:
    if not ok:
        raise ConfigError(f"{key}: {message}")


def _check_choice(value: str, allowed: Iterable[str], key: str) -> None:
    """``allowed``: a registry of :mod:`tfrewind.choices` (names registered at run time count) or names."""
    _check(value in allowed, key, f"{value!r} is not allowed; choose one of: {', '.join(allowed)}")
