"""Ingestion on a real DuckDB file: formats, mappings, validation, quarantine, idempotence, atomicity."""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from cxlens import Workspace
from cxlens.errors import IngestError, MappingError
from cxlens.ingest import ingest_file, load_mapping

from conftest import SHARED_DATA, run_cli

ORDERS_CSV = textwrap.dedent("""\
    order_id,customer_id,ordered_at,revenue,channel,status,gift_wrap
    1,c1,2025-01-01 10:00:00,10.5,online,completed,yes
    2,c2,2025-01-02T09:30:00+02:00,20,STORE,Completed,no
    3,c3,2025-13-45,5,online,completed,no
    4,c4,2025-01-03,x1,online,completed,no
    5,c5,2025-01-03,7,online,lost,no
    ,c6,2025-01-03,7,online,completed,no
    2,c2,2025-01-02T09:30:00+02:00,20,STORE,Completed,no
    7,c7,2025-01-04,1,online,completed,no,extra
    8,c8,2025-01-04,1, app ,,no
    """)


def write(path: Path, text: str, *, gz: bool = False, encoding: str = "utf-8") -> Path:
    data = text.encode(encoding)
    if gz:
        path.write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)
    return path


def test_valid_rows_load_and_each_bad_row_is_quarantined_with_its_reason(ws: Workspace, tmp_path: Path) -> None:
    f = write(tmp_path / "orders.csv", ORDERS_CSV)
    r = ingest_file(ws, "orders", f, source="shop")
    assert (r.rows_read, r.rows_loaded, r.rows_quarantined, r.rows_duplicate) == (9, 3, 5, 1)
    got = ws.sql("SELECT order_id, ordered_at, revenue, channel, status, attributes FROM orders ORDER BY order_id").df()
    assert list(got.order_id) == ["1", "2", "8"]
    # +02:00 offset converted to UTC; enumerations trimmed and lower-cased; blank status stays NULL
    assert got.ordered_at[1] == pd.Timestamp("2025-01-02 07:30:00")
    assert list(got.channel) == ["online", "store", "app"]
    assert got.status[2] is None or pd.isna(got.status[2])
    assert json.loads(got.attributes[0]) == {"gift_wrap": "yes"}
    q = ws.sql("SELECT line, column_name, raw_value, reason FROM quarantine ORDER BY line").fetchall()
    assert q == [
        (4, "ordered_at", "2025-13-45", "bad_timestamp"),
        (5, "revenue", "x1", "bad_number"),
        (6, "status", "lost", "unknown_value"),
        (7, "order_id", None, "missing_required"),
        (9, None, "7,c7,2025-01-04,1,online,completed,no,extra", "malformed_line"),
    ]
    record = json.loads(ws.sql("SELECT record FROM quarantine WHERE line = 5").fetchone()[0])
    assert record["revenue"] == "x1" and record["customer_id"] == "c4"


def test_reingest_adds_nothing_and_overlap_adds_only_new_rows(ws: Workspace, tmp_path: Path) -> None:
    f = write(tmp_path / "orders.csv", ORDERS_CSV)
    ingest_file(ws, "orders", f, source="shop")
    before = ws.sql("SELECT count(*) FROM orders").fetchone()[0]
    again = ingest_file(ws, "orders", f, source="shop")
    assert again.rows_loaded == 0
    assert ws.sql("SELECT count(*) FROM orders").fetchone()[0] == before
    assert ws.sql("SELECT count(*) FROM quarantine").fetchone()[0] == 5  # not stored twice
    overlap = write(tmp_path / "orders2.csv", "order_id,ordered_at,revenue\n1,2025-01-01,10.5\n9,2025-02-01,3\n")
    r = ingest_file(ws, "orders", overlap, source="shop")
    assert (r.rows_loaded, r.rows_duplicate) == (1, 1)
    other = ingest_file(ws, "orders", overlap, source="pos")  # natural keys are per source
    assert other.rows_loaded == 2


def test_events_without_id_get_a_content_hash_and_exact_duplicates_collapse(ws: Workspace, tmp_path: Path) -> None:
    rows = "occurred_at,event_type,anonymous_id,page_url\n" + "2025-01-01 10:00:00,page_view,a1,/home\n" * 2 + "2025-01-01 10:00:05,page_view,a1,/home\n"
    f = write(tmp_path / "ev.csv", rows)
    r = ingest_file(ws, "events", f, source="web")
    assert (r.rows_loaded, r.rows_duplicate) == (2, 1)
    ids = [x[0] for x in ws.sql("SELECT event_id FROM events").fetchall()]
    assert len(set(ids)) == 2 and all(len(i) == 32 for i in ids)
    assert ingest_file(ws, "events", f, source="web").rows_loaded == 0


@pytest.mark.parametrize("kind", ["csv.gz", "parquet", "ndjson", "json", "ndjson.gz", "latin1", "semicolon"])
def test_file_formats(ws: Workspace, tmp_path: Path, kind: str) -> None:
    df = pd.DataFrame({
        "response_id": ["r1", "r2", "r3"],
        "customer_id": ["c1", "c2", "c3"],
        "responded_at": ["2025-03-01 10:00:00", "2025-03-02 11:00:00", "2025-03-03 12:00:00"],
        "survey_type": ["nps", "csat", "nps"],
        "score": [9, 6, 10],
        "comment": ["très bien, merci", "slow \"delivery\"", None],
    })
    if kind == "csv.gz":
        f = tmp_path / "s.csv.gz"
        df.to_csv(f, index=False, compression="gzip")
    elif kind == "parquet":
        f = tmp_path / "s.parquet"
        df.to_parquet(f)
    elif kind in ("ndjson", "ndjson.gz"):
        f = tmp_path / f"s.{kind}"
        df.to_json(f, orient="records", lines=True, compression="gzip" if kind.endswith("gz") else None)
    elif kind == "json":
        f = tmp_path / "s.json"
        df.to_json(f, orient="records")
    elif kind == "latin1":
        f = tmp_path / "s.csv"
        df.to_csv(f, index=False, encoding="latin-1")
    else:
        f = tmp_path / "s.csv"
        df.to_csv(f, index=False, sep=";")
    r = ingest_file(ws, "survey_responses", f, source="surveys")
    assert (r.rows_loaded, r.rows_quarantined) == (2, 1), r
    bad = ws.sql("SELECT line, column_name, raw_value, reason FROM quarantine").fetchone()
    # csat 6 is outside 1-5; line 3 in CSV (header is line 1), the second record otherwise
    assert bad[1:] == ("score", "6", "out_of_scale") or bad[1:] == ("score", "6.0", "out_of_scale")
    assert bad[0] == (3 if "csv" in str(f.name) or kind in ("latin1", "semicolon") else 2)
    got = ws.sql("SELECT comment FROM survey_responses ORDER BY response_id").fetchall()
    assert got[0][0] == "très bien, merci"


def test_mapping_columns_formats_exprs_identifiers_filters(ws: Workspace, tmp_path: Path) -> None:
    f = write(tmp_path / "shop.csv", textwrap.dedent("""\
        InvoiceNo,Placed,Qty,Price,Account,Email,Unique
        A1,03/01/2025 10:00,2,3.5,W1,Ann@Example.com,u1
        A2,03/02/2025 11:00,1,10,W2,bob@example.com,u2
        A3,03/02/2025 12:00,0,10,W3,carl@example.com,u3
        A4,03/02/2025 13:00,2x,10,W4,dan@example.com,u4
        """))
    m = write(tmp_path / "shop.yml", textwrap.dedent("""\
        table: orders
        source: webshop
        columns:
          order_id: InvoiceNo
          customer_id: Account
          email: Email
          ordered_at: {column: Placed, format: "%m/%d/%Y %H:%M"}
          revenue: {expr: "Qty * Price"}
          channel: {expr: "'online'"}
        identifiers:
          olist_unique_id: Unique
        filters: "Qty > 0"
        """))
    r = ingest_file(ws, "orders", f, mapping=load_mapping(m))
    assert (r.rows_loaded, r.rows_filtered, r.rows_quarantined) == (2, 1, 1)
    got = ws.sql("SELECT order_id, revenue, ordered_at, channel, source FROM orders ORDER BY 1").fetchall()
    assert got[0][:2] == ("A1", 7.0) and got[1][:2] == ("A2", 10.0)
    assert got[0][2] == pd.Timestamp("2025-03-01 10:00").to_pydatetime()
    assert {g[3] for g in got} == {"online"} and {g[4] for g in got} == {"webshop"}
    bad = ws.sql("SELECT line, raw_value, reason FROM quarantine").fetchone()
    assert bad == (5, "2x", "bad_number")
    links = set(ws.sql("SELECT key_a, key_b FROM identity_links").fetchall())
    assert links == {("customer_id:webshop:W1", "olist_unique_id:u1"), ("customer_id:webshop:W2", "olist_unique_id:u2")}


def test_order_lines_fill_orders_and_items(ws: Workspace, tmp_path: Path) -> None:
    f = write(tmp_path / "lines.csv", textwrap.dedent("""\
        order_id,customer_id,ordered_at,product_id,quantity,unit_price,category
        o1,c1,2025-01-01 10:00:00,p1,2,3.0,toys
        o1,c1,2025-01-01 10:00:00,p1,2,3.0,toys
        o1,c1,2025-01-01 10:00:00,p2,1,4.5,books
        o2,,2025-01-02 10:00:00,p3,3,1.0,toys
        """))
    r = ingest_file(ws, "order_lines", f, source="pos")
    assert (r.rows_loaded, r.orders_loaded) == (4, 2)
    src = pd.read_csv(f)
    expected = (src.quantity * src.unit_price).groupby(src.order_id).sum().to_dict()
    got = dict(ws.sql("SELECT order_id, revenue FROM orders").fetchall())
    assert got == pytest.approx(expected)
    assert dict(ws.sql("SELECT order_id, items_count FROM orders").fetchall()) == src.groupby("order_id").quantity.sum().to_dict()
    again = ingest_file(ws, "order_lines", f, source="pos")
    assert (again.rows_loaded, again.orders_loaded, again.rows_duplicate) == (0, 0, 4)


def test_online_retail_ingests_with_the_published_counts(ws: Workspace) -> None:
    data = SHARED_DATA / "online_retail" / "online_retail.csv.gz"
    mapping = Path(__file__).resolve().parents[1] / "examples" / "online_retail.yml"
    r = ingest_file(ws, "order_lines", data, mapping=load_mapping(mapping))
    # SOURCE.txt: 541,909 rows, 25,900 invoices, 4,372 CustomerIDs, 135,080 lines without one,
    # 9,288 cancellation lines; cleaned: 397,884 rows, 18,532 invoices, revenue 8,911,407.90
    assert (r.rows_read, r.rows_loaded, r.rows_quarantined, r.orders_loaded) == (541909, 541909, 0, 25900)
    assert ws.sql("SELECT count(DISTINCT customer_id) FROM orders").fetchone()[0] == 4372
    assert ws.sql("SELECT count(*) FROM order_items WHERE order_id LIKE 'C%'").fetchone()[0] == 9288
    assert ws.sql("SELECT count(*) FROM orders WHERE status = 'returned'").fetchone()[0] == \
        ws.sql("SELECT count(*) FROM orders WHERE order_id LIKE 'C%'").fetchone()[0]
    lines_without_customer = ws.sql(
        "SELECT count(*) FROM order_items i JOIN orders o USING (source, order_id) WHERE o.customer_id IS NULL"
    ).fetchone()[0]
    assert lines_without_customer == 135080
    clean = ws.sql(
        "SELECT count(*), count(DISTINCT o.customer_id), count(DISTINCT o.order_id), round(sum(quantity * unit_price), 2) "
        "FROM order_items i JOIN orders o USING (source, order_id) "
        "WHERE o.customer_id IS NOT NULL AND quantity > 0 AND unit_price > 0 AND o.status = 'completed'"
    ).fetchone()
    assert clean == (397884, 4338, 18532, 8911407.90)


def test_missing_required_column_without_mapping_names_it(ws: Workspace, tmp_path: Path) -> None:
    f = write(tmp_path / "o.csv", "id,when,amount\n1,2025-01-01,3\n")
    with pytest.raises(IngestError, match=r"no column `order_id`.*id, when, amount"):
        ingest_file(ws, "orders", f)


@pytest.mark.parametrize(
    ("body", "pattern"),
    [
        ("table: orders\ncolumns:\n  order_id: Nope\n  ordered_at: d\n  revenue: r\n", r"column `Nope`.*columns: id, d, r"),
        ("table: orders\ncolumns:\n  order_id: id\n  ordered_at: d\n  revenue: {expr: \"(SELECT 1)\"}\n", r"sub-queries"),
        ("table: orders\ncolumns:\n  order_id: id\n  ordered_at: d\n  revenue: {expr: \"read_csv('x')\"}\n", r"read_csv"),
        ("table: orders\ncolumns:\n  order_id: id\n  ordered_at: d\n  revenue: {expr: \"frobnicate(r)\"}\n", r"unknown function `frobnicate`"),
        ("table: orders\ncolumns:\n  order_id: id\n  ordered_at: d\n  revenue: {expr: \"r * zz\"}\n", r"`zz`, which is not a column"),
        ("table: orders\ncolumns:\n  order_id: id\n  ordered_at: d\n  revenue: {expr: \"r +\"}\n", r"not a valid SQL expression"),
    ],
)
def test_mapping_errors_name_the_offending_item(ws: Workspace, tmp_path: Path, body: str, pattern: str) -> None:
    f = write(tmp_path / "o.csv", "id,d,r\n1,2025-01-01,3\n")
    m = write(tmp_path / "m.yml", body)
    with pytest.raises(MappingError, match=pattern):
        ingest_file(ws, "orders", f, mapping=load_mapping(m))
    assert ws.sql("SELECT count(*) FROM sources").fetchone()[0] == 0


def test_mapping_structure_problems_are_all_reported_with_lines(tmp_path: Path) -> None:
    m = write(tmp_path / "m.yml", "table: order\nsorce: x\ncolumns:\n  order_id: id\n")
    with pytest.raises(MappingError) as err:
        load_mapping(m)
    text = str(err.value)
    assert "m.yml:1: unknown table `order`" in text and "m.yml:2: unknown key `sorce`" in text
    m2 = write(tmp_path / "m2.yml", "table: orders\ncolumns:\n  order_id: id\n  revenu: r\n")
    with pytest.raises(MappingError, match=r"m2.yml:4: `revenu` is not a column of orders.*required column `ordered_at`"):
        load_mapping(m2)


def test_sigkill_mid_ingest_leaves_every_table_as_before(ws_path: Path, tmp_path: Path) -> None:
    big = tmp_path / "big.csv"
    duckdb.sql(
        f"COPY (SELECT 'e' || i AS event_id, TIMESTAMP '2025-01-01' + INTERVAL (i) SECOND AS occurred_at, "
        f"'page_view' AS event_type, 'a' || (i % 50000) AS anonymous_id, '/p/' || (i % 997) AS page_url "
        f"FROM range(1500000) t(i)) TO '{big}' (HEADER)"
    )
    small = write(tmp_path / "o.csv", "order_id,ordered_at,revenue\n1,2025-01-01,3\n")
    with Workspace.open(ws_path) as w:
        ingest_file(w, "orders", small, source="shop")
    before = _all_counts(ws_path)
    script = (
        "import sys; from pathlib import Path; from cxlens import Workspace; from cxlens.ingest import ingest_file\n"
        f"w = Workspace.open({str(ws_path)!r})\n"
        "def st(s): print(s, flush=True)\n"
        f"ingest_file(w, 'events', Path({str(big)!r}), source='web', on_stage=st)\n"
        "print('done', flush=True)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    seen = []
    for line in proc.stdout:
        seen.append(line.strip())
        if line.strip() == "loading":
            time.sleep(0.05)
            os.kill(proc.pid, signal.SIGKILL)
            break
    proc.wait(timeout=60)
    assert "done" not in seen and proc.returncode == -signal.SIGKILL
    assert _all_counts(ws_path) == before


def _all_counts(path: Path) -> dict[str, int]:
    with Workspace.open(path) as w:
        tables = [r[0] for r in w.sql("SELECT table_name FROM information_schema.tables WHERE table_schema='main'").fetchall()]
        return {t: w.sql(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables}


@pytest.mark.parametrize(
    ("args", "pattern"),
    [
        (["ingest", "nope", "{f}"], "Unknown table `nope`"),
        (["ingest", "orders", "{missing}"], "does not exist"),
        (["ingest", "orders", "{garbage}"], "cannot be decompressed"),
        (["ingest", "orders", "{binary}"], "could not be read"),
        (["ingest", "orders", "{f}", "--mapping", "{badmap}"], "column `Nope`"),
        (["ingest", "orders", "{f}", "--mapping", "{badexpr}"], "unknown function `boom`"),
        (["ingest", "orders", "{f}", "--mapping", "{missingmap}"], "does not exist"),
    ],
)
def test_cli_errors_are_one_sentence_without_traceback(tmp_path: Path, args: list[str], pattern: str) -> None:
    paths = {
        "f": write(tmp_path / "o.csv", "id,d,r\n1,2025-01-01,3\n"),
        "missing": tmp_path / "nope.csv",
        "garbage": write(tmp_path / "g.csv.gz", "x", gz=False),
        "badmap": write(tmp_path / "b.yml", "table: orders\ncolumns:\n  order_id: Nope\n  ordered_at: d\n  revenue: r\n"),
        "badexpr": write(tmp_path / "e.yml", "table: orders\ncolumns:\n  order_id: id\n  ordered_at: d\n  revenue: {expr: \"boom(r)\"}\n"),
        "missingmap": tmp_path / "absent.yml",
        "binary": tmp_path / "bin.csv",
    }
    (tmp_path / "bin.csv").write_bytes(b'id,d,r\n"1,2025-01-01,3\n' + bytes(range(256)) * 4)
    (tmp_path / "g.csv.gz").write_bytes(b"\x1f\x8b\x08\x00garbage-not-gzip")
    res = run_cli(*[a.format(**paths) for a in args], workspace=tmp_path / "w.duckdb")
    assert res.returncode != 0
    assert pattern in res.stderr
    assert "Traceback" not in res.stderr and "Traceback" not in res.stdout
    assert res.stderr.strip().startswith("Error:")


def test_cli_ingest_json_contract_quarantine_and_sources(tmp_path: Path) -> None:
    f = write(tmp_path / "orders.csv", ORDERS_CSV)
    ws = tmp_path / "w.duckdb"
    res = run_cli("ingest", "orders", str(f), "--source", "shop", "--format", "json", workspace=ws)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout.strip().splitlines()[0])
    assert {k: out[k] for k in ("table", "source", "file", "rows_read", "rows_loaded", "rows_quarantined", "rows_duplicate")} == {
        "table": "orders", "source": "shop", "file": str(f), "rows_read": 9, "rows_loaded": 3,
        "rows_quarantined": 5, "rows_duplicate": 1,
    }
    q = json.loads(run_cli("quarantine", "--table", "orders", "--format", "json", workspace=ws).stdout)
    assert [(r["line"], r["reason"]) for r in q] == [(4, "bad_timestamp"), (5, "bad_number"), (6, "unknown_value"), (7, "missing_required"), (9, "malformed_line")]
    s = json.loads(run_cli("sources", "--format", "json", workspace=ws).stdout)
    assert len(s) == 1 and s[0]["rows_loaded"] == 3 and s[0]["table"] == "orders"
    table_out = run_cli("quarantine", workspace=ws)
    assert "bad_timestamp" in table_out.stdout


def test_ctrl_c_mid_ingest_is_a_sentence_and_changes_nothing(ws_path: Path, tmp_path: Path) -> None:
    big = tmp_path / "big.csv"
    duckdb.sql(
        f"COPY (SELECT 'e' || i AS event_id, TIMESTAMP '2025-01-01' + INTERVAL (i) SECOND AS occurred_at, "
        f"'page_view' AS event_type, 'a' || (i % 50000) AS anonymous_id FROM range(3000000) t(i)) TO '{big}' (HEADER)"
    )
    Workspace.open(ws_path).close()
    before = _all_counts(ws_path)
    exe = Path(sys.executable).parent / "cxlens"
    proc = subprocess.Popen([str(exe), "--workspace", str(ws_path), "ingest", "events", str(big), "--no-resolve"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_until_reading(proc, big)
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, (proc.returncode, err)
    assert "Interrupted" in err and "Traceback" not in err
    assert _all_counts(ws_path) == before


def test_an_interrupt_at_the_last_stage_before_commit_rolls_the_file_back(ws_path: Path, tmp_path: Path) -> None:
    """The CLI abandons a file when Ctrl-C was seen but swallowed by the engine: its stage callback
    raises at 'committing', the last moment before COMMIT, and nothing of the file may remain."""
    f = write(tmp_path / "orders.csv", ORDERS_CSV)
    Workspace.open(ws_path).close()
    before = _all_counts(ws_path)
    stages: list[str] = []

    def stage(name: str) -> None:
        stages.append(name)
        if name == "committing":
            raise KeyboardInterrupt

    with Workspace.open(ws_path) as w, pytest.raises(KeyboardInterrupt):
        ingest_file(w, "orders", f, source="shop", on_stage=stage)
    assert stages[-1] == "committing" and "loading" in stages
    assert _all_counts(ws_path) == before


def _wait_until_reading(proc: subprocess.Popen, path: Path, timeout: float = 60.0) -> None:
    """Wait until `proc` has `path` open (it is past its imports and reading), on a busy machine too.

    Without /proc (not Linux), fall back to a fixed wait.
    """
    fds = Path(f"/proc/{proc.pid}/fd")
    if not fds.exists():
        time.sleep(2.5)
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if any(os.path.realpath(fd) == str(path.resolve()) for fd in fds.iterdir()):
                return
        except OSError:  # a descriptor closed while we looked
            pass
        time.sleep(0.02)
