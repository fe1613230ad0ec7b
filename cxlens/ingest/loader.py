"""Loading files into the workspace: stage, validate, quarantine, deduplicate, commit — per file.

Each file is one DuckDB transaction, so a crash, SIGKILL or Ctrl-C mid-file leaves every table as
it was. All row work is SQL over the whole file; Python only sees counts.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import duckdb
import ibis

from cxlens.errors import IngestError, WorkspaceError
from cxlens.identity import keys as idkeys
from cxlens.ingest.mapping import Mapping, identity_mapping, load_mapping
from cxlens.ingest.plan import NO_ATTRIBUTES, Plan, build_plan
from cxlens.ingest.readers import FileInfo, detect, file_sha256_later, first_data_line, source_sql
from cxlens.ingest.validate import lit, q
from cxlens.workspace.backend import DuckDBBackend
from cxlens.workspace.internal import REASONS
from cxlens.workspace.schema import IDENTITY_COLUMNS, LOADABLE_TABLES, META_COLUMNS, TABLES, Table, target_table
from cxlens.workspace.workspace import Workspace

REJECTS, PARSED, COMBOS, PIDS = "_cx_rejects", "_cx_parsed", "_cx_combos", "_cx_pids"
Stage = Callable[[str], None]


@dataclass(frozen=True)
class IngestResult:
    """What one file did to the workspace (the `--format json` contract plus extensions)."""

    table: str
    source: str
    file: str
    rows_read: int
    rows_loaded: int
    rows_quarantined: int
    rows_duplicate: int
    rows_filtered: int = 0
    ingest_id: int = 0
    seconds: float = 0.0
    orders_loaded: int | None = None
    quarantine_reasons: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        if self.orders_loaded is None:
            d.pop("orders_loaded")
        return d


def ingest(ws: Workspace, table: str, files: Sequence[str | Path], *, mapping: str | Path | None = None,
           source: str | None = None, format: str | None = None, options: dict[str, Any] | None = None,
           resolve: bool = True, on_stage: Callable[[Path, str], None] | None = None) -> list[IngestResult]:
    """Ingest every file (each atomically, its rows' identities resolved in the same transaction),
    then resolve whatever is still pending and rebuild profiles once."""
    if table not in LOADABLE_TABLES:
        raise IngestError(f"Unknown table `{table}` (valid: {', '.join(LOADABLE_TABLES)}).")
    if not files:
        raise IngestError("Give at least one file to ingest.")
    m = load_mapping(mapping) if mapping else None
    if m is not None and m.table != table:
        raise IngestError(f"The mapping {mapping} is for table `{m.table}`, not `{table}`.")
    results = []
    for f in files:
        stage = (lambda s, _f=Path(f): on_stage(_f, s)) if on_stage else None
        results.append(ingest_file(ws, table, Path(f), mapping=m, source=source, format=format, options=options,
                                   on_stage=stage, resolve=resolve))
    if resolve:
        if on_stage:
            on_stage(Path(files[-1]), "resolving identities")
        refresh_identity(ws)
    return results


def refresh_identity(ws: Workspace) -> None:
    """Resolve identities for what was just loaded, rebuild the profiles table and bring the kept
    sessions up to date (semantic/kept.py: only visitors whose events changed are rebuilt)."""
    from cxlens.identity import resolve
    from cxlens.profiles import build_profiles
    from cxlens.semantic.kept import refresh_sessions

    resolve(ws)
    build_profiles(ws)
    refresh_sessions(ws)


def ingest_file(ws: Workspace, table: str, path: Path, *, mapping: Mapping | None = None, source: str | None = None,
                format: str | None = None, options: dict[str, Any] | None = None,
                on_stage: Stage | None = None, resolve: bool = False) -> IngestResult:
    """Load one file into `table` inside one transaction; return its counts.

    With `resolve`, the identities of a person table's new rows are resolved in the same
    transaction before they are inserted, so they go in with their profile_id (and the ingest is
    marked resolved); order lines and other tables are left for the next resolution.
    """
    if not isinstance(ws.backend, DuckDBBackend):
        raise WorkspaceError(f"Ingesting files needs a DuckDB workspace; this one runs on {ws.backend.name}.")
    started = time.perf_counter()
    path = Path(path).expanduser().resolve()
    opts = {**(mapping.options if mapping else {}), **(options or {})}
    info = detect(path, opts.get("format") or format)
    src = source or (mapping.source if mapping else None) or "default"
    spec = target_table(table)
    where = f"the mapping {mapping.path}" if mapping and mapping.path else f"{path.name}"
    con = ws.backend.raw
    step = on_stage or (lambda s: None)
    _drop_scratch(con)
    checksum_of_file = file_sha256_later(path)
    try:
        # Reading and parsing fill connection-local TEMP tables outside the transaction: they are
        # not part of the workspace file (a crash loses them with the process), and DuckDB inserts
        # from a temp table created inside the writing transaction take twice as long.
        step("reading")
        src_sql = source_sql(info, opts, REJECTS)
        try:
            file_columns = [(r[0], r[1]) for r in con.execute(f"DESCRIBE {src_sql}").fetchall()]
        except duckdb.InterruptException:
            raise
        except duckdb.Error as exc:
            raise IngestError(_read_error(path, info, exc)) from None
        m = mapping or _default_mapping(table, [c for c, _ in file_columns], path)
        plan = build_plan(src_sql, file_columns, m, spec, source=src, where=where)
        step("validating")
        decl = "".join(f", {v} AS {q('__decl_' + k)}" for k, v in plan.declared.items())
        # Only mapped columns are staged (unmapped ones load as NULL), and a key that is one of
        # them is not staged twice: every staged value is written and read once more.
        cols = "".join(f", {plan.values[c]} AS {q(c)}" for c in plan.staged)
        extra = "" if plan.key_column or table == "order_lines" else f", {plan.record_key} AS __key"
        if plan.attributes != NO_ATTRIBUTES:
            extra += f", {plan.attributes} AS __attributes"
        raw_case = "CASE __problem " + " ".join(f"WHEN {i} THEN {c.raw}" for i, c in enumerate(plan.checks)) + " END"
        try:
            # One pass over the file: parsed values, the first problem, and for bad rows only the
            # raw text. A table created from a scan keeps the file's order, so rowid gives lines.
            con.execute(
                f"CREATE TEMP TABLE {PARSED} AS SELECT {plan.problem} AS __problem{cols}{extra}{decl}, "
                f"CASE WHEN __problem >= 0 THEN {raw_case if plan.checks else 'NULL'} END AS __raw, "
                f"CASE WHEN __problem >= 0 THEN CAST(to_json(src) AS VARCHAR) END AS __record "
                f"FROM ({plan.base_sql}) src"
            )
        except duckdb.InterruptException:  # Ctrl-C: an interruption, not a file problem
            raise
        except duckdb.Error as exc:
            text = _first(exc)
            if any(w in text for w in ("Binder", "Conversion", "function")) and (m.filters or any(c.expr for c in m.columns.values())):
                raise IngestError(f"{where}: an expression or filter failed on {path.name}: {text}.") from None
            raise IngestError(_read_error(path, info, exc)) from None
        first_rowid = con.execute(f"SELECT coalesce(min(rowid), 0) FROM {PARSED}").fetchone()[0]
        total, problems, filtered, valid = con.execute(
            f"SELECT count(*), count(*) FILTER (__problem >= 0), count(*) FILTER (__problem = -1), "
            f"count(*) FILTER (__problem IS NULL) FROM {PARSED}"
        ).fetchone()
        checksum = checksum_of_file()
        with ws.transaction():
            ingest_id = int(con.execute("SELECT coalesce(max(ingest_id), 0) + 1 FROM sources").fetchone()[0])
            now = datetime.now(timezone.utc).replace(tzinfo=None)
            step("loading")
            if plan.declared:  # before the load: resolving its rows reads these links
                _link_declared(con, plan, src, ingest_id)
            resolved = resolve and table != "order_lines" and spec.person
            if table == "order_lines":
                loaded, orders_loaded = _load_order_lines(con, plan, src, ingest_id, now)
            else:
                loaded, orders_loaded = _load_rows(con, plan, src, ingest_id, now, ws=ws if resolved else None), None
            quarantined, reasons = _quarantine(con, plan, info, opts, table, src, ingest_id, now, path, first_rowid)
            rejected = quarantined - problems
            result = IngestResult(
                table=table, source=src, file=str(path), rows_read=int(total) + rejected, rows_loaded=loaded,
                rows_quarantined=quarantined, rows_duplicate=int(valid) - loaded, rows_filtered=int(filtered),
                ingest_id=ingest_id, seconds=round(time.perf_counter() - started, 3), orders_loaded=orders_loaded,
                quarantine_reasons=reasons,
            )
            con.execute(
                "INSERT INTO sources VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [ingest_id, str(path), table, src, info.label, checksum,
                 str(mapping.path) if mapping and mapping.path else None, now, result.rows_read, loaded,
                 quarantined, result.rows_duplicate, result.rows_filtered, result.seconds, resolved],
            )
            step("committing")  # the last moment a caller can still abandon the file (by raising)
    finally:
        _drop_scratch(con)
    return result


def _drop_scratch(con: duckdb.DuckDBPyConnection) -> None:
    for t in (PARSED, REJECTS, REJECTS + "_scan", "_cx_bad", "_cx_shift", COMBOS, PIDS):
        con.execute(f"DROP TABLE IF EXISTS temp.{t}")


def _default_mapping(table: str, file_columns: list[str], path: Path) -> Mapping:
    m = identity_mapping(table, file_columns)
    missing = [c for c in target_table(table).required if c not in m.columns]
    if missing:
        raise IngestError(
            f"{path.name} has no column `{missing[0]}`, which {table} requires "
            f"(the file's columns: {', '.join(file_columns)}); rename it or pass --mapping."
        )
    return m


def _new_rows(spec: Table, rows: str, key: str, source: str, *, existing: bool) -> tuple[str, list[Any]]:
    """`rows` without those whose key this source has loaded already, and the query's parameters."""
    if not existing:
        return rows, []
    return (f"SELECT p.* FROM ({rows}) p ANTI JOIN (SELECT record_key FROM {spec.name} WHERE source = ?) t "
            f"ON t.record_key = p.{key}"), [source]


def _insert_new(con: duckdb.DuckDBPyConnection, spec: Table, rows: str, key: str, source: str, ingest_id: int,
                now: datetime, *, present: Collection[str], attributes: str, existing: bool = True,
                profiles: Sequence[str] | None = None) -> int:
    """INSERT the rows of `rows` (a SELECT with the `present` columns of spec, `key` and
    `attributes`) whose key this source has not loaded yet; returns how many went in.

    With `profiles` (identity columns), each row takes the profile id PIDS gives its combination
    of those columns (compared null-safely); otherwise profile_id is left NULL.
    """
    meta = ", ".join(q(c) for c in [*spec.column_names, *(m.name for m in META_COLUMNS)])
    cols = ", ".join(f"r.{q(c)}" if c in present else "NULL" for c in spec.column_names)
    rows, extra = _new_rows(spec, rows, key, source, existing=existing)
    params: list[Any] = [source, ingest_id, now, *extra]
    pid, join = "NULL", ""
    if profiles is not None:
        pid = "m.__pid"
        same = " AND ".join(f"r.{q(c)} IS NOT DISTINCT FROM m.{q(c)}" for c in profiles)
        join = f" LEFT JOIN {PIDS} m ON {same}" if profiles else f" CROSS JOIN {PIDS} m"
    row = con.execute(
        f"INSERT INTO {spec.name} ({meta}) SELECT {cols}, {pid}, ?, r.{key}, ?, ?, "
        f"{'NULL' if attributes == 'NULL' else 'r.' + attributes} "
        f"FROM ({rows}) r{join}", params
    ).fetchone()
    return int(row[0])


def _staged_key(plan: Plan) -> str:
    """The record key of a staged row: its key column, or the staged __key."""
    return q(plan.key_column) if plan.key_column else "__key"


def _staged_attributes(plan: Plan) -> str:
    return "NULL" if plan.attributes == NO_ATTRIBUTES else "__attributes"


def _load_rows(con: duckdb.DuckDBPyConnection, plan: Plan, source: str, ingest_id: int, now: datetime,
               *, ws: Workspace | None = None) -> int:
    """Insert valid rows whose key is new for this source; the first of in-file repeats wins.

    The deduplicating window and anti-join only run when they can remove something: they cost a
    hash pass each and scramble row order, which makes the table's compression (and write) slower.
    With `ws`, the identities of exactly the rows going in are resolved first (see `_resolve_new`).
    """
    spec, key = plan.table, _staged_key(plan)
    # Distinct 64-bit hashes count faster than distinct strings; a collision can only make this
    # say "repeats" when there are none, which costs the dedupe pass, never a wrong result.
    repeats = con.execute(
        f"SELECT count(*) - count(DISTINCT hash({key})) FROM {PARSED} WHERE __problem IS NULL"
    ).fetchone()[0] > 0
    existing = con.execute(
        f"SELECT count(*) FROM (SELECT 1 FROM {spec.name} WHERE source = ? LIMIT 1)", [source]
    ).fetchone()[0] > 0
    rows = f"SELECT * FROM {PARSED} WHERE __problem IS NULL"
    if repeats:
        rows = (f"SELECT * FROM (SELECT *, row_number() OVER (PARTITION BY {key} ORDER BY rowid) AS __rn "
                f"FROM {PARSED} WHERE __problem IS NULL) WHERE __rn = 1")
    profiles = None
    if ws is not None:
        profiles = _resolve_new(ws, con, plan, *_new_rows(spec, rows, key, source, existing=existing), source, ingest_id)
    return _insert_new(con, spec, rows, key, source, ingest_id, now, present=plan.staged,
                       attributes=_staged_attributes(plan), existing=existing, profiles=profiles)


def _resolve_new(ws: Workspace, con: duckdb.DuckDBPyConnection, plan: Plan, rows: str, params: list[Any],
                 source: str, ingest_id: int) -> list[str]:
    """Resolve identities with the rows about to be inserted; fill PIDS with the profile id of each
    of their identifier combinations; return the identity columns that make a combination.

    Millions of events carry a few identifier combinations per person, so the graph and the
    lookup work on those; the insert then joins them back, and no row is updated afterwards.
    """
    from cxlens.identity.keys import DEFAULT_COUNTRY_CODE
    from cxlens.identity.resolve import Staged, resolve
    from cxlens.identity.writeback import profiles_of_combinations

    ids = [c for c in IDENTITY_COLUMNS if c in plan.staged]
    cols = "".join(f", {q(c)}" for c in ids)
    con.execute(f"CREATE OR REPLACE TEMP TABLE {COMBOS} AS SELECT DISTINCT {lit(source)} AS source{cols} "
                f"FROM ({rows})", params)
    combos = ws.con.table(COMBOS)
    resolve(ws, staged=Staged(ingest_id, combos))
    pids = profiles_of_combinations(ws, combos, DEFAULT_COUNTRY_CODE)
    ws.con.create_table(PIDS, pids.select(*ids, __pid=pids._cx_pid), temp=True, overwrite=True)
    return ids


def _load_order_lines(con: duckdb.DuckDBPyConnection, plan: Plan, source: str, ingest_id: int,
                      now: datetime) -> tuple[int, int]:
    """Lines go to order_items (identical lines are real: keyed by content + occurrence); orders
    take the first line's order columns, and revenue = sum(quantity × unit_price) unless the
    export gives the order's revenue (repeated on each line, like its other order columns)."""
    items, orders = TABLES["order_items"], TABLES["orders"]
    staged = set(plan.staged)

    def col(c: str) -> str:
        return q(c) if c in staged else "NULL"

    attributes = _staged_attributes(plan)
    content = "concat_ws(chr(31), " + ", ".join(f"coalesce(CAST({col(c)} AS VARCHAR), '')" for c in items.column_names) + ")"
    n_items = _insert_new(
        con, items,
        f"SELECT *, {content} || '#' || row_number() OVER (PARTITION BY {content} ORDER BY rowid) AS __ikey "
        f"FROM {PARSED} WHERE __problem IS NULL",
        "__ikey", source, ingest_id, now, present=staged, attributes=attributes,
    )
    firsts = []
    for c in orders.column_names:
        if c == "order_id":
            firsts.append("order_id")
        elif c == "revenue":
            firsts.append(f"coalesce(arg_min({col('revenue')}, rowid), sum(quantity * unit_price)) AS revenue")
        elif c == "items_count":
            firsts.append(f"coalesce(arg_min({col('items_count')}, rowid), CAST(sum(quantity) AS BIGINT)) AS items_count")
        else:
            firsts.append(f"arg_min({col(c)}, rowid) AS {q(c)}")
    n_orders = _insert_new(
        con, orders,
        f"SELECT {', '.join(firsts)}, arg_min({attributes}, rowid) AS __attributes FROM {PARSED} "
        f"WHERE __problem IS NULL GROUP BY order_id",
        "order_id", source, ingest_id, now, present=orders.column_names, attributes="__attributes",
    )
    return n_items, n_orders


def _quarantine(con: duckdb.DuckDBPyConnection, plan: Plan, info: FileInfo, opts: dict[str, Any], table: str,
                source: str, ingest_id: int, now: datetime, path: Path, first_rowid: int) -> tuple[int, dict[str, int]]:
    """Put every failing row (and every line the CSV parser could not split) into quarantine.

    A row already quarantined by an earlier ingest of the same content (same table, source, line,
    reason and raw record) is counted again but not stored twice, so re-ingesting stays clean.
    """
    first = first_data_line(info, opts)
    rejects = []
    if info.format == "csv":
        rejects = con.execute(
            f"SELECT line, any_value(csv_line), any_value(error_type), any_value(error_message) "
            f"FROM {REJECTS} GROUP BY line ORDER BY line"
        ).fetchall()
    rid = f"({PARSED}.rowid - {int(first_rowid)})"
    line = f"({rid} + {first})"
    if rejects:
        con.execute("CREATE OR REPLACE TEMP TABLE _cx_shift (t BIGINT)")
        con.executemany("INSERT INTO _cx_shift VALUES (?)", [[int(r[0]) - first - j] for j, r in enumerate(rejects)])
        line = f"({rid} + {first} + (SELECT count(*) FROM _cx_shift WHERE t <= {rid}))"
    if plan.checks:
        def case(values: list[str]) -> str:
            return "CASE __problem " + " ".join(f"WHEN {i} THEN {v}" for i, v in enumerate(values)) + " END"

        msg_case = case([lit(f"{c.column}: {REASONS[c.reason]}") for c in plan.checks])
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE _cx_bad AS SELECT ? AS ingest_id, ? AS table_name, ? AS source, "
            f"? AS file, {line} AS line, {case([lit(c.column) for c in plan.checks])} AS column_name, "
            f"__raw AS raw_value, {case([lit(c.reason) for c in plan.checks])} AS reason, "
            f"'line ' || {line} || ', ' || {msg_case} || ' (value: ' || coalesce(__raw, 'empty') || ')' AS message, "
            f"__record AS record, CAST(? AS TIMESTAMP) AS quarantined_at FROM {PARSED} WHERE __problem >= 0",
            [ingest_id, table, source, str(path), now],
        )
    else:
        con.execute("CREATE OR REPLACE TEMP TABLE _cx_bad AS SELECT * FROM quarantine LIMIT 0")
    for line_no, csv_line, error_type, message in rejects:
        con.execute(
            "INSERT INTO _cx_bad VALUES (?, ?, ?, ?, ?, NULL, ?, 'malformed_line', ?, NULL, ?)",
            [ingest_id, table, source, str(path), int(line_no), csv_line,
             f"line {line_no}: the CSV parser could not read this line ({error_type.lower()}: {message})", now],
        )
    con.execute(
        "INSERT INTO quarantine SELECT * FROM _cx_bad b WHERE NOT EXISTS (SELECT 1 FROM quarantine x "
        "WHERE x.table_name = b.table_name AND x.source = b.source AND x.line = b.line AND x.reason = b.reason "
        "AND x.record IS NOT DISTINCT FROM b.record AND x.raw_value IS NOT DISTINCT FROM b.raw_value)"
    )
    counts = dict(con.execute("SELECT reason, count(*) FROM _cx_bad GROUP BY reason ORDER BY reason").fetchall())
    con.execute("DROP TABLE IF EXISTS _cx_bad; DROP TABLE IF EXISTS _cx_shift")
    return sum(counts.values()), {k: int(v) for k, v in counts.items()}


def _link_declared(con: duckdb.DuckDBPyConnection, plan: Plan, source: str, ingest_id: int) -> None:
    """Record mapping-declared identifiers as identity links from each loaded row's primary key."""
    present = [c for c in IDENTITY_COLUMNS if plan.values.get(c, "NULL") != "NULL"]
    schema = {c: "string" for c in present} | {"source": "string"} | {f"__decl_{k}": "string" for k in plan.declared}
    t = ibis.table(schema, name="_cx_idsrc")
    pk = idkeys.primary_key(t)
    parts = []
    for k in plan.declared:
        kb = idkeys.plain_key(k, t[f"__decl_{k}"])
        parts.append(t.filter(kb.notnull()).select(key_a=ibis.coalesce(pk, kb), key_b=kb))
    expr = parts[0] if len(parts) == 1 else ibis.union(*parts)
    sql = ibis.to_sql(expr, dialect="duckdb")
    select = ", ".join([q(c) for c in present] + [f"{lit(source)} AS source"] + [q(f"__decl_{k}") for k in plan.declared])
    con.execute(f"CREATE OR REPLACE TEMP VIEW _cx_idsrc AS SELECT {select} FROM {PARSED} WHERE __problem IS NULL")
    con.execute(
        f"INSERT INTO identity_links SELECT DISTINCT key_a, key_b, ?, ? FROM ({sql}) l "
        f"WHERE NOT EXISTS (SELECT 1 FROM identity_links x WHERE x.key_a = l.key_a AND x.key_b = l.key_b)",
        [source, ingest_id],
    )
    con.execute("DROP VIEW IF EXISTS _cx_idsrc")


def _read_error(path: Path, info: FileInfo, exc: Exception) -> str:
    text = _first(exc)
    if "No files found" in text or "No such file" in text:
        return f"The file {path} does not exist."
    if "Permission denied" in text:
        return f"Cannot read {path}: permission denied."
    return f"{path.name} could not be read as {info.label}: {text}."


def _first(exc: Exception) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return (lines[0] if lines else type(exc).__name__).rstrip(".")


__all__ = ["IngestResult", "ingest", "ingest_file", "refresh_identity"]
