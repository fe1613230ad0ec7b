"""Ingestion: files (CSV, Parquet, JSON/NDJSON, gzip) mapped onto canonical tables, validated,
quarantined and deduplicated, one atomic transaction per file."""

from cxlens.ingest.loader import IngestResult, ingest, ingest_file, refresh_identity
from cxlens.ingest.mapping import Mapping, load_mapping

__all__ = ["IngestResult", "Mapping", "ingest", "ingest_file", "load_mapping", "refresh_identity"]
