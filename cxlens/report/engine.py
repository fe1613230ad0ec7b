"""One semantic context for a whole report, so sources every metric shares are built once.

`measure()` and `compare_periods()` each build a fresh context and release it after their query,
which is right for one question but makes a report of fifty metrics, its breakdowns and its
baseline comparisons rebuild the web sessions (window functions over every event) dozens of
times. `SharedCatalog` is the workspace's catalogue handing every query the same context, built
with `materialize=True` (the semantic layer then keeps its costly sources as temporary tables)
and not released until the report is done; it also keeps the segment memberships, which every
breakdown by segment would otherwise recompute from the profile features. Values are unchanged
(tests compare them with plain `measure()`); only the time goes down.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field, fields
from typing import Any

import ibis.expr.types as ir

from cxlens.semantic.registry import Catalog
from cxlens.semantic.sources import Context


class SharedContext(Context):
    """A semantic context that outlives the queries using it: `release()` waits for `close()`."""

    def release(self) -> None:
        """Ignored: this context serves the whole report; `SharedCatalog.close()` releases it."""

    def release_now(self) -> None:
        super().release()


@dataclass
class SharedCatalog(Catalog):
    """The workspace's catalogue, handing every query one SharedContext."""

    shared: SharedContext | None = field(default=None, repr=False)
    members: ir.Table | None = field(default=None, repr=False)

    @classmethod
    def of(cls, catalog: Catalog) -> "SharedCatalog":
        return cls(**{f.name: getattr(catalog, f.name) for f in fields(Catalog) if f.init})

    def context(self, table: object, **options: Any) -> Context:
        """The one shared context (whatever `materialize` a caller asks, it materializes)."""
        if self.shared is None:
            self.shared = SharedContext(table, self.engagement, self.lifespan_days, materialize=True)  # type: ignore[arg-type]
        return self.shared

    def segment_members(self, ctx: Context) -> ir.Table:
        if self.members is None:
            self.members = super().segment_members(ctx).cache()
        return self.members

    def close(self) -> None:
        """Drop every table materialized for the report, while the workspace is still open."""
        if self.members is not None:
            with contextlib.suppress(Exception):
                self.members.release()
            self.members = None
        if self.shared is not None:
            self.shared.release_now()
            self.shared = None
