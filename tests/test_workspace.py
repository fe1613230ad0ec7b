"""The workspace holds the canonical tables of DESIGN.md under their exact names and columns."""

from __future__ import annotations

import re
from pathlib import Path

import duckdb
import pytest

from cxlens import Workspace
from cxlens.errors import WorkspaceError
from cxlens.workspace.migrations import SCHEMA_VERSION
from cxlens.workspace.schema import META_COLUMNS, TABLES

DESIGN = Path(__file__).resolve().parents[2] / "shared" / "DESIGN.md"


def design_tables() -> dict[str, list[str]]:
    """Parse the canonical table list out of DESIGN.md itself, the contract."""
    text = DESIGN.read_text()
    section = text.split("## Canonical tables (contract)")[1].split("##")[0]
    out: dict[str, list[str]] = {}
    for line in section.splitlines():
        m = re.match(r"\| (\w+) \| (.+) \|$", line)
        if not m or m.group(1) in ("table", "order_lines"):
            continue
        plain = re.sub(r"\([^)]*\)", "", m.group(2))
        cols = [re.match(r"\s*(\w+)", part).group(1) for part in plain.split(",")]
        out[m.group(1)] = cols
    return out


@pytest.mark.skipif(not DESIGN.exists(), reason="shared/DESIGN.md sits beside the repository")
def test_tables_match_design_contract(ws_path: Path) -> None:
    Workspace.open(ws_path).close()
    con = duckdb.connect(str(ws_path), read_only=True)
    for table, cols in design_tables().items():
        have = [r[0] for r in con.execute(f"DESCRIBE {table}").fetchall()]
        missing = [c for c in cols if c not in have]
        assert not missing, f"{table} lacks {missing}"
        for meta in META_COLUMNS:
            assert meta.name in have
        required = {c.name for c in TABLES[table].columns if c.required}
        section = DESIGN.read_text()
        row = next(line for line in section.splitlines() if line.startswith(f"| {table} |"))
        starred = set(re.findall(r"(\w+)\*", row))
        assert starred == required, table
    con.close()


def test_schema_version_recorded_and_reopen_is_noop(ws_path: Path) -> None:
    with Workspace.open(ws_path) as w:
        assert w.schema_version == SCHEMA_VERSION
    with Workspace.open(ws_path) as w:
        assert w.schema_version == SCHEMA_VERSION
        assert set(w.counts()) == set(TABLES)


def test_newer_schema_is_refused(ws_path: Path) -> None:
    with Workspace.open(ws_path) as w:
        w.sql("UPDATE cxlens_meta SET value = '999' WHERE key = 'schema_version'")
    with pytest.raises(WorkspaceError, match="newer cxlens"):
        Workspace.open(ws_path)


def test_locked_workspace_is_a_sentence(ws_path: Path, tmp_path: Path) -> None:
    import subprocess
    import sys

    Workspace.open(ws_path).close()
    holder = subprocess.Popen(
        [sys.executable, "-c", f"import duckdb,time; c=duckdb.connect({str(ws_path)!r}); print('ok', flush=True); time.sleep(30)"],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "ok"
        with pytest.raises(WorkspaceError, match="in use by another"):
            Workspace.open(ws_path)
    finally:
        holder.kill()
