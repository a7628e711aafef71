"""The run directory: one folder per run holding config, logs, checkpoints, metrics and exports.

Layout::

    RUN/config.yaml               the resolved config (what produced this run)
    RUN/run.json                  tfrewind version and creation time
    RUN/<stage>/metrics.json      written last: its presence means the stage is complete
    RUN/<stage>/model.keras       the stage's model
    RUN/keras3/model.keras        the final model as Keras 3 (runs that started from a Keras 3 model)
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

from ._version import __version__
from .config import RunConfig, dump_yaml, from_dict
from .errors import ConfigError, TfrewindError
from .io import read_json, write_json_atomic, write_text_atomic

ORIGINAL, PRUNE, RETRAIN, EXPORT = "original", "prune", "retrain", "export"
"""The stages' directory names (iterative pruning adds ``prune_r<i>``/``retrain_r<i>``)."""
KERAS3 = "keras3"
"""A run that started from a Keras 3 model also writes its final model as Keras 3 here."""
CONFIG_FILE = "config.yaml"
RUN_FILE = "run.json"
DIVERGED_FILE = "diverged.json"
"""Written into a stage directory when its loss became NaN/inf (removed when the stage completes)."""


class RunDir:
    def __init__(self, path: str | Path):
        self.path = Path(path)

    @classmethod
    def resolve(cls, config: RunConfig, runs_root: str | Path = "runs") -> "RunDir":
        return cls(Path(config.out) if config.out else Path(runs_root) / _default_name(config))

    @classmethod
    def check(cls, config: RunConfig, resume: bool = False, runs_root: str | Path = "runs") -> "RunDir":
        """Everything :meth:`prepare` would refuse, checked without writing anything."""
        run = cls.resolve(config, runs_root)
        path = run.path
        if path.exists() and not path.is_dir():
            raise TfrewindError(f"--out {str(path)!r} is a file, not a run directory; choose another --out")
        if (path / CONFIG_FILE).exists():
            run.check_version()
            run.check_same_config(config)
        elif resume:
            where = "--out is missing" if not config.out else f"{str(path)!r} is not a tfrewind run directory (no {CONFIG_FILE})"
            raise TfrewindError(f"--resume: {where}; give --out RUN_DIR of an interrupted run, or drop --resume "
                                "to start a new run")
        elif path.exists() and any(path.iterdir()):
            raise TfrewindError(f"run directory {str(path)!r} exists and is not a tfrewind run; choose another --out")
        return run

    @classmethod
    def prepare(cls, config: RunConfig, runs_root: str | Path = "runs", resume: bool = False) -> "RunDir":
        """Create a new run directory, or reopen one made with the same config (resume)."""
        run = cls.check(config, resume, runs_root)
        path = run.path
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise TfrewindError(f"cannot create run directory {str(path)!r} ({exc.strerror}); choose another --out") from None
        run.remove_partial_writes()
        write_text_atomic(path / CONFIG_FILE, dump_yaml(config))
        if not (path / RUN_FILE).exists():
            write_json_atomic(path / RUN_FILE, {"tfrewind_version": __version__,
                                                "created": _dt.datetime.now().isoformat(timespec="seconds")})
        return run

    def check_version(self) -> None:
        """Refuse a run directory written by another tfrewind version (its files may mean other things)."""
        path = self.path / RUN_FILE
        if not path.exists():
            raise TfrewindError(f"run directory {str(self.path)!r} has no {RUN_FILE} (not made by tfrewind, or "
                                "damaged); start a new run with another --out")
        try:
            version = read_json(path).get("tfrewind_version")
        except (ValueError, AttributeError, OSError):
            raise TfrewindError(f"{str(path)!r} is unreadable; start a new run with another --out") from None
        if version != __version__:
            raise TfrewindError(f"run directory {str(self.path)!r} was made by tfrewind {version}, this is "
                                f"{__version__}; resume it with tfrewind {version} (pip install tfrewind=={version}) "
                                "or start a new run with another --out")

    def check_same_config(self, config: RunConfig) -> None:
        """Refuse to resume a run made with another config, naming the fields that differ."""
        try:
            saved = yaml.safe_load((self.path / CONFIG_FILE).read_text()) or {}
        except yaml.YAMLError:
            raise ConfigError(f"{str(self.path / CONFIG_FILE)!r} is not valid YAML; start a new run with another "
                              "--out") from None
        current = config.to_dict()
        # Fields added to tfrewind after the run was made count as their defaults, so an older run of
        # the same version line still resumes; a saved file that no longer parses is compared raw.
        try:
            saved = from_dict(saved).to_dict()
        except ConfigError:
            pass
        diffs = [key for key in _flat_diff(saved, current) if key != "out"]
        if diffs:
            diverged = sorted(p.parent.name for p in self.path.glob(f"*/{DIVERGED_FILE}"))
            if diverged:
                raise ConfigError(
                    f"run directory {str(self.path)!r} stopped because the loss diverged in {diverged[0]}, and its "
                    f"config cannot change (you changed: {', '.join(diffs)}); start a new run with another --out "
                    f"(--pretrained {str(self.path)} reuses its finished original training)")
            raise ConfigError(f"run directory {str(self.path)!r} was made with a different config "
                              f"(differs in: {', '.join(diffs)}); use another --out, or the same settings "
                              f"(tfrewind train --resume --out {str(self.path)} takes them from the run)")

    def remove_partial_writes(self) -> None:
        """Temporary files of writes a kill interrupted: every atomic write (:mod:`tfrewind.io`) fills a
        hidden ``.NAME.*`` beside its target and renames only a complete file, and a run directory
        holds no other hidden files."""
        import shutil

        for leftover in sorted(self.path.rglob(".*"), key=lambda p: len(p.parts), reverse=True):
            if leftover.is_file() or leftover.is_symlink():
                leftover.unlink(missing_ok=True)
            elif leftover.is_dir() and leftover.name.endswith(".tmp"):  # write_dir_atomic (SavedModel)
                shutil.rmtree(leftover, ignore_errors=True)

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
