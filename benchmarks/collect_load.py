"""Benchmark: HTTP event collection under sustained load, then again with a SIGKILL mid-run.

A real `cxlens serve` on a loopback port and a fresh workspace; client connections (keep-alive,
HTTP/1.1 written by hand so the client costs little CPU on a machine it shares with the server)
send batches of 50 events at a target rate for a fixed time. A batch that gets no answer (the
server was killed, the connection dropped) or a 503 is sent again with the same event_ids until
it is acknowledged. Afterwards the server is stopped gracefully (it loads its spool) and every
event_id in the workspace is counted against what the clients got acknowledged: lost = an
acknowledged id not stored, duplicated = an id stored more than once.

    .venv/bin/python benchmarks/collect_load.py                    # 60 s plain + 60 s with a kill
    .venv/bin/python benchmarks/collect_load.py --seconds 15 --no-kill
    .venv/bin/python benchmarks/collect_load.py --rate 0           # as fast as it answers

Targets (issue 7): >= 5,000 events/s sustained for 60 s in batches of 50, p99 <= 250 ms, 0 lost,
0 duplicated, also with the kill. The alternatives timed beside it (in-process, no HTTP): the
same spool with one fsync per event, and a plain DuckDB table with one transaction per request.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from harness import machine, peak_rss_mb  # noqa: E402

EVENT_TYPES = ("page_view", "page_view", "page_view", "product_view", "add_to_cart", "search", "purchase")


def batch_events(run: str, k: int, size: int) -> list[dict]:
    """Batch k of a run: realistic web events; 1 in 5 carries a customer_id (identity edges)."""
    out = []
    for i in range(size):
        n = k * size + i
        visitor = (n * 7919) % 20_000
        e = {"event_id": f"{run}-{k}-{i}", "occurred_at": f"2026-11-{1 + n % 20:02d}T{n % 24:02d}:{n % 60:02d}:00Z",
             "event_type": EVENT_TYPES[n % 7], "anonymous_id": f"anon-{visitor}", "session_id": f"s-{n // 12}",
             "channel": "web", "page_url": f"/p/{n % 5000}", "utm_source": ("google", "newsletter", "facebook")[n % 3]}
        if n % 5 == 0:
            e["customer_id"] = f"C{visitor}"
        if n % 7 == 6:
            e["value"] = round((n % 9000) / 100, 2)
        out.append(e)
    return out


@dataclass
class Stats:
    acked: set[int] = field(default_factory=set)
    latencies: list[float] = field(default_factory=list)
    retries: int = 0
    refused: int = 0          # 503 answers (back-pressure)
    answered_duplicates: int = 0
    errors: list[str] = field(default_factory=list)


class Connection:
    """One keep-alive HTTP/1.1 connection that posts JSON and reads the answer."""

    def __init__(self, port: int, key: str):
        self.port, self.key = port, key
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, body: bytes) -> tuple[int, dict[str, str], bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        assert self.reader is not None
        head = (f"POST /v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {self.key}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode()
        self.writer.write(head + body)
        await self.writer.drain()
        status = int((await self.reader.readuntil(b"\r\n")).split()[1])
        headers: dict[str, str] = {}
        while (line := await self.reader.readuntil(b"\r\n")) != b"\r\n":
            name, _, value = line.decode().partition(":")
            headers[name.strip().lower()] = value.strip()
        payload = await self.reader.readexactly(int(headers.get("content-length", "0")))
        if headers.get("connection", "").lower() == "close":
            self.close()
        return status, headers, payload

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


async def client(conn: Connection, run: str, size: int, rate: float, t0: float, until: float,
                 counter: list[int], stats: Stats, bodies: list[bytes]) -> None:
    """Take the next batch number, wait for its slot in the schedule, send it until acknowledged."""
    loop = asyncio.get_running_loop()
    while True:
        k = counter[0]
        counter[0] += 1
        if rate:
            due = t0 + k * size / rate
            if due >= until:
                return
            if due > loop.time():
                await asyncio.sleep(due - loop.time())
        elif loop.time() >= until:
            return
        body = bodies[k] if k < len(bodies) else json.dumps({"events": batch_events(run, k, size)}, separators=(",", ":")).encode()
        attempt = 0
        while True:
            if attempt:
                stats.retries += 1
            attempt += 1
            started = loop.time()
            try:
                status, headers, payload = await asyncio.wait_for(conn.post(body), 30)
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, asyncio.TimeoutError, ValueError):
                conn.close()  # no answer: the batch may or may not be spooled; send it again, same ids
                await asyncio.sleep(0.05)
                continue
            if status == 503:
                stats.refused += 1
                await asyncio.sleep(float(headers.get("retry-after", "1")))
                continue
            if status != 200:
                stats.errors.append(f"{status} {payload[:200]!r}")
                return
            answer = json.loads(payload)
            if answer["accepted"] + answer["duplicates"] != size:
                stats.errors.append(f"batch {k}: {answer}")
            stats.answered_duplicates += answer["duplicates"]
            stats.latencies.append(loop.time() - started)
            stats.acked.add(k)
            break


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _children(pid: int) -> list[int]:
    """Live child processes of `pid` (the server's loader process)."""
    out: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                out += [int(c) for c in f.read().split()]
    except OSError:
        pass
    return out


class Server:
    """`cxlens serve` in a child process (with its loader process); the highest peak RSS of its incarnations."""

    def __init__(self, workspace: Path, port: int, extra: list[str]):
        self.workspace, self.port, self.extra = workspace, port, extra
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = workspace.with_name("serve.log")
        self.peak_mb = 0.0
        self.cpu: dict[int, float] = {}  # CPU seconds (user + system, all threads) per incarnation

    def start(self) -> None:
        exe = Path(sys.executable).parent / "cxlens"
        with self.log.open("ab") as fh:
            self.proc = subprocess.Popen([str(exe), "--workspace", str(self.workspace), "serve", "--port", str(self.port),
                                          *self.extra], stdout=fh, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                sys.exit(f"cxlens serve exited:\n{self.log.read_text()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    if s.recv(64).startswith(b"HTTP/1.1 200"):
                        return
            except OSError:
                pass
            time.sleep(0.05)
        sys.exit("cxlens serve did not answer in 60 s")

    def sample_rss(self) -> None:
        """Peak RSS and CPU of the server and its loader process (summed: both are the service)."""
        if self.proc and self.proc.poll() is None:
            peak = 0.0
            for pid in [self.proc.pid, *_children(self.proc.pid)]:
                try:
                    with open(f"/proc/{pid}/status") as f:
                        hwm = next(line for line in f if line.startswith("VmHWM"))
                    with open(f"/proc/{pid}/stat") as f:
                        fields = f.read().rsplit(")", 1)[1].split()
                except (OSError, StopIteration):
                    continue
                peak += int(hwm.split()[1]) / 1024
                self.cpu[pid] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
            self.peak_mb = max(self.peak_mb, peak)

    def kill(self) -> None:
        assert self.proc is not None
        self.sample_rss()
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        assert self.proc is not None
        self.sample_rss()
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(300)


async def drive(server: Server, key: str, run: str, args: argparse.Namespace, kill: bool) -> tuple[Stats, float]:
    loop = asyncio.get_running_loop()
    stats, counter = Stats(), [0]
    # A paced run's bodies are built before the clock starts: the client shares the cores it measures.
    bodies = [json.dumps({"events": batch_events(run, k, args.batch)}, separators=(",", ":")).encode()
              for k in range(int(args.seconds * args.rate / args.batch) + 1)]
    t0 = loop.time()
    until = t0 + args.seconds
    tasks = [asyncio.create_task(client(Connection(server.port, key), run, args.batch, args.rate, t0, until, counter, stats, bodies))
             for _ in range(args.connections)]
    killed = not kill
    while not all(t.done() for t in tasks):
        await asyncio.sleep(0.5)
        server.sample_rss()
        if not killed and loop.time() - t0 >= args.seconds / 2:
            killed = True
            await loop.run_in_executor(None, server.kill)
            await loop.run_in_executor(None, server.start)
    for t in tasks:
        t.result()
    return stats, loop.time() - t0


def stored_counts(workspace: Path, run: str) -> dict[str, int]:
    import duckdb

    con = duckdb.connect(str(workspace), read_only=True)
    try:
        return dict(con.execute("SELECT event_id, count(*) FROM events WHERE event_id LIKE ? GROUP BY event_id",
                                [run + "-%"]).fetchall())
    finally:
        con.close()


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] if ordered else float("nan")


def one_run(tmp: Path, args: argparse.Namespace, kill: bool) -> dict:
    from cxlens import Workspace
    from cxlens.service.keys import create_key

    d = tmp / ("kill" if kill else "plain")
    d.mkdir()
    ws = d / "ws.duckdb"
    with Workspace.open(ws) as w:
        key, _ = create_key(w, "write", "bench")
    server = Server(ws, free_port(), args.serve)
    server.start()
    run = "k" if kill else "p"
    load_before = os.getloadavg()
    stats, elapsed = asyncio.run(drive(server, key, run, args, kill))
    load_after = os.getloadavg()
    server.sample_rss()
    cpu_during = sum(server.cpu.values())
    t = time.perf_counter()
    server.stop()  # graceful: loads what is left in the spool
    final_load = time.perf_counter() - t
    counts = stored_counts(ws, run)
    loads = [(int(n), float(t)) for n, t in re.findall(r"loaded (\d+) events .* in ([\d.]+) s", server.log.read_text())]
    acked_ids = {f"{run}-{k}-{i}" for k in stats.acked for i in range(args.batch)}
    lost = len(acked_ids - counts.keys())
    duplicated = sum(1 for c in counts.values() if c > 1)
    extra = len(counts.keys() - acked_ids)  # sent, stored, answer lost: allowed (at-least-once sending)
    events = len(acked_ids)
    return {"kill": kill, "seconds": elapsed, "events": events, "rate": events / elapsed,
            "p50_ms": 1000 * percentile(stats.latencies, 50), "p99_ms": 1000 * percentile(stats.latencies, 99),
            "max_ms": 1000 * max(stats.latencies, default=float("nan")), "lost": lost, "duplicated": duplicated,
            "stored_unacked": extra, "retries": stats.retries, "refused_503": stats.refused,
            "answered_duplicates": stats.answered_duplicates, "errors": stats.errors[:3],
            "final_load_s": final_load, "server_cpu_s": cpu_during, "server_peak_rss_mb": server.peak_mb,
            "load_avg": f"{load_before[0]:.2f} -> {load_after[0]:.2f}", "loads": len(loads),
            "load_seconds_mean": sum(t for _, t in loads) / max(1, len(loads)),
            "load_events_mean": sum(n for n, _ in loads) / max(1, len(loads))}


def alternatives(tmp: Path, batch: int, seconds: float) -> dict[str, float]:
    """Events/s of three ways to make a request's events durable, in-process (no HTTP)."""
    import duckdb

    from cxlens.service.events import check_events
    from cxlens.service.spool import Spool

    def timed(append) -> float:
        n, k, started = 0, 0, time.perf_counter()
        while time.perf_counter() - started < seconds:
            n += append(k)
            k += 1
        return n / (time.perf_counter() - started)

    batches = [check_events(batch_events("a", k, batch))[0] for k in range(200)]

    def renamed(k: int, prefix: str) -> list[dict]:
        return [{**e, "event_id": f"{prefix}{k}-{e['event_id']}"} for e in batches[k % 200]]

    spool = Spool(tmp / "alt.spool")
    ours = timed(lambda k: spool.append(renamed(k, "b"), "http").accepted)
    per_event = timed(lambda k: sum(spool.append([e], "http").accepted for e in renamed(k, "e")))
    spool.close()
    con = duckdb.connect(str(tmp / "alt.duckdb"))
    cols = list(batches[0][0])
    con.execute(f"CREATE TABLE events ({', '.join(c + ' VARCHAR' for c in cols)}, PRIMARY KEY (event_id))")
    insert = f"INSERT OR IGNORE INTO events VALUES ({', '.join('?' for _ in cols)})"

    def duck(k: int) -> int:
        rows = [[None if e[c] is None else str(e[c]) for c in cols] for e in renamed(k, "d")]
        con.execute("BEGIN")
        con.executemany(insert, rows)
        con.execute("COMMIT")
        return len(rows)

    duckdb_rate = timed(duck)
    con.close()
    return {"spool_batch": ours, "spool_per_event": per_event, "duckdb_per_request": duckdb_rate}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--rate", type=float, default=5000, help="Target events/s (0: as fast as the server answers).")
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--no-kill", action="store_true", help="Skip the run with a SIGKILL mid-load.")
    parser.add_argument("--only-kill", action="store_true", help="Only the run with a SIGKILL mid-load.")
    parser.add_argument("--no-alternatives", action="store_true")
    parser.add_argument("--serve", type=shlex.split, default=[], help="Extra `cxlens serve` options, in one string.")
    parser.add_argument("--dir", type=Path, default=None, help="Scratch folder (default: a temp dir).")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    print(f"target: {args.rate:,.0f} events/s for {args.seconds:.0f} s, batches of {args.batch}, "
          f"{args.connections} keep-alive connections")
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        modes = [True] if args.only_kill else [False] if args.no_kill else [False, True]
        for kill in modes:
            r = one_run(Path(tmp), args, kill)
            label = "with SIGKILL + restart mid-load" if kill else "plain"
            print(f"{label:32}: {r['events']:,} events acknowledged in {r['seconds']:.1f} s = {r['rate']:,.0f} events/s; "
                  f"latency p50 {r['p50_ms']:.0f} ms, p99 {r['p99_ms']:.0f} ms, max {r['max_ms']:.0f} ms")
            print(f"{'':32}  lost {r['lost']}, duplicated {r['duplicated']} (stored but unacknowledged {r['stored_unacked']}); "
                  f"retries {r['retries']}, 503s {r['refused_503']}, retries answered as duplicates {r['answered_duplicates']}; "
                  f"final load {r['final_load_s']:.1f} s; server peak RSS {r['server_peak_rss_mb']:.0f} MiB; "
                  f"load average {r['load_avg']}")
            print(f"{'':32}  server CPU {r['server_cpu_s']:.1f} s during the run ({1e6 * r['server_cpu_s'] / max(1, r['events']):.0f} µs per event, loads included)")
            print(f"{'':32}  loader: {r['loads']} loads of {r['load_events_mean']:,.0f} events in {r['load_seconds_mean']:.2f} s on average")
            if r["errors"]:
                print(f"{'':32}  errors: {r['errors']}")
            print(json.dumps(r))
        if not args.no_alternatives:
            alt = alternatives(Path(tmp), args.batch, 3.0)
            print(f"durable append, in-process: spool, one transaction per {args.batch}-event request {alt['spool_batch']:,.0f} events/s; "
                  f"one fsync per event {alt['spool_per_event']:,.0f} events/s (ratio {alt['spool_batch'] / alt['spool_per_event']:.1f}); "
                  f"DuckDB table, one transaction per request {alt['duckdb_per_request']:,.0f} events/s "
                  f"(ratio {alt['spool_batch'] / alt['duckdb_per_request']:.1f})")
    print(f"benchmark process peak RSS {peak_rss_mb():.0f} MiB; {machine()}")


if __name__ == "__main__":
    main()
