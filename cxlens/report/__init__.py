"""The static HTML report (`cxlens report`): KPI tiles, trends and breakdowns in one offline file.

    from cxlens.report import Options, build_report
    result = build_report(ws, "report.html", Options(grain="month"))
    result.path, result.headline()      # where it is, the headline KPIs as JSON values

`data` gathers the numbers through the semantic layer, `charts` draws them, `render` writes the
file; `headline_json` is the `--format json` contract shared by `cxlens report` and `cxlens demo`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cxlens.report.data import HEADLINE, Options, ReportData, Step, gather
from cxlens.report.render import render_html, write_report
from cxlens.report.summary import headline_json


@dataclass(frozen=True)
class ReportResult:
    """A written report: where it is and the numbers behind it."""

    path: Path
    data: ReportData

    @property
    def seconds(self) -> float:
        return self.data.seconds

    def headline(self) -> list[dict[str, Any]]:
        return headline_json(self.data)

    def to_json(self) -> dict[str, Any]:
        """The `cxlens report --format json` document."""
        left_out = self.data.left_out
        return {"path": str(self.path), "metrics": len(self.data.tiles),
                "no_data": [t.metric.id for t in self.data.tiles.values() if not t.has_data],
                "left_out": left_out.isoformat() if left_out else None,
                "seconds": self.seconds, "headline": self.headline()}


def build_report(ws: Any, out: str | Path, options: Options | None = None, *, on_step: Step | None = None) -> ReportResult:
    """Compute every metric of the workspace's catalogue and write the report to `out`."""
    data = gather(ws, options or Options(), on_step=on_step)
    return ReportResult(write_report(data, out), data)


__all__ = ["HEADLINE", "Options", "ReportData", "ReportResult", "build_report", "headline_json", "render_html"]
