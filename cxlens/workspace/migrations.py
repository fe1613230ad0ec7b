"""Schema versions of a workspace and the steps between them.

A workspace records its version in `cxlens_meta`; opening an older one applies the missing steps
in order (inside one transaction on DuckDB), opening a newer one is refused with a sentence.
"""

from __future__ import annotations

from collections.abc import Callable

from cxlens.workspace.backend import Backend
from cxlens.workspace.internal import INTERNAL_TABLES
from cxlens.workspace.schema import TABLES, all_columns


def _v1(backend: Backend) -> None:
    """Every canonical table of DESIGN.md plus the bookkeeping tables."""
    for name, table in TABLES.items():
        backend.ensure_table(name, all_columns(table))
    for name, columns in INTERNAL_TABLES.items():
        backend.ensure_table(name, columns)


MIGRATIONS: list[Callable[[Backend], None]] = [_v1]
SCHEMA_VERSION = len(MIGRATIONS)
