"""User-facing errors.

Why a separate type: the CLI turns a :class:`TfrewindError` into a one-line message and exit
status 2 (bad input), while any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations


class TfrewindError(Exception):
    """A problem with the user's input or environment that they can fix; the message says how."""


class ConfigError(TfrewindError):
    """A config field has a bad value; the message names the field and the allowed values."""


class DataUnavailableError(TfrewindError):
    """A dataset cannot be loaded (unknown, or not prepared while offline)."""


class ModelFileError(TfrewindError):
    """A model file is missing, corrupt or not a tf_keras model."""


class CheckpointError(TfrewindError):
    """A checkpoint needed by a stage (e.g. weight rewinding) is missing or unreadable."""


class TrainingDivergedError(TfrewindError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


class ExecutorError(TfrewindError):
    """Cells cannot run where asked: Ray missing, a cluster unreachable, or a node that cannot see the study."""
class TranslationError(ModelFileError):
    """A Keras 3 model cannot be carried over to tf_keras (or back) exactly; the message names the layer."""
