"""Reading a source file as raw as it stood in the file.

CSV is read as text (`all_varchar`) so a bad value can be quarantined exactly as written; lines
the CSV parser cannot split (too many columns, unterminated quotes) are captured by DuckDB's
reject tables with their line numbers instead of failing the whole file. Parquet and JSON keep
their types. Row order is the file's order (DuckDB preserves insertion order), which gives line
numbers.
"""

from __future__ import annotations

import codecs
import gzip
import hashlib
import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cxlens.errors import IngestError

FORMATS = ("csv", "parquet", "json", "ndjson")
SNIFF_BYTES = 1 << 20


@dataclass(frozen=True)
class FileInfo:
    path: Path
    format: str
    gzip: bool
    size: int

    @property
    def label(self) -> str:
        return self.format + ("+gzip" if self.gzip else "")


def detect(path: Path, declared: str | None = None) -> FileInfo:
    """Format from the declared option, else the extension, else the first bytes."""
    if not path.exists():
        raise IngestError(f"The file {path} does not exist.")
    if path.is_dir():
        raise IngestError(f"{path} is a folder; give the files inside it (e.g. {path}/*.csv).")
    try:
        with path.open("rb") as fh:
            head = fh.read(4096)
    except OSError as exc:
        raise IngestError(f"Cannot read {path}: {exc.strerror or exc}.") from None
    is_gzip = head[:2] == b"\x1f\x8b"
    if is_gzip:
        try:
            with gzip.open(path, "rb") as fh:
                head = fh.read(4096)
        except (OSError, EOFError, zlib.error):
            raise IngestError(f"The file {path} looks gzip-compressed but cannot be decompressed.") from None
    if declared:
        fmt = declared.lower()
        if fmt not in FORMATS:
            raise IngestError(f"Unknown format `{declared}` for {path} (valid: {', '.join(FORMATS)}).")
        return FileInfo(path, fmt, is_gzip, path.stat().st_size)
    suffixes = [s.lower() for s in path.suffixes if s.lower() != ".gz"]
    ext = suffixes[-1] if suffixes else ""
    if ext in (".parquet", ".pq") or head[:4] == b"PAR1":
        fmt = "parquet"
    elif ext in (".ndjson", ".jsonl"):
        fmt = "ndjson"
    elif ext == ".json":
        fmt = "json"
    elif ext in (".csv", ".tsv", ".txt") or not head.lstrip().startswith((b"{", b"[")):
        fmt = "csv"
    else:
        fmt = "ndjson" if head.lstrip().startswith(b"{") else "json"
    if fmt == "parquet" and is_gzip:
        raise IngestError(f"{path}: gzip around Parquet is not supported; Parquet compresses its own pages.")
    return FileInfo(path, fmt, is_gzip, path.stat().st_size)


def sniff_encoding(info: FileInfo) -> str:
    """utf-8 when the first megabyte decodes as UTF-8, utf-16 with its BOM, else latin-1."""
    opener = gzip.open if info.gzip else open
    with opener(info.path, "rb") as fh:  # type: ignore[operator]
        sample = fh.read(SNIFF_BYTES)
    if sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    try:
        sample.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError as exc:
        if exc.start >= len(sample) - 4:  # a character cut by the sample's end
            return "utf-8"
        return "latin-1"


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def file_sha256_later(path: Path) -> Callable[[], str]:
    """Start hashing `path` in a thread (hashlib releases the GIL) while the engine parses it;
    the returned function waits for the checksum. Hashing an 844 MiB export takes ~0.9 s."""
    result: list[str | BaseException] = []

    def work() -> None:
        try:
            result.append(file_sha256(path))
        except BaseException as exc:  # re-raised in the caller's thread
            result.append(exc)

    thread = threading.Thread(target=work, name="cxlens-sha256", daemon=True)
    thread.start()

    def wait() -> str:
        thread.join()
        if isinstance(result[0], BaseException):
            raise result[0]
        return result[0]

    return wait


def _sql_str(value: Any) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def source_sql(info: FileInfo, options: dict[str, Any], rejects: str) -> str:
    """A SELECT over the file in file order; CSV lines the parser cannot split land in `rejects`."""
    path = _sql_str(info.path)
    if info.format == "parquet":
        return f"SELECT * FROM read_parquet({path})"
    if info.format in ("json", "ndjson"):
        fmt = "newline_delimited" if info.format == "ndjson" else "auto"
        return (
            f"SELECT * FROM read_json({path}, format={_sql_str(fmt)}, "
            "union_by_name=true, maximum_object_size=16777216)"
        )
    args = [
        "all_varchar=true",
        f"header={'true' if options.get('header', True) else 'false'}",
        "store_rejects=true",
        f"rejects_table={_sql_str(rejects)}",
        f"rejects_scan={_sql_str(rejects + '_scan')}",
        "rejects_limit=0",
        f"encoding={_sql_str(options.get('encoding') or sniff_encoding(info))}",
        "max_line_size=10000000",
        "null_padding=false",
    ]
    if info.gzip:
        args.append("compression='gzip'")
    if options.get("delimiter"):
        args.append(f"delim={_sql_str(options['delimiter'])}")
    if options.get("quote"):
        args.append(f"quote={_sql_str(options['quote'])}")
    if options.get("escape"):
        args.append(f"escape={_sql_str(options['escape'])}")
    if options.get("skip"):
        args.append(f"skip={int(options['skip'])}")
    return f"SELECT * FROM read_csv({path}, {', '.join(args)})"


def first_data_line(info: FileInfo, options: dict[str, Any]) -> int:
    """Line number of the first data row: after the header (CSV) or 1."""
    if info.format != "csv":
        return 1
    return 1 + int(options.get("skip") or 0) + (1 if options.get("header", True) else 0)
