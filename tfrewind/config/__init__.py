"""Run configuration: the dataclasses (:mod:`.sections`) and reading them from YAML and flags (:mod:`.parse`).

Everything is importable from here, as before the split: ``from tfrewind.config import RunConfig, load_config``.
"""

from __future__ import annotations

from .parse import dump_yaml, from_dict, load_config, read_yaml, set_dotted
from .sections import (DataConfig, ExportConfig, ModelConfig, PruneConfig, RetrainConfig, RunConfig, TrainConfig,
                       parse_budget)

__all__ = ["DataConfig", "ExportConfig", "ModelConfig", "PruneConfig", "RetrainConfig", "RunConfig", "TrainConfig",
           "dump_yaml", "from_dict", "load_config", "parse_budget", "read_yaml", "set_dotted"]
