"""What the dashboard keeps in one app instance: its signing secret and the computed views of its pages.

A reader should never wait for the engine. Each page's view (see `views`) is kept with the data
version it was computed from, and a background thread keeps the wanted views current once the
dashboard is in use (saved views exist, or someone opened a dashboard page): the default view
of every page, the overview and surveys by week, by quarter, per order channel and per segment,
and the views readers asked for lately. When a load changes the workspace, a view may still be
shown for `ServiceSettings.dashboard_max_stale` seconds after the change was seen (the page says
"As of HH:MM:SS") while the thread recomputes it; past that window a reader waits for fresh
numbers. The surveys page is out of date at once after a write through the service (a survey
answer). Views are saved next to the workspace, so a restarted server shows pages at once.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cxlens import __version__
from cxlens.errors import CxlensError
from cxlens.service.dashboard.filters import Filters
from cxlens.service.dashboard.session import Signer
from cxlens.service.dashboard.views import (
    FILTERED,
    LIVE,
    PAGES,
    Stamp,
    View,
    build_views,
    data_stamp,
    order_channels,
    prepare_templates,
    view_filters,
)

log = logging.getLogger("cxlens.dashboard")

WANTED_MAX = 32
"""Views readers asked for that are kept current besides the defaults (the most recently read)."""
FORMAT = 1
"""Version of the saved views file; another version (or another cxlens version) is ignored."""
SAVE_EVERY = 5.0
"""Seconds between saves of the views file while views keep changing."""
BATCH_SECONDS = 8.0
"""A background refresh starts no further view after this long, so loads and readers get the workspace."""
PAUSE_SECONDS = 0.2
"""Pause after each background batch, so a waiting load or reader takes the workspace first."""
IDLE_POLL = 1.0
"""Seconds between checks of the workspace's data version while every view is current."""

Key = tuple[str, Filters]


def views_path(workspace: Path) -> Path:
    """The saved views live next to the workspace, like the spool."""
    return workspace.with_name(workspace.name + ".dashboard.json")


def _shares_queries(a: Key, b: Key) -> bool:
    """Whether two views run the same engine queries: one page for two channels, same dates, grain and segment."""
    fa, fb = a[1], b[1]
    return (a[0] == b[0] and fa.channel is not None and fb.channel is not None
            and (fa.since, fa.until, fa.grain, fa.segment) == (fb.since, fb.until, fb.grain, fb.segment))


def default_keys(segments: list[str], channels: list[str] = ()) -> list[Key]:  # type: ignore[assignment]
    """What is kept current without being asked for: every page's default view, then the overview
    and surveys by week, by quarter, for each order channel and for each declared segment (the
    channels before the segments: computed together they share one query, see compute.BatchMeasurer)."""
    keys: list[Key] = [(page, Filters()) for page in PAGES]
    for page in ("overview", "surveys"):
        keys += [(page, Filters(grain=g)) for g in ("week", "quarter")]
        keys += [(page, Filters(channel=c)) for c in channels]
        keys += [(page, Filters(segment=s)) for s in segments]
    return keys


@dataclass(frozen=True)
class Shown:
    """A view as one request gets it: `stale` when the workspace has changed since it was read."""

    view: View
    stale: bool


class DashboardState:
    """The signing secret, the views by (page, filters), and the thread that keeps them current."""

    def __init__(self, workspace: Path, runtime: Any = None, max_stale: float = 180.0):
        self.workspace = workspace
        self.runtime = runtime
        self.max_stale = max_stale
        self.signer = Signer()
        self._views: dict[Key, View] = {}
        self._superseded: dict[Key, float] = {}
        """When each view's data version was first seen to be out of date (wall clock)."""
        self._wanted: OrderedDict[Key, None] = OrderedDict()
        self._defaults: dict[Key, int] = {}
        """Views kept current without being asked for, in the order they are refreshed."""
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._dirty = False
        self._saved_at = 0.0
        self._stamp: Stamp | None = None
        self._computing: dict[Key, threading.Lock] = {}
        self._active = threading.Event()
        self._segments: list[str] = []
        self._failed: dict[Key, Stamp | None] = {}
        """Views whose refresh failed, with the data version it failed at (not retried before it changes)."""
        self._solo = False
        self._refreshing: set[Key] = set()
        """The views the background refresh is computing now (a reader wanting one waits for it)."""
        self._refreshed = threading.Condition(self._lock)
        self._prepared: set[Key] = set()
        """Kept views whose queries for a date range are compiled (see `_prepare`)."""
        self._prepared_for: int | None = None

    # -- reading ------------------------------------------------------------------------------

    def show(self, page: str, f: Filters) -> Shown:
        """The view of `page` under `f`: the kept one while it is within the staleness window, else
        computed now (the reader waits). Asking for a view makes the thread keep it current."""
        key = (page, view_filters(page, f))
        self.activate()
        self.observe()
        now = time.time()
        with self._lock:
            self._want(key)
            view = self._views.get(key)
            usable = view is not None and self._usable(key, view, now)
        if view is not None and usable:
            stale = key in self._superseded
            if stale:
                self._wake.set()
            return Shown(view, stale)
        return Shown(self.compute(key), False)

    def _usable(self, key: Key, view: View, now: float) -> bool:
        if key[0] in LIVE and self.runtime is not None and view.writes != self.runtime.writes:
            return False
        superseded = self._superseded.get(key)
        return superseded is None or now - superseded <= self.max_stale

    def _want(self, key: Key) -> None:
        self._wanted[key] = None
        self._wanted.move_to_end(key)
        while len(self._wanted) > WANTED_MAX + len(self._defaults):
            oldest = next((k for k in self._wanted if k not in self._defaults), None)
            if oldest is None:
                break
            del self._wanted[oldest]
            self._views.pop(oldest, None)
            self._superseded.pop(oldest, None)
            self._computing.pop(oldest, None)

    def observe(self) -> Stamp:
        """Read the data version; views computed from another one are marked out of date from now."""
        stamp = data_stamp(self.workspace)
        if stamp != self._stamp:
            now = time.time()
            with self._lock:
                self._stamp = stamp
                self._solo = False
                for key, view in self._views.items():
                    if view.stamp != stamp:
                        self._superseded.setdefault(key, now)
                    else:
                        self._superseded.pop(key, None)
            self._wake.set()
        return stamp

    # -- computing ----------------------------------------------------------------------------

    def compute(self, key: Key) -> View:
        """Compute one view now for a waiting reader (in the loader's child process when there is one)
        and keep it; a reader who finds the same view being computed waits for that one instead."""
        with self._lock:
            key_lock = self._computing.setdefault(key, threading.Lock())
        with key_lock:
            with self._lock:
                while key in self._refreshing:  # the refresh is computing it: take that one
                    self._refreshed.wait()
                view = self._views.get(key)
                if view is not None and view.stamp == self._stamp and self._usable(key, view, time.time()):
                    return view
            return self._run([key], background=False)[0]

    def _run(self, keys: list[Key], background: bool) -> list[View]:
        if background:
            with self._lock:
                self._refreshing = set(keys)
        try:
            return self._compute_and_keep(keys, background)
        finally:
            if background:
                with self._lock:
                    self._refreshing = set()
                    self._refreshed.notify_all()

    def _compute_and_keep(self, keys: list[Key], background: bool) -> list[View]:
        if self.runtime is not None:
            views = self.runtime.run(build_views, str(self.workspace), keys, self.runtime.writes,
                                     BATCH_SECONDS if background else float("inf"), background=background,
                                     cancel=self._stop, reader=not background)
        else:
            views = build_views(str(self.workspace), keys)
        with self._lock:
            for view in views:
                key = (view.page, view.filters)
                old = self._views.get(key)
                if old is not None and old.as_of > view.as_of:
                    continue
                self._views[key] = view
                if view.stamp == self._stamp:
                    self._superseded.pop(key, None)
                else:  # the data changed while it was computed: at some time after it was read
                    self._superseded[key] = view.as_of
                self._dirty = True
        return views

    def _refresh(self, due: list[Key]) -> None:
        """Recompute the first due view, with the due views of the other filtered pages after it
        (they share the engine's derived sources) as far as BATCH_SECONDS allows."""
        batch = [due[0]]
        if due[0][0] in FILTERED and not self._solo:
            rest = [k for k in due[1:] if k[0] in FILTERED]
            batch += sorted(rest, key=lambda k: not _shares_queries(due[0], k))  # stable: due order otherwise
        try:
            views = self._run(batch, background=True)
        except Exception as exc:  # not again at this data version; a reader of it gets the error page
            if len(batch) == 1:
                with self._lock:
                    self._failed[batch[0]] = self._stamp
            else:  # find the one at fault: one view per batch until the data changes
                self._solo = True
            if isinstance(exc, CxlensError):
                log.warning("dashboard view %s%s not refreshed: %s", batch[0][0], batch[0][1].query(), exc)
            else:
                log.exception("dashboard view %s%s not refreshed", batch[0][0], batch[0][1].query())
            return
        for v in views:
            log.info("dashboard view %s%s computed in %.1f s", v.page, v.filters.query(), v.seconds)

    def _due(self) -> list[Key]:
        """Wanted views that are missing or out of date: every page's default view first, then the
        variants kept without being asked for, then the views readers asked for; the longest out of
        date first within each."""
        stamp = self._stamp
        writes = self.runtime.writes if self.runtime is not None else 0
        with self._lock:
            due = []
            for key in self._wanted:
                view = self._views.get(key)
                if self._failed.get(key, ()) == stamp:
                    continue
                if view is None or view.stamp != stamp or (key[0] in LIVE and view.writes != writes):
                    due.append(key)

            def rank(k: Key) -> tuple[int, float, int]:
                tier = (0 if k[1] == Filters() else 1) if k in self._defaults else 2
                return tier, self._superseded.get(k, 0.0), self._defaults.get(k, 0)

            return sorted(due, key=rank)

    def _unprepared(self) -> list[Key]:
        """Kept filtered views whose queries for a date range are not compiled yet (in this
        definitions file's version: a new catalogue has new queries)."""
        definitions = self._stamp[-1] if self._stamp else None
        with self._lock:
            if definitions != self._prepared_for:
                self._prepared, self._prepared_for = set(), definitions
            return [k for k in self._defaults if k[0] in FILTERED and k[1].segment is None and k not in self._prepared]

    def _prepare(self, keys: list[Key]) -> None:
        """Once every kept view is current: compile what their first view of a date range asks,
        so it runs the engine only (see views.prepare_templates)."""
        try:
            done = self.runtime.run(prepare_templates, str(self.workspace), keys, background=True, cancel=self._stop)
        except CxlensError as exc:
            log.warning("dashboard queries for date ranges not prepared: %s", exc)
            done = keys
        except Exception:  # the page computes them when asked; do not try again at this version
            log.exception("preparing the dashboard's queries for date ranges failed")
            done = keys
        with self._lock:
            self._prepared.update(done)

    def status(self) -> dict[str, int]:
        """Views kept, wanted views missing or out of date (0 once the refresh has caught up), and
        kept views whose queries for a date range are not compiled yet (0 once prepared)."""
        self.observe()
        unprepared = len(self._unprepared()) if self.runtime is not None and self._active.is_set() else 0
        return {"views": len(self._views), "due": len(self._due()), "unprepared": unprepared}

    def activate(self) -> None:
        """Start keeping the views current (a server nobody reads the dashboard of spends nothing on it)."""
        self._active.set()

    def _keep(self, keys: list[Key]) -> None:
        """Keep these views current without being asked for (before the views readers asked for)."""
        with self._lock:
            for key in keys:
                self._wanted[key] = None
                self._defaults.setdefault(key, len(self._defaults))

    def _refresh_loop(self) -> None:
        channels_known = False
        while not self._stop.is_set():
            if not self._active.is_set():
                self._active.wait(IDLE_POLL)
                continue
            try:
                if not channels_known and self.runtime is not None:
                    channels = self.runtime.run(order_channels, str(self.workspace), background=True, cancel=self._stop)
                    self._keep(default_keys(self._segments, channels))
                    channels_known = True
                self.observe()
                due = self._due()
                if due:
                    self._refresh(due)
                    self._stop.wait(PAUSE_SECONDS)
                elif self.runtime is not None and self._unprepared():
                    self._prepare(self._unprepared())
                    self._stop.wait(PAUSE_SECONDS)
                else:
                    self._wake.clear()
                    self._wake.wait(IDLE_POLL)
            except CxlensError as exc:  # e.g. a definitions file with an error: the page says so when read
                log.warning("dashboard view not refreshed: %s", exc)
                self._stop.wait(IDLE_POLL)
            except Exception:  # the thread must outlive one bad view
                log.exception("refreshing a dashboard view failed")
                self._stop.wait(IDLE_POLL)
            if self._dirty and time.monotonic() - self._saved_at >= SAVE_EVERY:
                self.save()

    def start(self, segments: list[str]) -> None:
        """Load the saved views and keep the wanted ones current: from now on when views were saved
        (the dashboard is in use on this workspace), else from the first dashboard request."""
        self._segments = segments
        self._keep(default_keys(segments))
        self.load()
        if self._views:
            self.activate()
        self._thread = threading.Thread(target=self._refresh_loop, name="cxlens-dashboard-refresh", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=120)
        if self._dirty:
            self.save()

    # -- saving -------------------------------------------------------------------------------

    def save(self) -> None:
        """Write the views next to the workspace (atomically: a crash leaves the previous file)."""
        with self._lock:
            views = [v.to_json() for v in self._views.values()]
            self._dirty = False
        self._saved_at = time.monotonic()
        path = views_path(self.workspace)
        tmp = path.with_name(path.name + ".tmp")
        try:
            tmp.write_text(json.dumps({"format": FORMAT, "cxlens": __version__, "views": views}), encoding="utf-8")
            tmp.replace(path)
        except OSError as exc:
            log.warning("dashboard views not saved to %s: %s", path, exc)

    def load(self) -> None:
        """Take the views a previous run saved; one whose data version is not the current one counts
        as out of date from now (it is shown within the window while it is recomputed)."""
        path = views_path(self.workspace)
        try:
            saved = json.loads(path.read_text(encoding="utf-8"))
            if saved.get("format") != FORMAT or saved.get("cxlens") != __version__:
                return
            views = [View.from_json(d) for d in saved["views"]]
        except FileNotFoundError:
            return
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("ignoring the saved dashboard views in %s: %s", path, exc)
            return
        writes = self.runtime.writes if self.runtime is not None else 0
        with self._lock:
            for v in views:
                if v.filters.segment is not None and v.filters.segment not in self._segments:
                    continue  # the definitions file no longer declares it
                key = (v.page, v.filters)
                self._views[key] = View(v.page, v.filters, v.html, v.html_pii, v.stamp, v.as_of, v.seconds, writes)
                self._wanted.setdefault(key, None)
        self._stamp = None
        self.observe()


def prepare_views(workspace: Path, segments: list[str]) -> int:
    """Compute and save the default view of every page, so a server started later on this
    workspace shows them at once instead of computing them for its first reader (about 10 s on
    the demo workspace). `cxlens demo` calls it last; returns how many views were saved."""
    st = DashboardState(workspace)
    st._segments = segments
    views = build_views(str(workspace), [(page, Filters()) for page in PAGES])
    with st._lock:
        st._views = {(v.page, v.filters): v for v in views}
    st.save()
    return len(views)


def state_of(app: Any) -> DashboardState:
    """The app's dashboard state, created on first use."""
    st = getattr(app.state, "dashboard", None)
    if st is None:
        with _create_lock:
            st = getattr(app.state, "dashboard", None)
            if st is None:
                settings = app.state.settings
                st = DashboardState(settings.workspace, getattr(app.state, "runtime", None),
                                    settings.dashboard_max_stale)
                app.state.dashboard = st
    return st


_create_lock = threading.Lock()
