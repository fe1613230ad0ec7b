"""What the dashboard keeps in one app instance: its signing secret and a cache of computed pages.

A page's numbers depend only on the workspace's content and the filters, so they are cached by
(workspace file stamp, page, filters): a reader clicking between pages or reloading waits for the
engine once, and the first load after the loader writes new events recomputes. The default view of
every page is computed in the background when someone opens the sign-in page, so the first
signed-in pages are already warm.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cxlens.service.dashboard.session import Signer

log = logging.getLogger("cxlens.dashboard")
CACHE_ENTRIES = 64


def stamp(workspace: Path) -> tuple[int, int]:
    """Changes whenever the workspace file (or its write-ahead log) is written."""
    def mtime(p: Path) -> int:
        try:
            return os.stat(p).st_mtime_ns
        except FileNotFoundError:
            return 0

    return mtime(workspace), mtime(workspace.with_name(workspace.name + ".wal"))


class DashboardState:
    """The secret sessions are signed with, and computed pages by (stamp, page, filters)."""

    def __init__(self, workspace: Path):
        self.workspace = workspace
        self.signer = Signer()
        self._pages: OrderedDict[tuple[Any, ...], dict[str, Any]] = OrderedDict()
        self._lock = threading.Lock()
        self._warming = False

    def page(self, name: str, key: tuple[Any, ...], compute: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """The cached result of `compute` for this page and filters at the workspace's current content."""
        full = (stamp(self.workspace), name, *key)
        with self._lock:
            if full in self._pages:
                self._pages.move_to_end(full)
                return self._pages[full]
        result = compute()
        with self._lock:
            self._pages[full] = result
            while len(self._pages) > CACHE_ENTRIES:
                self._pages.popitem(last=False)
        return result

    def warm(self, jobs: list[Callable[[], object]]) -> None:
        """Run `jobs` once in a background thread (again only after the previous warm-up ended)."""
        with self._lock:
            if self._warming:
                return
            self._warming = True

        def run() -> None:
            try:
                for job in jobs:
                    job()
            except Exception:  # a warm-up failure only costs the first reader a wait
                log.exception("warming the dashboard cache failed")
            finally:
                self._warming = False

        threading.Thread(target=run, name="cxlens-dashboard-warm", daemon=True).start()


def state_of(app: Any) -> DashboardState:
    """The app's dashboard state, created on first use (the app factory knows nothing of it)."""
    st = getattr(app.state, "dashboard", None)
    if st is None:
        with _create_lock:
            st = getattr(app.state, "dashboard", None)
            if st is None:
                st = DashboardState(app.state.settings.workspace)
                app.state.dashboard = st
    return st


_create_lock = threading.Lock()
