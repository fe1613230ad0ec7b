"""Vectorized text formatting of simulated values (timestamps, ids, strings) for the exports.

Exports hold millions of cells, so every helper here works on whole arrays through DuckDB or
Arrow compute kernels instead of formatting values one at a time in Python.
"""

from __future__ import annotations

from collections.abc import Sequence

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from cxlens.simulate.config import SimulationConfig

_con: duckdb.DuckDBPyConnection | None = None


def _duck() -> duckdb.DuckDBPyConnection:
    global _con
    if _con is None:
        _con = duckdb.connect()
        _con.execute("SET enable_progress_bar = false")
    return _con


def to_objects(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """An Arrow string array as a mutable numpy object array (None for null)."""
    return np.asarray(values.to_numpy(zero_copy_only=False), dtype=object)


def timestamps(cfg: SimulationConfig, seconds: np.ndarray) -> np.ndarray:
    """Simulated seconds since the start as UTC timestamps (whole seconds)."""
    return cfg.epoch + np.floor(np.asarray(seconds, dtype=np.float64)).astype("int64").astype("timedelta64[s]")


def format_time(cfg: SimulationConfig, seconds: np.ndarray, fmt: str) -> np.ndarray:
    """Seconds since the start rendered with a strftime format (NaN becomes None)."""
    secs = np.asarray(seconds, dtype=np.float64)
    missing = np.isnan(secs)
    ts = timestamps(cfg, np.where(missing, 0.0, secs))
    table = pa.table({"t": pa.array(ts, mask=missing)})
    con = _duck()
    con.register("_fmt_input", table)
    try:
        out = con.execute("SELECT strftime(t, ?) AS s FROM _fmt_input", [fmt]).to_arrow_table()
    finally:
        con.unregister("_fmt_input")
    return to_objects(out.column("s"))


def concat(*parts: np.ndarray | str) -> np.ndarray:
    """Element-wise string concatenation of arrays and literals (None anywhere gives None)."""
    arrays = [p if isinstance(p, str) else pa.array(np.asarray(p, dtype=object), type=pa.string()) for p in parts]
    return to_objects(pc.binary_join_element_wise(*arrays, ""))


def padded(prefix: str, numbers: np.ndarray, width: int) -> np.ndarray:
    """Identifiers such as C000123: a prefix and a zero-padded number."""
    text = pc.utf8_lpad(pc.cast(pa.array(np.asarray(numbers, dtype=np.int64)), pa.string()), width, "0")
    return to_objects(pc.binary_join_element_wise(prefix, text, ""))


def hex_ids(rng: np.random.Generator, n: int, prefix: str) -> np.ndarray:
    """Random-looking opaque ids (cookies, message ids): a prefix and 16 hex digits."""
    hi = rng.integers(0, 2**32, n, dtype=np.uint64)
    lo = rng.integers(0, 2**32, n, dtype=np.uint64)
    text = np.char.add(np.char.zfill(np.char.mod("%x", hi), 8), np.char.zfill(np.char.mod("%x", lo), 8))
    return np.char.add(prefix, text).astype(object)


def money(values: np.ndarray) -> np.ndarray:
    """Amounts rounded to cents (the shortest decimal text of the result is what gets written)."""
    return np.round(np.asarray(values, dtype=np.float64), 2)


def pick(rng: np.random.Generator, choices: Sequence[str], n: int, p: Sequence[float] | None = None) -> np.ndarray:
    """n draws from a small vocabulary, as an object array."""
    vocab = np.asarray(list(choices), dtype=object)
    idx = rng.choice(len(vocab), size=n, p=None if p is None else np.asarray(p) / np.sum(p))
    return vocab[idx]
