"""A computed dashboard page: its main HTML, rendered once from the workspace at one data version.

A view is what the page cache keeps, persists next to the workspace and refreshes in the
background (see `state`): the numbers and the figures rendered into HTML, plus the data version
(`data_stamp`) and the time it was read. Rendering here, not per request, makes a cached page cost
only the layout around it, and lets the loader's child process do all of the work (`build_views`
is a module-level function so it can run there).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jinja2 import ChoiceLoader, Environment, PackageLoader, StrictUndefined, select_autoescape

from cxlens.service.dashboard.filters import CHANNEL, FIELDS, Filters

if TYPE_CHECKING:
    from cxlens.semantic.templates import Templates

Stamp = tuple[int, int, int]

SECTIONS: dict[str, str] = {"experiments": "Experiments", "value": "Customer value", "journeys": "Journeys",
                            "attribution": "Attribution"}
PAGES: tuple[str, ...] = ("overview", "surveys", *SECTIONS)
"""Pages whose content is computed from the workspace (customers is a live lookup)."""
FILTERED: frozenset[str] = frozenset({"overview", "surveys"})
"""Pages the filters apply to; the sections are the report's whole-workspace analyses."""
CHANNELS = 6
"""Order channels whose overview and surveys views are kept current without being asked for."""
LIVE: frozenset[str] = frozenset({"surveys"})
"""Pages a write through the service (a survey answer) makes out of date at once, whatever the
staleness window: an answer given on the survey page shows on the surveys page right away."""


def _masked_emails(text: str) -> str:
    """Email addresses inside free text (survey comments) as `a***@example.com`."""
    from cxlens.service.routes.read import EMAIL, mask

    return EMAIL.sub(lambda m: mask(m.group(0)), text)


env = Environment(
    loader=ChoiceLoader([PackageLoader("cxlens.service.dashboard", "templates"),
                         PackageLoader("cxlens.report", "templates")]),  # the report's sections and macros
    autoescape=select_autoescape(["html", "j2"], default_for_string=True), undefined=StrictUndefined,
    trim_blocks=True, lstrip_blocks=True,
)
env.filters["masked"] = _masked_emails


def data_stamp(workspace: Path) -> Stamp:
    """Changes whenever the workspace file, its write-ahead log or its definitions file is written."""
    from cxlens.semantic.registry import definitions_path, definitions_version
    from cxlens.workspace.workspace import file_stamp

    definitions = definitions_version(definitions_path(workspace))
    return (*file_stamp(workspace), definitions[0] if definitions else 0)


def view_filters(page: str, f: Filters) -> Filters:
    """The filters a page's content depends on: none for the sections, so one view serves every filter."""
    return f if page in FILTERED else Filters()


@dataclass(frozen=True)
class View:
    """One page's main HTML at one data version (`html_pii` when it shows raw emails to pii keys)."""

    page: str
    filters: Filters
    html: str
    html_pii: str | None
    stamp: Stamp
    as_of: float
    """Wall-clock time (epoch seconds) the data was read."""
    seconds: float
    """How long the computation took."""
    writes: int = 0
    """The service's count of its own writes when the data was read (see `LIVE`)."""

    def body(self, pii: bool) -> str:
        return self.html_pii if pii and self.html_pii is not None else self.html

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["filters"] = {k: (v.isoformat() if isinstance(v, date) else v) for k, v in d["filters"].items()}
        d["stamp"] = list(self.stamp)
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> View:
        f = d["filters"]
        filters = Filters(**{k: (date.fromisoformat(f[k]) if k in ("since", "until") and f[k] else f[k]) for k in FIELDS})
        return cls(page=str(d["page"]), filters=filters, html=str(d["html"]), html_pii=d["html_pii"],
                   stamp=tuple(int(x) for x in d["stamp"]), as_of=float(d["as_of"]),  # type: ignore[arg-type]
                   seconds=float(d["seconds"]), writes=int(d.get("writes", 0)))


def _content(page: str) -> tuple[str, Callable[..., dict[str, Any]]]:
    """(body template, compute function(ws, catalog, filters, measurer)) of a page."""
    from cxlens.service.dashboard import compute

    if page == "overview":
        return "overview.html.j2", compute.overview
    if page == "surveys":
        return "surveys.html.j2", compute.surveys
    if page in SECTIONS:
        return "section.html.j2", lambda ws, catalog, f, measurer: {**compute.section(ws, catalog, page),
                                                                    "section": f"sections/{page}.html.j2"}
    raise ValueError(f"no dashboard page {page!r}")


def build_views(workspace: str, keys: list[tuple[str, Filters]], writes: int = 0,
                budget: float = float("inf")) -> list[View]:
    """Compute and render pages from the workspace (the caller holds the service's workspace lock).

    Views computed together share one measurer, so the overview by week, by quarter and for each
    segment build the derived sources (sessions, cases) once; after `budget` seconds no further
    view is started (the first always is), nor once a caller in the server waits for the workspace,
    so the workspace is not held for long; a background view stops at once (its query is
    interrupted, the view dropped) while a reader waits or a reader's page is computed beside it
    (runtime.Access lets one run beside background work). Runs in the
    loader's child process when there is one: the engine work and the Python work (tiles,
    figures, rendering) then never hold the GIL the server's requests need.
    """
    from cxlens.service.loadworker import computing

    background = budget != float("inf")
    # A reader's page may be computed beside a load (see runtime.Access): `computing` makes the
    # load give way, or wait with its commit until the page is done (loadworker.quiet_commit).
    with contextlib.nullcontext() if background else computing():
        return _build(Path(workspace), keys, writes, budget, background)


def _build(path: Path, keys: list[tuple[str, Filters]], writes: int, budget: float, background: bool) -> list[View]:
    from cxlens.semantic import Measurer
    from cxlens.service.dashboard.compute import BatchMeasurer
    from cxlens.service.loadworker import reader_computing, reader_waiting, someone_waiting
    from cxlens.service.stopper import Stopper
    from cxlens.stopping import Stopped
    from cxlens.workspace import Workspace

    stamp = data_stamp(path)  # read once no load may commit before the page is done (see build_views)
    as_of, started = time.time(), time.perf_counter()
    catalog = _catalog(path)
    views: list[View] = []
    with (Workspace.open(path) as ws, Measurer(ws, catalog, templates=_templates(path, stamp)) as shared,
          Stopper(ws.backend, (lambda: reader_waiting() or reader_computing()) if background else None) as stopper):
        measurer = BatchMeasurer(shared, _answers(path, stamp))
        for page, f in keys:
            if views and background and (time.perf_counter() - started > budget or someone_waiting()):
                break  # a background batch: a reader, a load or an API call waits for the workspace
            began = time.perf_counter()
            template, compute_page = _content(page)
            try:
                context = {"filters": f, "segments": catalog.segments, **compute_page(ws, catalog, f, measurer)}
                html = env.get_template(template).render(pii=False, **context)
                html_pii = env.get_template(template).render(pii=True, **context) if page in LIVE else None
            except (Exception, Stopped):
                if stopper.fired:
                    break  # stopped for a reader: computed again by a later batch
                raise
            if stopper.fired:
                break  # whatever the engine was stopped in may be missing from it: not kept
            views.append(View(page, f, html, html_pii, stamp, as_of, round(time.perf_counter() - began, 3), writes))
    return views


def prepare_templates(workspace: str, keys: list[tuple[str, Filters]]) -> list[tuple[str, Filters]]:
    """Compile, without running, the queries these filtered views would ask for a date range (the
    caller holds the service's workspace lock; runs where views are computed, the loader's child).

    The first view of a date range nobody asked for yet then only runs the engine (0.5 s instead of
    1.5 s for the demo's overview). Views filtered to a segment are left out (their queries are
    not kept, see cxlens.semantic.templates). Stops early once a caller in the server waits for
    the workspace; returns the keys done.
    """
    from cxlens.semantic import Measurer
    from cxlens.semantic.templates import SINCE, UNTIL
    from cxlens.service.dashboard.compute import prepare
    from cxlens.service.loadworker import someone_waiting
    from cxlens.workspace import Workspace

    path = Path(workspace)
    catalog = _catalog(path)
    done: list[tuple[str, Filters]] = []
    with Workspace.open(path) as ws, Measurer(ws, catalog, templates=_templates(path, data_stamp(path))) as measurer:
        for page, f in keys:
            if page in FILTERED and f.segment is None and not prepare(measurer, catalog, page, f, SINCE, UNTIL,
                                                                      stop=someone_waiting):
                break
            done.append((page, f))
    return done


_CATALOGS: Any = None
"""The KeptCatalogs of the views this process computes (the loader's child computes every view)."""


def _catalog(path: Path) -> Any:
    from cxlens.semantic.registry import KeptCatalogs, definitions_path

    global _CATALOGS
    if _CATALOGS is None:
        _CATALOGS = KeptCatalogs()
    return _CATALOGS.get(definitions_path(path))


_ANSWERS: dict[Path, tuple[Stamp, dict[tuple[Any, ...], dict[str, Any]]]] = {}
"""`measure_many` answers of the views this process computed, per workspace, for its current data
version (the stamp covers the definitions file too). The overview for a channel nobody asked for
yet asks the very queries the kept channels' overviews asked (every metric cut by channel), so its
first view only builds tiles and renders."""
ANSWERS_MAX = 256
_TEMPLATES: dict[Path, Templates] = {}
"""The compiled queries of the views this process computed, per workspace: a date range nobody
asked for yet runs the engine only (see cxlens.semantic.templates). They outlive new data; the
data values each was built with are checked once per data version."""


def _answers(path: Path, stamp: Stamp) -> dict[tuple[Any, ...], dict[str, Any]]:
    kept = _ANSWERS.get(path)
    if kept is None or kept[0] != stamp or len(kept[1]) > ANSWERS_MAX:
        kept = _ANSWERS[path] = (stamp, {})
    return kept[1]


def _templates(path: Path, stamp: Stamp) -> Templates:
    from cxlens.semantic.templates import Templates

    templates = _TEMPLATES.setdefault(path, Templates())
    templates.epoch(stamp)
    return templates


def check_templates(workspace: str, stop: Callable[[], bool] | None = None) -> int:
    """In the process that computes pages, right after a load changed the data: check the values
    the kept date-range queries were built with against the new data version (Templates.check),
    which the first page at that version would otherwise do while its reader waits. How many hold.
    Once `stop()` holds (a reader's page is being computed beside it, and checks for itself) it
    stops, what it checked so far kept."""
    from cxlens.semantic import Measurer
    from cxlens.service.stopper import Stopper
    from cxlens.stopping import Stopped
    from cxlens.workspace import Workspace

    path = Path(workspace)
    if path not in _TEMPLATES or (stop is not None and stop()):
        return 0
    stamp = data_stamp(path)
    with (Workspace.open(path) as ws, Measurer(ws, _catalog(path), templates=_templates(path, stamp)) as measurer,
          Stopper(ws.backend, stop) as stopper):
        assert measurer.templates is not None
        try:
            return measurer.templates.check(measurer.context)
        except (Exception, Stopped):
            if stopper.fired:
                return 0
            raise


def order_channels(workspace: str, limit: int = CHANNELS) -> list[str]:
    """The most common order channels (store, online, app, ...): the channel filter's likely values."""
    from cxlens.workspace import Workspace

    with Workspace.open(Path(workspace)) as ws:
        if "orders" not in ws.backend.tables():
            return []
        o = ws.table("orders")
        o = o.filter(o.channel.notnull())
        frame = o.group_by("channel").aggregate(n=o.count())
        frame = frame.order_by([frame.n.desc(), frame.channel]).limit(limit).execute()
    return [str(c) for c in frame["channel"] if CHANNEL.match(str(c))]


def build_view(workspace: str, page: str, filters: Filters, writes: int = 0) -> View:
    """One page's view (see `build_views`)."""
    return build_views(workspace, [(page, filters)], writes)[0]
