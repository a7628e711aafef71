"""What the ``tfrewind`` command prints: progress, results and errors — not TensorFlow's chatter.

Importing TensorFlow prints C++ lines a user can do nothing about (oneDNN notice, CUDA stub,
``failed call to cuInit``, absl's "before absl::InitializeLog" notice), tf_keras warns through
Python's ``tensorflow`` logger (e.g. "Callback method `on_train_batch_begin` is slow"), and the
TFLite converter through Python's ``warnings`` ("Statistics for quantized inputs were expected").
Hiding them is a choice of the command line only — ``tfrewind`` without ``--debug`` —, made for
the duration of one command and undone afterwards; ``import tfrewind`` in a user's program changes
none of the user's logging.

Why the start-up lines need a file descriptor trick: most of them come from C++ static
initialisers that run before TensorFlow reads ``TF_CPP_MIN_LOG_LEVEL``, so that variable cannot
hide them; only redirecting file descriptor 2 while TensorFlow is imported does.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
import warnings
from typing import Iterator

CPP_LOG_LEVEL = "TF_CPP_MIN_LOG_LEVEL"
QUIET_CPP_LOG_LEVEL = "2"  # TensorFlow's C++ logging: errors only
QUIET_LOGGERS = ("tensorflow", "absl")

_quiet = False


@contextlib.contextmanager
def cli_console(debug: bool) -> Iterator[None]:
    """Run one CLI command with TensorFlow's start-up lines and warnings (its loggers' and Python's)
    hidden, unless ``debug``.

    A ``TF_CPP_MIN_LOG_LEVEL`` the user set is kept (it governs TensorFlow's C++ messages after
    start-up); unset, it is 2 (errors) for the command. ``--debug`` changes nothing: everything
    TensorFlow prints is shown, as when it is imported by hand.
    """
    global _quiet
    if debug:
        yield
        return
    try:  # absl's logger is an ABSLLogger: let absl create it before we look it up
        import absl.logging  # noqa: F401
    except ImportError:
        pass
    user_level = os.environ.get(CPP_LOG_LEVEL)
    os.environ.setdefault(CPP_LOG_LEVEL, QUIET_CPP_LOG_LEVEL)
    loggers = [logging.getLogger(name) for name in QUIET_LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    _quiet = True
    try:
        with warnings.catch_warnings():  # Python warnings of TensorFlow & co. (tfrewind itself warns of nothing)
            warnings.simplefilter("ignore")
            yield
    finally:
        _quiet = False
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)
        if user_level is None:
            os.environ.pop(CPP_LOG_LEVEL, None)


@contextlib.contextmanager
def native_output_hidden(replay_on_error: bool = True) -> Iterator[bool]:
    """Under :func:`cli_console`, what is written to stderr (fd 2, C++ included) during the block goes
    to a temporary file, shown only if the block raises (its messages may say why) and
    ``replay_on_error``. Yields whether it hides. Used around TensorFlow's import, the TFLite
    converter and LiteRT's interpreter (whose load failures the exporter expects and reports itself:
    ``replay_on_error=False`` there).
    """
    if not _quiet:
        yield False
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (AttributeError, OSError, ValueError):  # no usable stderr: nothing to hide
        yield False
        return
    failed = False
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield True
        except BaseException:
            failed = True
            raise
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            if failed and replay_on_error:
                sink.seek(0)
                sys.stderr.write(sink.read().decode(errors="replace"))
                sys.stderr.flush()
