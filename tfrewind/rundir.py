"""The run directory: one folder per run holding config, logs, checkpoints, metrics and exports.

Layout::

    RUN/config.yaml               the resolved config (what produced this run)
    RUN/run.json                  tfrewind version and creation time
    RUN/<stage>/metrics.json      written last: its presence means the stage is complete
    RUN/<stage>/model.keras       the stage's model
    RUN/original/checkpoints/     weights kept for weight rewinding
    RUN/original/schedule.json    the original LR schedule, replayed by LR rewinding
    RUN/tensorboard/<stage>/      TensorBoard event files

Why "metrics.json last": a re-run of the same command skips completed stages and resumes the
interrupted one, so a stage must only look complete once everything in it is on disk.
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Any

import yaml

from . import __version__
from .config import RunConfig, dump_yaml
from .errors import ConfigError, TfrewindError
from .io import read_json, write_json_atomic, write_text_atomic

CONFIG_FILE = "config.yaml"
RUN_FILE = "run.json"


class RunDir:
    def __init__(self, path: str | Path):
        self.path = Path(path)

    @classmethod
    def prepare(cls, config: RunConfig, runs_root: str | Path = "runs") -> "RunDir":
        """Create a new run directory, or reopen one made with the same config (resume)."""
        path = Path(config.out) if config.out else Path(runs_root) / _default_name(config)
        run = cls(path)
        if (path / CONFIG_FILE).exists():
            run.check_same_config(config)
        elif path.exists() and any(path.iterdir()):
            raise TfrewindError(f"run directory {str(path)!r} exists and is not a tfrewind run; choose another --out")
        path.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path / CONFIG_FILE, dump_yaml(config))
        if not (path / RUN_FILE).exists():
            write_json_atomic(path / RUN_FILE, {"tfrewind_version": __version__,
                                                "created": _dt.datetime.now().isoformat(timespec="seconds")})
        return run

    def check_same_config(self, config: RunConfig) -> None:
        """Refuse to resume a run made with another config, naming the fields that differ."""
        saved = yaml.safe_load((self.path / CONFIG_FILE).read_text()) or {}
        current = config.to_dict()
        diffs = [key for key in _flat_diff(saved, current) if key != "out"]
        if diffs:
            raise ConfigError(f"run directory {str(self.path)!r} was made with a different config "
                              f"(differs in: {', '.join(diffs)}); use another --out or the same settings")

    def stage_dir(self, stage: str) -> Path:
        return self.path / stage

    def log_dir(self, stage: str) -> Path:
        return self.path / "tensorboard" / stage

    def is_done(self, stage: str) -> bool:
        return (self.stage_dir(stage) / "metrics.json").exists()

    def metrics(self, stage: str) -> dict[str, Any]:
        return read_json(self.stage_dir(stage) / "metrics.json")

    def write_metrics(self, stage: str, metrics: dict[str, Any]) -> Path:
        return write_json_atomic(self.stage_dir(stage) / "metrics.json", metrics)


def _default_name(config: RunConfig) -> str:
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    model = Path(config.model.name).stem
    return f"{stamp}-{config.data.name}-{model}-s{config.seed}"


def _flat_diff(a: Any, b: Any, prefix: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        keys = sorted(set(a) | set(b))
        out: list[str] = []
        for key in keys:
            out += _flat_diff(a.get(key), b.get(key), f"{prefix}{key}.")
        return out
    return [] if a == b else [prefix.rstrip(".")]
