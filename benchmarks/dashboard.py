"""Benchmark: how long a reader waits for each dashboard page, over real HTTP, on the demo workspace.

A real `cxlens serve` on a loopback port over a copy of the workspace (the original is never
written); a read key from the real key store, a sign-in through the form, then every page timed
from request to last byte in these situations:

- cold: the first start on a workspace the dashboard never computed (no saved views);
- warm: once the background refresh has caught up (every page, and each filter's first view);
- after a load: a batch of events is posted and loaded, then every page at once (the kept view
  within the staleness window), and how long the refresh took to make every view current again;
- customer lookups: the customers page for a customer (the 360° profile and timeline, computed
  each time) and the read API's profile of the same customer (`GET /v1/profiles/{id}`);
- under traffic: events collected at 1,000/s (loads every few seconds) while every page is read
  in turn for 2 minutes: the slowest page and the oldest data shown; each turn also a new date
  range's overview, a customer's page and a profile from the read API (these are computed when
  asked for, beside the load in progress);
- restart: the server is stopped and started again, every page at once (the saved views).

Filters: by week and by quarter, each declared segment, an order channel (kept current like the
segments), a channel no order has and a date range (computed when first asked for); the first
view of each, then again. The bar (issue 7) is <= 1 s for every page.

    .venv/bin/python benchmarks/dashboard.py --workspace demo/cxlens.duckdb
    .venv/bin/python benchmarks/dashboard.py            # builds the demo workspace first (2-3 min)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from harness import machine, workspace_copy  # noqa: E402

PAGES = ("/dashboard/", "/dashboard/surveys", "/dashboard/experiments", "/dashboard/value", "/dashboard/journeys",
         "/dashboard/attribution")
BAR_SECONDS = 1.0
CSRF = re.compile(r'name="csrf" value="([^"]+)"')
CLI = Path(sys.executable).parent / "cxlens"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cli(workspace: Path, *args: str) -> str:
    out = subprocess.run([str(CLI), "--workspace", str(workspace), *args], capture_output=True, text=True, check=False)
    if out.returncode:
        sys.exit(f"cxlens {' '.join(args)} failed:\n{out.stderr}")
    return out.stdout


class Server:
    """`cxlens serve` in a subprocess, its output in a log file next to the workspace."""

    def __init__(self, workspace: Path):
        self.workspace, self.port = workspace, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> float:
        started = time.perf_counter()
        log = self.workspace.with_name("serve.log").open("ab")
        self.proc = subprocess.Popen([str(CLI), "--workspace", str(self.workspace), "serve", "--port", str(self.port),
                                      "--log-level", "warning"], stdout=log, stderr=subprocess.STDOUT)
        while True:
            if self.proc.poll() is not None:
                sys.exit(f"cxlens serve exited: see {self.workspace.with_name('serve.log')}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return time.perf_counter() - started
            except httpx.HTTPError:
                time.sleep(0.05)

    def health(self) -> dict:
        return httpx.get(self.url + "/healthz", timeout=30).json()

    def wait(self, what: str, done: callable, timeout: float = 900) -> float:  # type: ignore[valid-type]
        started = time.perf_counter()
        while time.perf_counter() - started < timeout:
            if done(self.health()):
                return time.perf_counter() - started
            time.sleep(0.2)
        sys.exit(f"{what}: not done in {timeout:.0f} s: {self.health()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(180)


def sign_in(url: str, key: str) -> httpx.Client:
    client = httpx.Client(base_url=url, timeout=600)
    token = CSRF.search(client.get("/dashboard/login").text).group(1)
    r = client.post("/dashboard/login", data={"key": key, "csrf": token})
    if r.status_code != 303:
        sys.exit(f"sign-in failed: {r.status_code} {r.text[:200]}")
    return client


def timed(client: httpx.Client, path: str, params: dict[str, str] | None = None) -> tuple[float, bool]:
    """(seconds to the last byte, whether the page said its view is being refreshed)."""
    started = time.perf_counter()
    r = client.get(path, params=params)
    seconds = time.perf_counter() - started
    if r.status_code != 200:
        sys.exit(f"GET {path} {params}: {r.status_code} {r.text[:300]}")
    return seconds, 'data-stale="1"' in r.text


def every_page(client: httpx.Client, label: str, rows: list[dict], params: dict[str, str] | None = None,
               pages: tuple[str, ...] = PAGES) -> None:
    for path in pages:
        seconds, stale = timed(client, path, params)
        rows.append({"when": label, "page": path, "seconds": round(seconds, 3), "stale": stale})
        print(f"  {label:<28} {path:<24} {seconds:6.2f} s{'  (kept view, refresh running)' if stale else ''}",
              flush=True)


def post_events(url: str, key: str, n: int) -> None:
    """A batch of web events for known customers, dated on the workspace's last day (they change the numbers)."""
    events = [{"event_id": f"bench-dash-{time.time_ns()}-{i}", "occurred_at": "2025-12-30T12:00:00Z",
               "event_type": ("page_view", "product_view", "add_to_cart")[i % 3], "anonymous_id": f"bench-{i % 200}",
               "channel": "web", "page_url": f"/p/{i % 50}"} for i in range(n)]
    for start in range(0, n, 1000):
        r = httpx.post(url + "/v1/events", json={"events": events[start:start + 1000]},
                       headers={"Authorization": f"Bearer {key}"}, timeout=60)
        if r.status_code != 200:
            sys.exit(f"POST /v1/events: {r.status_code} {r.text[:200]}")


def lookups(url: str, client: httpx.Client, read: str, people: list[str], k: int, label: str, rows: list[dict]) -> None:
    """Customer k's page and the read API's profile of the same customer, timed."""
    who = people[k % len(people)]
    for page, get in (("/dashboard/customers", lambda: client.get("/dashboard/customers", params={"q": who})),
                      ("/v1/profiles/{id}", lambda: httpx.get(f"{url}/v1/profiles/{who}", timeout=600,
                                                              headers={"Authorization": f"Bearer {read}"}))):
        started = time.perf_counter()
        r = get()
        took = time.perf_counter() - started
        if r.status_code != 200 or (page.startswith("/dashboard") and "Timeline" not in r.text):
            sys.exit(f"GET {page} for {who}: {r.status_code} {r.text[:300]}")
        rows.append({"when": label, "page": page, "seconds": round(took, 3), "stale": None})
        if "traffic" not in label:
            print(f"  {label:<28} {page:<24} {took:6.2f} s", flush=True)


def customer_ids(ws: Path, n: int = 50) -> list[str]:
    """Customer ids of the workspace (read-only, before the server starts)."""
    import duckdb

    con = duckdb.connect(str(ws), read_only=True)
    try:
        return [r[0] for r in con.sql(f"SELECT customer_id FROM customers WHERE profile_id IS NOT NULL "
                                      f"ORDER BY hash(customer_id) LIMIT {n}").fetchall()]
    finally:
        con.close()


def under_traffic(server: Server, client: httpx.Client, key: str, seconds: float, rate: int, rows: list[dict],
                  read: str, people: list[str]) -> None:
    """Events posted at `rate` per second (so the server loads every few seconds) while every page
    is read in turn: the slowest page, and how old the shown data was (now minus "as of")."""
    import threading

    stop = threading.Event()

    def post() -> None:
        while not stop.is_set():
            started = time.perf_counter()
            post_events(server.url, key, rate // 2)
            stop.wait(max(0.0, 0.5 - (time.perf_counter() - started)))

    poster = threading.Thread(target=post, daemon=True)
    poster.start()
    worst, oldest, waits, reads = 0.0, 0.0, 0, 0
    ranged: list[float] = []
    end = time.perf_counter() + seconds
    try:
        while time.perf_counter() < end:
            # A date range nobody asked for before, each turn (its first view, on data that keeps changing).
            since = f"2025-0{1 + len(ranged) % 6}-{1 + len(ranged) % 28:02d}"
            started = time.perf_counter()
            client.get("/dashboard/", params={"since": since, "until": "2025-09-30"})
            ranged.append(time.perf_counter() - started)
            rows.append({"when": "date range under traffic", "page": "/dashboard/", "seconds": round(ranged[-1], 3),
                         "stale": None})
            for path in PAGES:
                started = time.perf_counter()
                r = client.get(path)
                took = time.perf_counter() - started
                as_of = re.search(r'data-as-of="([^"]+)"', r.text)
                if as_of:
                    from datetime import datetime
                    oldest = max(oldest, time.time() - datetime.fromisoformat(as_of.group(1)).timestamp())
                worst, reads, waits = max(worst, took), reads + 1, waits + (took > BAR_SECONDS)
                rows.append({"when": "under traffic", "page": path, "seconds": round(took, 3), "stale": None})
            lookups(server.url, client, read, people, len(ranged), "lookup under traffic", rows)
            time.sleep(2)
    finally:
        stop.set()
        poster.join(30)
    print(f"  under traffic ({rate:,} events/s for {seconds:.0f} s): {reads} page reads, slowest {worst:.2f} s, "
          f"{waits} over {BAR_SECONDS:g} s; oldest data shown {oldest:.0f} s old", flush=True)
    if ranged:
        print(f"  a new date range's overview each turn meanwhile: {len(ranged)} first views, median "
              f"{sorted(ranged)[len(ranged) // 2]:.2f} s, slowest {max(ranged):.2f} s", flush=True)
    for page in ("/dashboard/customers", "/v1/profiles/{id}"):
        took = sorted(r["seconds"] for r in rows if r["when"] == "lookup under traffic" and r["page"] == page)
        if took:
            print(f"  {page} each turn meanwhile: median {took[len(took) // 2]:.2f} s, slowest {took[-1]:.2f} s, "
                  f"{sum(t > BAR_SECONDS for t in took)} of {len(took)} over {BAR_SECONDS:g} s", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workspace", type=Path, help="The demo workspace (copied; default: build one with cxlens demo).")
    ap.add_argument("--events", type=int, default=2000, help="Events posted for the after-a-load measurement.")
    ap.add_argument("--traffic", type=float, default=120.0, help="Seconds of reading pages while events are collected (0: skip).")
    ap.add_argument("--rate", type=int, default=1000, help="Events per second collected meanwhile.")
    ap.add_argument("--channel", default="store", help="A channel filter timed (an order channel: kept current).")
    ap.add_argument("--other-channel", default="web", help="A channel filter timed that no order has (computed when asked).")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="cxlens-dash-bench-"))
    servers: list[Server] = []
    try:
        ws = workspace_copy(args.workspace, tmp)
        read = json.loads(cli(ws, "keys", "create", "--scope", "read", "--format", "json"))["key"]
        write = json.loads(cli(ws, "keys", "create", "--scope", "write", "--format", "json"))["key"]
        segments = re.findall(r"^\s+- id: (\S+)", ws.with_name(ws.stem + ".metrics.yml").read_text(), re.M) \
            if ws.with_name(ws.stem + ".metrics.yml").exists() else []
        filters = [{"grain": "week"}, {"grain": "quarter"}, *({"segment": s} for s in segments),
                   {"channel": args.channel}, {"channel": args.other_channel},
                   {"since": "2025-06-01", "until": "2025-09-30"}]
        rows: list[dict] = []
        people = customer_ids(ws)
        print(machine(), flush=True)

        server = Server(ws)
        servers.append(server)
        print(f"server up in {server.start():.1f} s; cold: the dashboard never computed this workspace", flush=True)
        client = sign_in(server.url, read)
        every_page(client, "cold (first start)", rows)
        caught_up = server.wait("refresh", lambda h: h["dashboard"]["due"] == 0)
        prepared = server.wait("prepare", lambda h: h["dashboard"]["due"] == 0 and h["dashboard"]["unprepared"] == 0)
        print(f"  background refresh caught up {caught_up:.1f} s later; date-range queries compiled "
              f"{prepared:.1f} s after that", flush=True)
        every_page(client, "warm", rows)
        for k in range(3):
            lookups(server.url, client, read, people, k, "customer lookup", rows)
        for params in filters:
            label = "filter " + "&".join(f"{k}={v}" for k, v in params.items())
            every_page(client, label + " (first)", rows, params, PAGES[:2])
            every_page(client, label + " (again)", rows, params, PAGES[:2])

        server.wait("refresh", lambda h: h["dashboard"]["due"] == 0)
        post_events(server.url, write, args.events)
        loaded = server.wait("load", lambda h: h["backlog"] == 0 and h["dashboard"]["due"] > 0)
        print(f"  {args.events:,} events posted and loaded in {loaded:.1f} s", flush=True)
        every_page(client, "after a load", rows)
        refreshed = server.wait("refresh", lambda h: h["dashboard"]["due"] == 0)
        print(f"  every kept view current again {refreshed:.1f} s after the first page was read", flush=True)
        every_page(client, "after the refresh", rows)
        if args.traffic:
            under_traffic(server, client, write, args.traffic, args.rate, rows, read, people)
        client.close()
        server.stop()

        server = Server(ws)
        servers.append(server)
        print(f"restarted in {server.start():.1f} s", flush=True)
        client = sign_in(server.url, read)
        every_page(client, "restart (saved views)", rows)
        client.close()
        server.stop()

        saved = json.loads(ws.with_name(ws.name + ".dashboard.json").read_text())["views"]
        print("\ncomputation time of each kept view (its last refresh, in the loader's process):")
        for v in saved:
            f = "&".join(f"{k}={val}" for k, val in v["filters"].items() if val and not (k == "grain" and val == "month"))
            print(f"  {v['page']:<12} {f:<40} {v['seconds']:6.2f} s")

        by_when: dict[str, float] = {}
        for r in rows:
            group = r["when"].split(" (")[0] if r["when"].startswith("filter") else r["when"]
            group = group if not r["when"].startswith("filter") else ("filter, first view" if "(first)" in r["when"]
                                                                      else "filter, again")
            by_when[group] = max(by_when.get(group, 0.0), r["seconds"])
        print(f"\nslowest page per situation (bar: <= {BAR_SECONDS:g} s); {machine()}")
        for when, worst in by_when.items():
            print(f"  {when:<28} {worst:6.2f} s  {'ok' if worst <= BAR_SECONDS else 'OVER'}")
        print(json.dumps({"machine": machine(), "max_seconds": by_when, "rows": rows}))
    finally:
        for server in servers:
            server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    os.environ.setdefault("NO_COLOR", "1")
    main()
