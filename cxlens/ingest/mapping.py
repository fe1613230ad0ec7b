"""Mapping files: how one source file's columns become a canonical table (DESIGN.md contract).

```yaml
table: orders
source: webshop
columns:
  order_id: InvoiceNo                                   # a source column
  ordered_at: {column: InvoiceDate, format: "%m/%d/%Y %H:%M"}
  revenue: {expr: "Quantity * UnitPrice"}               # SQL over source columns
identifiers: {olist_unique_id: customer_unique_id}
filters: "Quantity > 0"
options: {delimiter: ";", encoding: latin-1}            # extension: how to read the file
```
Validation collects every problem with its file and line before anything runs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from cxlens.errors import MappingError
from cxlens.yamlfile import Problems, compose, scalar
from cxlens.workspace.schema import LOADABLE_TABLES, IDENTITY_COLUMNS, target_table

READ_OPTIONS = {"delimiter", "quote", "escape", "encoding", "header", "skip", "format"}
KEY_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass(frozen=True)
class ColumnSource:
    """Where one canonical column's value comes from: a source column or an expression."""

    column: str | None = None
    expr: str | None = None
    format: str | None = None


@dataclass(frozen=True)
class Mapping:
    table: str
    source: str | None
    columns: dict[str, ColumnSource]
    identifiers: dict[str, str] = field(default_factory=dict)
    filters: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    @property
    def where(self) -> str:
        return str(self.path) if self.path else "the default mapping"


def identity_mapping(table: str, file_columns: list[str]) -> Mapping:
    """Without a mapping file, canonical names are expected (matched case-insensitively)."""
    spec = target_table(table)
    by_lower = {c.lower(): c for c in file_columns}
    cols = {c: ColumnSource(column=by_lower[c]) for c in spec.column_names if c in by_lower}
    return Mapping(table=table, source=None, columns=cols)


def load_mapping(path: str | Path) -> Mapping:
    """Parse and check a mapping file's structure (columns are checked against the file later)."""
    path = Path(path)
    root = compose(path, MappingError, "mapping")
    problems = Problems(path, MappingError, "mapping")
    if not isinstance(root, yaml.MappingNode):
        problems.add(root, "must be a YAML mapping with at least `table` and `columns`")
        problems.raise_if_any()
    nodes = {k.value: v for k, v in root.value}
    for key_node, _ in root.value:
        if key_node.value not in {"table", "source", "columns", "identifiers", "filters", "options"}:
            problems.add(key_node, f"unknown key `{key_node.value}` (valid: table, source, columns, identifiers, filters, options)")

    table = scalar(nodes.get("table"))
    if table is None:
        problems.add(root, "`table` is missing")
    elif table not in LOADABLE_TABLES:
        problems.add(nodes["table"], f"unknown table `{table}` (valid: {', '.join(LOADABLE_TABLES)})")
        table = None

    source = scalar(nodes.get("source"))
    if source is not None and (not isinstance(source, str) or not re.match(r"^[A-Za-z0-9_.-]+$", source)):
        problems.add(nodes["source"], f"`source` must be a short name of letters, digits, _ . - (got {source!r})")

    columns: dict[str, ColumnSource] = {}
    cnode = nodes.get("columns")
    if not isinstance(cnode, yaml.MappingNode):
        problems.add(cnode or root, "`columns` must map canonical column names to source columns")
    else:
        valid = target_table(table).column_names if table else ()
        for k, v in cnode.value:
            name = k.value
            if table and name not in valid:
                problems.add(k, f"`{name}` is not a column of {table} (valid: {', '.join(valid)})")
                continue
            src = _column_source(v, name, problems)
            if src is not None:
                columns[name] = src
        if table:
            spec = target_table(table)
            for req in spec.required:
                if req not in columns:
                    problems.add(cnode, f"required column `{req}` of {table} is not mapped")

    identifiers: dict[str, str] = {}
    inode = nodes.get("identifiers")
    if inode is not None:
        if not isinstance(inode, yaml.MappingNode):
            problems.add(inode, "`identifiers` must map an identifier type to a source column")
        else:
            for k, v in inode.value:
                if not KEY_NAME.match(k.value) or k.value in IDENTITY_COLUMNS:
                    problems.add(k, f"identifier type `{k.value}` must be a snake_case name other than the identity columns")
                elif not isinstance(v, yaml.ScalarNode) or not v.value:
                    problems.add(v, f"identifier `{k.value}` must name one source column")
                else:
                    identifiers[k.value] = v.value

    filters = scalar(nodes.get("filters"))
    if filters is not None and not isinstance(filters, str):
        problems.add(nodes["filters"], "`filters` must be one SQL condition over source columns")

    options = scalar(nodes.get("options")) or {}
    if not isinstance(options, dict):
        problems.add(nodes["options"], "`options` must be a mapping")
        options = {}
    for k in options:
        if k not in READ_OPTIONS:
            problems.add(nodes["options"], f"unknown read option `{k}` (valid: {', '.join(sorted(READ_OPTIONS))})")

    problems.raise_if_any()
    assert table is not None
    return Mapping(table=table, source=source, columns=columns, identifiers=identifiers,
                   filters=filters, options=options, path=path)


def _column_source(node: yaml.Node, name: str, problems: Problems) -> ColumnSource | None:
    if isinstance(node, yaml.ScalarNode):
        if not node.value:
            problems.add(node, f"`{name}` names no source column")
            return None
        return ColumnSource(column=node.value)
    if isinstance(node, yaml.MappingNode):
        spec = scalar(node)
        unknown = set(spec) - {"column", "format", "expr"}
        if unknown:
            problems.add(node, f"`{name}` has unknown keys {sorted(unknown)} (valid: column, format, expr)")
            return None
        if ("column" in spec) == ("expr" in spec):
            problems.add(node, f"`{name}` needs exactly one of `column` or `expr`")
            return None
        fmt = spec.get("format")
        if fmt is not None and not isinstance(fmt, str):
            problems.add(node, f"`{name}`: `format` must be a strptime format such as \"%d/%m/%Y\"")
            return None
        return ColumnSource(column=spec.get("column"), expr=spec.get("expr"), format=fmt)
    problems.add(node, f"`{name}` must be a source column name or {{column: ..., format: ...}} or {{expr: ...}}")
    return None
