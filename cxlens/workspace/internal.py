"""Bookkeeping tables the workspace keeps beside the canonical ones.

They are plain tables in the same file, so a user can read them with SQL too: `sources` is the
ingest log, `quarantine` holds every rejected row with its reason, the `identity_*` tables are the
identity graph and its resolution, and `cxlens_meta` records the schema version.
"""

from __future__ import annotations

from cxlens.workspace.schema import Column

INTERNAL_TABLES: dict[str, tuple[Column, ...]] = {
    "cxlens_meta": (
        Column("key", "string"),
        Column("value", "string"),
    ),
    "sources": (
        Column("ingest_id", "int64", description="Sequential id of one ingested file."),
        Column("file", "string", description="Absolute path of the file as given."),
        Column("table_name", "string", description="Canonical table (or order_lines) it loaded."),
        Column("source", "string", description="Namespace of the export."),
        Column("format", "string", description="csv, parquet, json or ndjson (gzip noted)."),
        Column("file_sha256", "string", description="Checksum of the file's bytes."),
        Column("mapping", "string", description="Mapping file used, if any."),
        Column("ingested_at", "timestamp", description="When the ingest committed (UTC)."),
        Column("rows_read", "int64"),
        Column("rows_loaded", "int64"),
        Column("rows_quarantined", "int64"),
        Column("rows_duplicate", "int64"),
        Column("rows_filtered", "int64"),
        Column("seconds", "float64", description="Wall time of the ingest."),
        Column("resolved", "boolean", description="Identity resolution has seen these rows."),
    ),
    "quarantine": (
        Column("ingest_id", "int64"),
        Column("table_name", "string"),
        Column("source", "string"),
        Column("file", "string"),
        Column("line", "int64", description="Line of the row in the file (1 = header for CSV)."),
        Column("column_name", "string", description="Canonical column that failed."),
        Column("raw_value", "string", description="The value as it stood in the file."),
        Column("reason", "string", description="Machine-readable code, e.g. bad_timestamp."),
        Column("message", "string", description="One sentence for a person."),
        Column("record", "json", description="The whole source row, so nothing is lost."),
        Column("quarantined_at", "timestamp"),
    ),
    "identity_keys": (
        Column("key", "string", description="type:value, customer ids namespaced by source."),
        Column("key_type", "string"),
        Column("profile_id", "string", description="NULL for a flagged (over-shared) key."),
        Column("flagged", "boolean"),
        Column("first_seen", "timestamp"),
    ),
    "identity_edges": (
        Column("key_a", "string"),
        Column("key_b", "string"),
    ),
    "identity_links": (
        Column("key_a", "string", description="An identity key of a record."),
        Column("key_b", "string", description="A declared identifier linked to it."),
        Column("source", "string"),
        Column("ingest_id", "int64"),
    ),
    "identity_flags": (
        Column("key", "string"),
        Column("key_type", "string"),
        Column("distinct_customers", "int64"),
        Column("flagged_at", "timestamp"),
    ),
}

REASONS: dict[str, str] = {
    "missing_required": "a required value is empty",
    "bad_timestamp": "not a timestamp in the declared format or ISO 8601",
    "bad_date": "not a date in the declared format or ISO 8601",
    "bad_number": "not a number",
    "bad_integer": "not a whole number",
    "bad_boolean": "not a boolean (true/false, yes/no, 1/0)",
    "out_of_scale": "a survey score outside the survey type's scale",
    "unknown_value": "not one of the allowed values",
    "bad_json": "not valid JSON",
    "bad_expression": "the mapping expression failed on this row",
}
"""Quarantine reason codes (a contract: truth files and scripts match on them)."""
REASONS["malformed_line"] = "the CSV parser could not split the line into the header's columns"
