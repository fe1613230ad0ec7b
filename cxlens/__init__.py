"""cxlens: measure and improve personalized customer experience.

One workspace of canonical tables (DuckDB by default, any Ibis backend), unified customer
profiles, and the KPIs, experiments, CLV and journeys built on them.
"""

__version__ = "0.1.0"

from cxlens.errors import CxlensError
from cxlens.workspace import Workspace

__all__ = ["CxlensError", "Workspace", "__version__"]
