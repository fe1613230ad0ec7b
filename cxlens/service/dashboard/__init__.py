"""The dashboard: signed-in, server-rendered pages over the report's tiles, charts and sections.

`router` is included by the app factory; everything it keeps (signing secret, page cache) lives
on the app instance.
"""

from cxlens.service.dashboard.pages import router

__all__ = ["router"]
