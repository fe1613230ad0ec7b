"""What every benchmark shares: honest peak RSS, a one-line machine description, child processes.

Each benchmark times every side in a fresh child process, because Linux keeps a process's peak
RSS across exec: a parent that held the data would hand its peak to every child it starts. The
child prints its result as the last line of its output, as JSON.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
from typing import Any


def peak_rss_mb() -> float:
    """This process's peak resident set size in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def machine() -> str:
    """Architecture, cores, memory, Python and the load average, for the figures' context."""
    with open("/proc/meminfo") as f:
        kib = int(next(line for line in f if line.startswith("MemTotal")).split()[1])
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    return f"{platform.machine()}, {os.cpu_count()} cores, {kib / 2**20:.0f} GiB, Python {platform.python_version()}, load average {load}"


def run_child(command: list[str], what: str) -> dict[str, Any]:
    """Run `command` (a python and a script with its arguments) and read its last JSON line; exit with its stderr on failure."""
    out = subprocess.run(command, capture_output=True, text=True, check=False)
    if out.returncode:
        sys.exit(f"the {what} child failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def workspace_copy(source: Path | None, tmp: Path) -> Path:
    """A copy of `source` (with its definitions file) under `tmp`, never written to; without a
    source, the demo's workspace built there first (`cxlens demo`, 2-3 min)."""
    import shutil
    from pathlib import Path as _Path

    if source is None:
        print("building the demo workspace (cxlens demo)...", flush=True)
        cli = _Path(sys.executable).parent / "cxlens"
        subprocess.run([str(cli), "demo", "--out", str(tmp / "demo"), "--format", "json"], check=True,
                       stdout=subprocess.DEVNULL)
        source = tmp / "demo" / "cxlens.duckdb"
    source = source.resolve()
    ws = tmp / "ws" / "cxlens.duckdb"
    ws.parent.mkdir()
    shutil.copy2(source, ws)
    definitions = source.with_name(source.stem + ".metrics.yml")
    if definitions.exists():
        shutil.copy2(definitions, ws.with_name(ws.stem + ".metrics.yml"))
    return ws
