"""CLI commands for loading data: `ingest`, `quarantine`, `sources`."""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from cxlens.cli.context import open_workspace
from cxlens.cli.output import Format, console, dict_rows, err_console, print_error, print_json, print_rows
from cxlens.errors import CxlensError, IngestError
from cxlens.ingest import ingest_file, load_mapping, refresh_identity
from cxlens.workspace.schema import LOADABLE_TABLES

BIG_INPUT = 5 << 20
"""Show a progress bar when the files add up to more than this many bytes (or always on a TTY)."""


class _QueryProgress:
    """Polls DuckDB's progress of the running statement so a big file shows a moving bar."""

    def __init__(self, progress: Progress, task: int, con: object):
        self.progress, self.task, self.con = progress, task, con
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.25):
            try:
                pct = self.con.query_progress()  # type: ignore[attr-defined]
            except Exception:
                return
            if pct is not None and pct >= 0:
                self.progress.update(self.task, completed=pct)

    def __enter__(self) -> "_QueryProgress":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=1)


class _InterruptGuard:
    """Remembers a Ctrl-C so it cannot be lost: the engine may swallow the KeyboardInterrupt of a
    statement that was about to finish anyway, and the file would then be committed. Each stage of
    the load (the last one just before COMMIT) checks the flag and abandons the file."""

    def __init__(self) -> None:
        self.interrupted = False
        self._previous: Any = None

    def _on_sigint(self, signum: int, frame: Any) -> None:
        self.interrupted = True
        raise KeyboardInterrupt

    def check(self) -> None:
        if self.interrupted:
            raise KeyboardInterrupt

    def __enter__(self) -> "_InterruptGuard":
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._on_sigint)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


def _interrupted_after(results: list[Any], *, unresolved: bool) -> None:
    """Ctrl-C once some files are committed: say which are in the workspace, not 'nothing changed'."""
    names = ", ".join(Path(r.file).name for r in results)
    rest = " Identities were not resolved for them: run `cxlens identity resolve`." if unresolved else ""
    print_error(f"Interrupted after {names} {'was' if len(results) == 1 else 'were'} loaded; "
                f"the unfinished step changed nothing.{rest}")
    sys.exit(130)


def ingest_command(
    ctx: typer.Context,
    table: Annotated[str, typer.Argument(help=f"Canonical table: {', '.join(LOADABLE_TABLES)}.", show_default=False)],
    files: Annotated[list[Path], typer.Argument(help="CSV, Parquet, JSON or NDJSON files, gzip allowed.", show_default=False)],
    mapping: Annotated[Optional[Path], typer.Option("--mapping", "-m", help="Mapping YAML (DESIGN.md format).")] = None,
    source: Annotated[Optional[str], typer.Option("--source", "-s", help="Source namespace (overrides the mapping's).")] = None,
    file_format: Annotated[Optional[str], typer.Option("--file-format", help="csv, parquet, json or ndjson (default: from the name/content).")] = None,
    delimiter: Annotated[Optional[str], typer.Option("--delimiter", help="CSV delimiter (default: sniffed).")] = None,
    encoding: Annotated[Optional[str], typer.Option("--encoding", help="CSV encoding: utf-8, utf-16 or latin-1 (default: sniffed).")] = None,
    resolve: Annotated[bool, typer.Option("--resolve/--no-resolve", help="Resolve identities and rebuild profiles afterwards.")] = True,
    fmt: Annotated[Format, typer.Option("--format", "-f", help="Output: table or json (one object per file).")] = Format.table,
) -> None:
    """Load files into a canonical table: validate, quarantine bad rows, skip rows already loaded.

    Each file is loaded in one transaction: an interrupted ingest leaves every table as it was.

    Examples:

      cxlens ingest orders orders.csv

      cxlens ingest order_lines pos.csv.gz --mapping pos.yml

      cxlens ingest events clicks.ndjson --source web --format json
    """
    if table not in LOADABLE_TABLES:
        raise IngestError(f"Unknown table `{table}` (valid: {', '.join(LOADABLE_TABLES)}).")
    m = load_mapping(mapping) if mapping else None
    if m is not None and m.table != table:
        raise IngestError(f"The mapping {mapping} is for table `{m.table}`, not `{table}`.")
    options = {k: v for k, v in {"delimiter": delimiter, "encoding": encoding}.items() if v}
    ws = open_workspace(ctx)
    total = sum(f.stat().st_size for f in files if f.is_file())
    show = fmt is Format.table and (total > BIG_INPUT or sys.stderr.isatty())
    if show:
        ws.backend.raw.execute("SET enable_progress_bar = true")  # lets _QueryProgress read query_progress()
    failures: list[str] = []
    results = []
    identities_done = False
    try:
        with _InterruptGuard() as guard, Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                      TimeElapsedColumn(), console=err_console, transient=True, disable=not show) as progress:
            for f in files:
                task = progress.add_task(f"{f.name}: starting", total=100)

                def stage(name: str, _f: Path = f, _t: int = task) -> None:
                    guard.check()
                    progress.update(_t, description=f"{_f.name}: {name}", completed=0)

                try:
                    with _QueryProgress(progress, task, ws.backend.raw) if show else contextlib.nullcontext():
                        r = ingest_file(ws, table, f, mapping=m, source=source, format=file_format, options=options, on_stage=stage)
                    results.append(r)
                    if fmt is Format.json:
                        print_json(r.to_dict())
                except CxlensError as exc:
                    failures.append(str(exc))
                    print_error(str(exc))
                progress.remove_task(task)
            if resolve and results:
                progress.add_task("resolving identities and profiles", total=None)
                refresh_identity(ws)
                identities_done = True
        ws.close()
    except KeyboardInterrupt:
        if not results:
            raise
        _interrupted_after(results, unresolved=resolve and not identities_done)
    if fmt is Format.table and results:
        print_rows([
            {"file": Path(r.file).name, "table": r.table, "source": r.source, "read": r.rows_read,
             "loaded": r.rows_loaded, "quarantined": r.rows_quarantined, "duplicate": r.rows_duplicate,
             "filtered": r.rows_filtered, "seconds": r.seconds}
            for r in results
        ], title="Ingested")
        bad = sum(r.rows_quarantined for r in results)
        if bad:
            console.print(f"{bad:,} rows were quarantined; see them with [bold]cxlens quarantine[/].")
    if failures:
        raise typer.Exit(1)


def quarantine_command(
    ctx: typer.Context,
    table: Annotated[Optional[str], typer.Option("--table", "-t", help="Only rows meant for this table.")] = None,
    reason: Annotated[Optional[str], typer.Option("--reason", help="Only this reason code, e.g. bad_timestamp.")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", help="At most this many rows (0 = all).")] = 50,
    summary: Annotated[bool, typer.Option("--summary", help="Counts by table and reason instead of rows.")] = False,
    fmt: Annotated[Format, typer.Option("--format", "-f", help="Output: table or json.")] = Format.table,
) -> None:
    """List rows that failed validation, with file, line, column, raw value and reason.

    Examples:

      cxlens quarantine --table orders

      cxlens quarantine --summary --format json
    """
    if table is not None and table not in LOADABLE_TABLES:
        raise IngestError(f"Unknown table `{table}` (valid: {', '.join(LOADABLE_TABLES)}).")
    ws = open_workspace(ctx)
    where, params = ["true"], []
    if table:
        where.append("table_name = ?")
        params.append(table)
    if reason:
        where.append("reason = ?")
        params.append(reason)
    cond = " AND ".join(where)
    if summary:
        rows = ws.sql(
            f"SELECT table_name AS table, reason, count(*) AS rows FROM quarantine WHERE {cond} "
            "GROUP BY ALL ORDER BY table_name, rows DESC", params
        ).fetchall()
        out = [{"table": r[0], "reason": r[1], "rows": int(r[2])} for r in rows]
    else:
        lim = f"LIMIT {int(limit)}" if limit > 0 else ""
        out = dict_rows(ws.sql(
            f"SELECT table_name AS table, source, file, line, column_name AS column, raw_value, reason, message "
            f"FROM quarantine WHERE {cond} ORDER BY ingest_id, line {lim}", params
        ))
    ws.close()
    if fmt is Format.json:
        print_json(out)
    elif not out:
        console.print("No quarantined rows.")
    else:
        if not summary:
            for r in out:
                r["file"] = Path(r["file"]).name
        print_rows(out, title="Quarantine", columns=None if summary else ["table", "file", "line", "column", "raw_value", "reason"])


def sources_command(
    ctx: typer.Context,
    fmt: Annotated[Format, typer.Option("--format", "-f", help="Output: table or json.")] = Format.table,
) -> None:
    """List every ingested file with time, table, source and row counts.

    Example:

      cxlens sources --format json
    """
    ws = open_workspace(ctx)
    rows = dict_rows(ws.sql(
        "SELECT ingest_id, ingested_at, table_name AS table, source, file, format, rows_read, rows_loaded, "
        "rows_quarantined, rows_duplicate, rows_filtered, seconds FROM sources ORDER BY ingest_id"
    ))
    ws.close()
    if fmt is Format.json:
        print_json(rows)
    elif not rows:
        console.print("Nothing ingested yet. Start with [bold]cxlens ingest TABLE FILE[/].")
    else:
        for r in rows:
            r["file"] = Path(r["file"]).name
            r["ingested_at"] = r["ingested_at"].strftime("%Y-%m-%d %H:%M")
        print_rows(rows, title="Sources", columns=["ingest_id", "ingested_at", "table", "source", "file", "rows_read",
                                                   "rows_loaded", "rows_quarantined", "rows_duplicate"])


def register(app: typer.Typer) -> None:
    """Attach this module's commands to the main app."""
    app.command("ingest")(ingest_command)
    app.command("quarantine")(quarantine_command)
    app.command("sources")(sources_command)

