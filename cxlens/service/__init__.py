"""The HTTP service: durable event collection, API keys and the read API (`cxlens serve`)."""

from cxlens.service.app import create_app
from cxlens.service.settings import ServiceSettings

__all__ = ["ServiceSettings", "create_app"]
