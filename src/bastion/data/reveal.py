"""Reveal protected columns: detokenize AES-SIV tokens and decrypt AES-GCM values with the project's keys.

Only ``tokenize`` and ``encrypt`` (and tokens inside free text) can be reversed; everything else is refused.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from bastion.crypto._util import b64d
from bastion.crypto.aead import CellCipher
from bastion.crypto.keys import Keyring
from bastion.crypto.tokenize import Tokenizer
from bastion.data.protect._plan import METADATA_KEY
from bastion.data.protect.operators import TOKEN_IN_TEXT
from bastion.errors import DataError, KeyManagementError

__all__ = ["RevealResult", "protection_metadata", "reveal_file", "reveal_table"]

log = logging.getLogger("bastion.data.reveal")


@dataclass(frozen=True)
class RevealResult:
    """What reveal did (column names and counts only); ``table`` holds the revealed rows when not written."""

    source: str
    columns: tuple[str, ...]
    rows: int
    output: str | None
    key_ids: tuple[str, ...]
    table: pa.Table | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": 1,
            "source": self.source,
            "columns": list(self.columns),
            "rows": self.rows,
            "output": self.output,
            "key_ids": list(self.key_ids),
        }


def protection_metadata(schema: pa.Schema) -> dict[str, Any]:
    """The protection record Bastion stored in a protected table's schema."""
    raw = (schema.metadata or {}).get(METADATA_KEY.encode())
    if raw is None:
        raise DataError(
            "This table carries no Bastion protection record; it was not written by "
            "`bastion data protect`, so there is nothing to reveal."
        )
    try:
        doc: dict[str, Any] = json.loads(raw)
    except ValueError as e:
        raise DataError(f"The table's protection record is corrupted ({e}).") from e
    if doc.get("schema_version") != 1:
        raise DataError(f"Unsupported protection record version {doc.get('schema_version')!r}.")
    return doc


def _check_columns(meta: dict[str, Any], schema: pa.Schema, columns: Sequence[str]) -> None:
    for c in columns:
        if c not in schema.names:
            raise DataError(f"Column '{c}' is not in the table; columns are {schema.names}.")
        entry = meta["columns"].get(c)
        if entry is None:
            raise DataError(f"Column '{c}' was not protected; nothing to reveal.")
        op, scope = entry["operator"], entry["scope"]
        if scope == "spans":
            continue
        if op not in ("tokenize", "encrypt"):
            raise DataError(
                f"Column '{c}' was protected with '{op}', which cannot be reversed; only tokenize "
                "and encrypt can be revealed."
            )


def _restore_type(values: list[str | None], type_str: str, column: str) -> pa.Array:
    arr = pa.array(values, pa.string())
    if type_str in ("string", "large_string", "string_view", "utf8"):
        return arr
    try:
        return arr.cast(_parse_type(type_str))
    except (pa.ArrowException, ValueError) as e:
        raise DataError(f"Revealed values of column '{column}' do not cast back to {type_str} ({e}).") from e


def _parse_type(type_str: str) -> pa.DataType:
    simple: dict[str, pa.DataType] = {
        "int8": pa.int8(),
        "int16": pa.int16(),
        "int32": pa.int32(),
        "int64": pa.int64(),
        "uint8": pa.uint8(),
        "uint16": pa.uint16(),
        "uint32": pa.uint32(),
        "uint64": pa.uint64(),
        "float": pa.float32(),
        "double": pa.float64(),
        "halffloat": pa.float16(),
        "bool": pa.bool_(),
        "date32[day]": pa.date32(),
        "date64[ms]": pa.date64(),
        "binary": pa.binary(),
        "large_binary": pa.large_binary(),
    }
    if type_str in simple:
        return simple[type_str]
    if type_str.startswith("timestamp["):
        inner = type_str[len("timestamp[") : -1].split(",")
        tz = inner[1].strip().removeprefix("tz=") if len(inner) > 1 else None
        return pa.timestamp(inner[0].strip(), tz=tz)
    raise ValueError(f"unsupported type {type_str}")


def _reveal_column(
    arr: pa.Array, column: str, entry: dict[str, Any], keyring: Keyring, cache: dict[str, Any]
) -> pa.Array:
    key_id = entry.get("key_id")
    if not key_id:
        raise DataError(f"Column '{column}' records no key id; it cannot be revealed.")
    if key_id not in cache:
        cache[key_id] = keyring.get(key_id)
    key = cache[key_id]
    op, scope, type_str = entry["operator"], entry["scope"], entry["type"]
    cells: list[str | None] = arr.to_pylist()
    if scope == "spans":
        tokenizers: dict[str, Tokenizer] = {}

        def sub(m: Any) -> str:
            domain = "default"
            tok = tokenizers.setdefault(domain, Tokenizer(key.material, key_id=key.key_id, domain=domain))
            return tok.detokenize(b64d(m.group("token"), what="token")).decode("utf-8")

        return pa.array([None if c is None else TOKEN_IN_TEXT.sub(sub, c) for c in cells], pa.string())
    idx = [i for i, c in enumerate(cells) if c is not None]
    blobs = [b64d(cells[i] or "", what=f"value in column '{column}'") for i in idx]
    if op == "tokenize":
        plain = Tokenizer(
            key.material, key_id=key.key_id, domain=entry.get("domain", "default")
        ).detokenize_many(blobs)
    else:
        plain = CellCipher(key.material, key_id=key.key_id).decrypt_many(blobs, column=column)
    out: list[Any] = [None] * len(cells)
    if type_str in ("binary", "large_binary"):
        for i, p in zip(idx, plain, strict=True):
            out[i] = p
        return pa.array(out, pa.binary()).cast(_parse_type(type_str))
    try:
        for i, p in zip(idx, plain, strict=True):
            out[i] = p.decode("utf-8")
    except UnicodeDecodeError as e:
        raise KeyManagementError(
            f"A revealed value of column '{column}' is not text; the data is corrupted."
        ) from e
    return _restore_type(out, type_str, column)


def reveal_table(table: pa.Table, columns: Sequence[str], keyring: Keyring) -> pa.Table:
    """A copy of ``table`` with ``columns`` revealed (original values and types)."""
    meta = protection_metadata(table.schema)
    _check_columns(meta, table.schema, columns)
    cache: dict[str, Any] = {}
    table = table.combine_chunks()
    for c in columns:
        arr = table.column(c).chunk(0) if table.column(c).num_chunks else pa.array([], pa.string())
        revealed = _reveal_column(arr, c, meta["columns"][c], keyring, cache)
        table = table.set_column(table.schema.get_field_index(c), c, revealed)
    remaining = {k: v for k, v in meta["columns"].items() if k not in columns}
    new_meta = dict(table.schema.metadata or {})
    new_meta[METADATA_KEY.encode()] = json.dumps(
        {"schema_version": 1, "columns": remaining}, sort_keys=True
    ).encode()
    return table.replace_schema_metadata(new_meta)


class _RevealBatch:
    def __init__(self, columns: Sequence[str], keyring: Keyring, schema: pa.Schema) -> None:
        self.columns = list(columns)
        self.keyring = keyring
        self.schema = schema

    def __call__(self, batch: pa.RecordBatch) -> tuple[pa.RecordBatch, None]:
        table = pa.Table.from_batches([batch]).replace_schema_metadata(self.schema.metadata)
        out = reveal_table(table, self.columns, self.keyring)
        return out.to_batches()[0], None


def reveal_file(
    path: Path | str,
    columns: Sequence[str],
    *,
    keyring: Keyring,
    output: Path | str | None = None,
    limit: int | None = None,
) -> RevealResult:
    """Reveal ``columns`` of a protected Parquet file into ``output`` (streamed) or memory (``limit``)."""
    from bastion.engine import LocalEngine, open_source

    src = Path(path)
    source = open_source(src)
    meta = protection_metadata(source.schema)
    _check_columns(meta, source.schema, columns)
    if not columns:
        raise DataError("Name at least one column to reveal (--columns).")
    key_ids = tuple(sorted({str(meta["columns"][c]["key_id"]) for c in columns}))
    for k in key_ids:  # fail on a wrong key before reading any data
        keyring.get(k)
    if output is not None:
        out = Path(output)
        if out.resolve() == src.resolve():
            raise DataError("The output of reveal must not be the protected input file.")
        fn = _RevealBatch(columns, keyring, source.schema)
        remaining = {k: v for k, v in meta["columns"].items() if k not in columns}
        stats = LocalEngine().map_batches(
            src,
            fn,
            out,
            metadata={METADATA_KEY: json.dumps({"schema_version": 1, "columns": remaining}, sort_keys=True)},
        )
        os.chmod(out, 0o600)  # revealed values are the raw personal data: the owner's only
        log.info("revealed %d column(s) of %s into %s", len(columns), src, out)
        return RevealResult(str(src), tuple(columns), stats.rows, str(out), key_ids)
    pf = pq.ParquetFile(src)
    batches = []
    got = 0
    for b in pf.iter_batches(batch_size=min(limit or 65_536, 65_536)):
        batches.append(b)
        got += b.num_rows
        if limit is not None and got >= limit:
            break
    table = (
        pa.Table.from_batches(batches, schema=pf.schema_arrow) if batches else pf.schema_arrow.empty_table()
    )
    if limit is not None:
        table = table.slice(0, limit)
    revealed = reveal_table(table, columns, keyring)
    return RevealResult(str(src), tuple(columns), revealed.num_rows, None, key_ids, revealed)
