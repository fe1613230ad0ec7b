"""Shared fixtures: real DuckDB workspace files in a temporary folder, the real CLI, Spark local."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from cxlens import Workspace

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture
def ws_path(tmp_path: Path) -> Path:
    return tmp_path / "ws.duckdb"


@pytest.fixture
def ws(ws_path: Path) -> Iterator[Workspace]:
    w = Workspace.open(ws_path)
    try:
        yield w
    finally:
        w.close()


def run_cli(*args: str, workspace: Path | None = None, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run the real `cxlens` console script in a subprocess."""
    exe = Path(sys.executable).parent / "cxlens"
    cmd = [str(exe)]
    if workspace is not None:
        cmd += ["--workspace", str(workspace)]
    cmd += list(args)
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    return subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, timeout=timeout, env=env)


@pytest.fixture(scope="session")
def spark(tmp_path_factory: pytest.TempPathFactory):
    """A local Spark session (Java 17), shared by the whole run because it takes ~10 s to start.

    Its warehouse is a fresh temporary folder, so tables of an earlier run never collide.
    """
    from pyspark.sql import SparkSession

    session = (
        SparkSession.builder.master("local[2]")
        .appName("cxlens-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.driver.memory", "2g")
        .config("spark.sql.warehouse.dir", str(tmp_path_factory.mktemp("spark-warehouse")))
        .getOrCreate()
    )
    yield session
    session.stop()


def doc_snippet(name: str) -> tuple[str, list[str]]:
    """The first ```python block of docs/NAME and the lines it says it prints (its `# ` comments)."""
    block = (REPO / "docs" / name).read_text().split("```python\n", 1)[1].split("```", 1)[0]
    return block, [line.removeprefix("# ") for line in block.splitlines() if line.startswith("# ")]
