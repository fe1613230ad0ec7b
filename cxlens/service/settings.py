"""What one running service needs to know: the workspace, its spool, and the limits it enforces."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from cxlens.errors import UsageError


def spool_path_for(workspace: Path) -> Path:
    """The spool lives next to the workspace, so the CLI finds it from `--workspace` alone."""
    return workspace.with_name(workspace.name + ".spool")


@dataclass(frozen=True)
class ServiceSettings:
    """Settings of one app instance (`create_app(settings)`); nothing is global."""

    workspace: Path
    """The DuckDB workspace file the loader writes and the read API reads."""
    source: str = "http"
    """Namespace of collected records: customer_id 42 sent here is `customer_id:<source>:42`; use
    the source name of your shop's exports (e.g. `webshop`) so HTTP events join those customers."""
    max_events: int = 1000
    """Events per POST /v1/events."""
    max_body_bytes: int = 2 * 1024 * 1024
    """Largest request body accepted (413 above it)."""
    backlog_limit: int = 200_000
    """Events waiting in the spool above which collection answers 503 with Retry-After."""
    load_interval: float = 3.0
    """Seconds between loads of the spool into the workspace."""
    load_batch: int = 100_000
    """Events per load transaction."""
    load_threads: int = field(default_factory=lambda: max(1, (os.cpu_count() or 2) - 1))
    """DuckDB threads a load may use: one core less than the machine has, so requests keep one."""
    load_pause: float = 0.5
    """After a load of L seconds the next waits at least `load_pause * L` seconds (and at least
    `load_interval`): under a high backlog loads grow larger and rarer, amortizing their fixed cost
    (identity resolution, the profile rebuild), and the loader takes at most 1/(1 + load_pause)
    of the time."""
    profiles_every: float = 30.0
    """Seconds the profiles table may lag behind the events while events keep arriving (a backlog,
    or a steady stream). Every load resolves identities, so each event has its profile_id at once;
    the profiles table (one row per person, rebuilt from every record) is rebuilt by a load during
    which no event arrived (the spool is empty after it), or by the first load this long after the
    last rebuild."""
    seen_days: float = 7.0
    """Days an event_id is remembered to answer a resend as a duplicate; older ids are pruned (a
    later resend is accepted again but still stored once: the events table is keyed by event_id)."""
    load_process: bool = True
    """Load in a child process at lower CPU priority (see cxlens.service.loadworker), so a load's
    Python work never holds the GIL the request handlers need."""
    key_ttl: float = 2.0
    """Seconds a key lookup is cached: a revoked key stops working within this time."""
    retry_after: int = 5
    """Seconds a 503 asks clients to wait."""
    cors_origins: tuple[str, ...] = ()
    """Origins (https://shop.example.com, or `*`) whose web pages may call the collection endpoints
    (events, identify, survey answers) from the browser; see cxlens.service.cors."""
    dashboard_max_stale: float = 180.0
    """Seconds a dashboard page may go on showing its last computed view after the workspace
    changed (the page says "as of HH:MM:SS") while it is recomputed in the background; past this a
    reader waits for fresh numbers. It must outlast a refresh of every kept view (75-110 s on the
    demo workspace on 2 cores shared with other work), or readers wait while collection keeps
    changing the data. The surveys page is recomputed at once after a survey answer."""

    def __post_init__(self) -> None:
        for name in ("max_events", "max_body_bytes", "backlog_limit", "load_batch", "load_threads", "retry_after"):
            if getattr(self, name) < 1:
                raise UsageError(f"The service setting {name} must be at least 1; got {getattr(self, name)}.")
        if self.load_interval <= 0 or self.seen_days <= 0 or self.key_ttl < 0 or self.load_pause < 0 \
                or self.profiles_every < 0 or self.dashboard_max_stale < 0:
            raise UsageError("The service settings load_interval and seen_days must be positive, key_ttl, "
                             "load_pause, profiles_every and dashboard_max_stale not negative.")
        if not self.source or not self.source.replace("_", "").replace("-", "").isalnum():
            raise UsageError(f"The source name `{self.source}` must be letters, digits, '-' or '_'.")

    @property
    def spool(self) -> Path:
        return spool_path_for(self.workspace)
