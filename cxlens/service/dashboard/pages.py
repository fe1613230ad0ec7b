"""The dashboard's routes: sign-in and sign-out, the pages, and the JavaScript they load.

Pages are server-rendered Jinja2 (autoescaped) in one layout. A computed page's content is a
view kept by `state` (rendered once per data version); a request only puts it in the layout.
Each answer carries a Content-Security-Policy that allows scripts from this server only: the
figures travel as JSON in non-executable blocks and /dashboard/static/dashboard.js draws them
with the installed Plotly.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from markupsafe import Markup

from cxlens.errors import CxlensError
from cxlens.service.auth import runtime
from cxlens.service.dashboard import auth
from cxlens.service.dashboard.filters import Filters, parse_filters
from cxlens.service.dashboard.session import LOGIN_COOKIE
from cxlens.service.dashboard.state import state_of
from cxlens.service.dashboard.views import SECTIONS, env
from cxlens.service.keys import hash_key

router = APIRouter(prefix="/dashboard", include_in_schema=False)

CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
       "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
       "frame-ancestors 'none'")
"""Inline styles are allowed because Plotly sets them on the elements it draws; scripts are not."""
STATIC = Path(__file__).parent / "static"
STATIC_FILES: dict[str, tuple[Path, str]] = {
    "dashboard.js": (STATIC / "dashboard.js", "text/javascript"),
    "dashboard.css": (STATIC / "dashboard.css", "text/css"),
    "report.css": (Path(__file__).parents[2] / "report" / "templates" / "report.css", "text/css"),
}
"""Served by name from a fixed list: no part of the request path reaches the file system."""
PARAM_CHARS = 256
"""Longest query-string value a page reads; longer ones are refused before anything else."""
NAV: tuple[tuple[str, str], ...] = (("overview", "Overview"), ("customers", "Customers"), ("surveys", "Surveys"),
                                    *SECTIONS.items())

Reader = Annotated[auth.Reader, Depends(auth.reader)]


def _catalog(request: Request) -> Any:
    """Built-in metrics plus the served workspace's definitions file (its segments feed the filter)."""
    from cxlens.service.routes.read import catalog

    return catalog(request)


def render(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    html = env.get_template(template).render(request_path=request.url.path, nav=NAV, plotly_version=_plotly_version(),
                                              **context)
    return HTMLResponse(html, status_code=status, headers={"Content-Security-Policy": CSP})


def _plotly_version() -> str:
    import plotly

    return str(plotly.__version__)


def _params(request: Request) -> dict[str, str]:
    """The query string, each value at most PARAM_CHARS long and given once."""
    params: dict[str, str] = {}
    for name, value in request.query_params.multi_items():
        if len(value) > PARAM_CHARS:
            raise HTTPException(400, f"{name[:40]}: longer than {PARAM_CHARS} characters.")
        params.setdefault(name, value)
    return params


def _as_of(epoch: float) -> str:
    """`HH:MM:SS UTC`, with the date when it is not today."""
    moment, today = datetime.fromtimestamp(epoch, UTC), datetime.now(UTC).date()
    return moment.strftime("%H:%M:%S UTC" if moment.date() == today else "%Y-%m-%d %H:%M:%S UTC")


def _page(request: Request, who: auth.Reader, page: str, template: str, title: str | None = None,
          **extra: Any) -> HTMLResponse:
    """Validate the filters, take the page's view (kept, or computed now) and render it in the layout."""
    started = time.perf_counter()
    catalog = _catalog(request)
    common = {"who": who.key, "csrf": state_of(request.app).signer.csrf(who.session.sid), "page": page,
              "segments": catalog.segments}
    try:
        f = parse_filters(_params(request), catalog.segments)
    except HTTPException as exc:
        return render(request, "error.html.j2", exc.status_code, message=exc.detail, filters=Filters(), **common)
    if title is None:  # a page without a view (customers)
        return render(request, template, filters=f, seconds=f"{time.perf_counter() - started:.2f}", **common, **extra)
    try:
        shown = state_of(request.app).show(page, f)
    except CxlensError as exc:
        return render(request, "error.html.j2", 400, message=str(exc), filters=f, **common)
    view = shown.view
    return render(request, "view.html.j2", filters=f, title=title, body=Markup(view.body(who.key.pii)),
                  as_of=_as_of(view.as_of), as_of_iso=datetime.fromtimestamp(view.as_of, UTC).isoformat(timespec="seconds"),
                  stale=shown.stale, seconds=f"{time.perf_counter() - started:.2f}", **common)


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request) -> HTMLResponse:
    """The sign-in form; opening it starts keeping the pages' views current (see `state`)."""
    nonce = auth.login_nonce(request)
    response = render(request, "login.html.j2", error=None, csrf=state_of(request.app).signer.csrf(nonce))
    auth.set_cookie(request, response, LOGIN_COOKIE, nonce, 3600)
    state_of(request.app).activate()  # the reader's pages are computed while they sign in
    return response


@router.post("/login")
async def login(request: Request) -> Response:
    """Exchange a read key for a session cookie (the key itself is never stored in the browser)."""
    fields = await auth.form(request)
    nonce = request.cookies.get(LOGIN_COOKIE)
    auth.check_csrf(request, nonce, fields)
    key = fields.get("key", "").strip()
    record = runtime(request).key(hash_key(key)) if key else None
    error, status = None, 200
    if record is None:
        error, status = "This key is unknown or revoked.", 401
    elif record.scope != "read":
        error, status = f"The key `{record.name}` has scope `{record.scope}`; the dashboard needs a read key.", 403
    if error is not None:
        assert nonce is not None
        return render(request, "login.html.j2", status, error=error, csrf=state_of(request.app).signer.csrf(nonce))
    response = RedirectResponse(f"{auth.PATH}/", status_code=303)
    auth.start_session(request, response, hash_key(key))
    return response


@router.post("/logout")
async def logout(request: Request, who: Reader) -> Response:
    fields = await auth.form(request)
    auth.check_csrf(request, who.session.sid, fields)
    response = RedirectResponse(f"{auth.PATH}/login", status_code=303)
    auth.end_session(response)
    return response


@router.get("/", response_class=HTMLResponse)
def overview(request: Request, who: Reader) -> HTMLResponse:
    return _page(request, who, "overview", "view.html.j2", "Overview")


@router.get("/surveys", response_class=HTMLResponse)
def surveys(request: Request, who: Reader) -> HTMLResponse:
    return _page(request, who, "surveys", "view.html.j2", "Surveys")


@router.get("/customers", response_class=HTMLResponse)
def customers(request: Request, who: Reader) -> HTMLResponse:
    """Search by email, customer_id or any identifier; the 360° profile and its timeline."""
    try:
        q = _params(request).get("q", "").strip()
    except HTTPException:
        q = ""  # _page answers with the error page naming the field
    found: dict[str, Any] = {"q": q, "profile": None, "identifiers": [], "timeline": [], "message": None}
    if q:
        try:
            found.update(_profile(request, q, who.key.pii))
        except CxlensError as exc:
            found["message"] = str(exc)
    return _page(request, who, "customers", "customers.html.j2", **found)


def _profile(request: Request, q: str, pii: bool) -> dict[str, Any]:
    from cxlens.service.routes.read import profile_document

    return profile_document(request, q, 100, pii=pii, urgent=True)


def _section(name: str) -> Callable[[Request, auth.Reader], HTMLResponse]:
    def page(request: Request, who: Reader) -> HTMLResponse:
        return _page(request, who, name, "view.html.j2", SECTIONS[name])

    page.__name__ = f"{name}_page"
    page.__doc__ = f"The report's {SECTIONS[name]} section."
    return page


for _name in SECTIONS:
    router.add_api_route(f"/{_name}", _section(_name), methods=["GET"], response_class=HTMLResponse)


@router.get("/static/plotly.min.js")
def plotly_js() -> FileResponse:
    """Plotly's bundle from the installed package: the dashboard needs no CDN and works offline."""
    import plotly

    path = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    return FileResponse(path, media_type="text/javascript", headers={"Cache-Control": "public, max-age=86400"})


@router.get("/static/{name}")
def static(name: str) -> FileResponse:
    if name not in STATIC_FILES:
        raise HTTPException(404, "No such file.")
    path, media_type = STATIC_FILES[name]
    return FileResponse(path, media_type=media_type, headers={"Cache-Control": "public, max-age=3600"})
