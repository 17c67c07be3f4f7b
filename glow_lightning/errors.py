"""The errors glow-lightning raises for bad input, under one base class.

Each message is one line that names what is wrong and how to fix it; the command line prints it
as ``error: <message>`` and exits with status 2, with no traceback.
"""

from __future__ import annotations


class GlowLightningError(Exception):
    """Base of every error that means: the input is wrong, here is the fix."""


class ConfigError(GlowLightningError, ValueError):
    """A configuration problem: unknown key, wrong type, value out of range."""


class DataError(GlowLightningError, ValueError):
    """Bad data: a missing source, a wrong column or schema, a corrupt or mis-shaped image, an
    empty split, an unreachable Hub, e.g.
    ``data source '/x' does not exist; point data.source= at ...``."""


class CheckpointRefused(GlowLightningError):
    """A checkpoint that cannot be loaded safely (missing, damaged, or carrying pickled code)."""


class TrainingDiverged(GlowLightningError):
    """Too many optimiser steps in a row had a non-finite loss or gradient."""


class StorageError(GlowLightningError, OSError):
    """The file system refused a write (permissions, disk full, a run directory in use)."""


class Interrupted(GlowLightningError):
    """A signal (SIGTERM, Ctrl-C) stopped training after a checkpoint; ``exit_code`` is 128 plus
    the signal's number."""

    exit_code: int = 2
