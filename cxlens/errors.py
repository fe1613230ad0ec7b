"""One error hierarchy: every message names the offending item, where it came from and what is valid.

The CLI prints ``str(error)`` as one sentence and exits non-zero; nothing below a CxlensError is
shown as a traceback.
"""

from __future__ import annotations


class CxlensError(Exception):
    """Base of every error cxlens raises on purpose."""

    exit_code: int = 1


class WorkspaceError(CxlensError):
    """The workspace file cannot be opened, is locked, or has an unknown schema version."""


class MappingError(CxlensError):
    """A mapping file is malformed, names a missing column or holds a forbidden expression."""


class IngestError(CxlensError):
    """A file cannot be read or does not fit the canonical table it is loaded into."""


class IdentityError(CxlensError):
    """Identity resolution cannot run with the given settings."""


class NotFoundError(CxlensError):
    """A named thing (profile, identifier, table) does not exist."""


class SimulationError(CxlensError):
    """The simulation parameters are invalid."""


class StatsError(CxlensError):
    """A statistic was asked for with inputs it cannot use (unknown kind, counts that do not fit it)."""


class UsageError(CxlensError):
    """A command was called with arguments that do not fit together."""

    exit_code = 2


class MetricError(CxlensError):
    """A metric, dimension, grain or segment was asked for that does not exist or does not fit."""


class DefinitionError(CxlensError):
    """A metrics/dimensions/segments YAML file is malformed; every problem is listed with file:line."""


class BanditError(CxlensError):
    """A bandit was given offers, results, settings or a state file it cannot use."""


class ModelError(CxlensError):
    """A CLV model was given a summary it cannot use, or the data cannot identify its parameters."""
