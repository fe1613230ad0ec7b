"""What one running service needs to know: the workspace, its spool, and the limits it enforces."""

from __future__ import annotations

from dataclasses import dataclass
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
    key_ttl: float = 2.0
    """Seconds a key lookup is cached: a revoked key stops working within this time."""
    retry_after: int = 5
    """Seconds a 503 asks clients to wait."""

    def __post_init__(self) -> None:
        for name in ("max_events", "max_body_bytes", "backlog_limit", "load_batch", "retry_after"):
            if getattr(self, name) < 1:
                raise UsageError(f"The service setting {name} must be at least 1; got {getattr(self, name)}.")
        if self.load_interval <= 0 or self.key_ttl < 0:
            raise UsageError("The service settings load_interval must be positive and key_ttl not negative.")
        if not self.source or not self.source.replace("_", "").replace("-", "").isalnum():
            raise UsageError(f"The source name `{self.source}` must be letters, digits, '-' or '_'.")

    @property
    def spool(self) -> Path:
        return spool_path_for(self.workspace)
