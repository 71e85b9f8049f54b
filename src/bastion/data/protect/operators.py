"""Protection operators over whole Arrow columns: drop, redact, mask, hash, tokenize, encrypt, generalize.

Work is vectorized with pyarrow compute; deterministic operators touch each distinct value once per batch.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from bastion.crypto._packed import Packed
from bastion.crypto._util import b64e
from bastion.crypto.aead import CellCipher
from bastion.crypto.tokenize import KeyedHasher, Tokenizer
from bastion.errors import DataError

__all__ = [
    "as_binary",
    "check_cell_sizes",
    "encrypt_array",
    "generalize_array",
    "hash_array",
    "mask_array",
    "protect_text_array",
    "redact_array",
    "tokenize_array",
]

DEFAULT_BANDS = (0, 18, 30, 45, 65)


def _unsupported(arr: pa.Array, column: str, operator: str) -> DataError:
    return DataError(
        f"Column '{column}' has type {arr.type}, which '{operator}' cannot protect; expected strings, "
        "numbers, dates or booleans. Drop the column or flatten it first."
    )


def as_text(arr: pa.Array, column: str, operator: str) -> pa.Array:
    """The column as UTF-8 strings (numbers and dates in their canonical text form, which casts back)."""
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    t = arr.type
    if pa.types.is_string(t):
        return arr
    if pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return arr.cast(pa.string())
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t):
        raise _unsupported(arr, column, operator)
    if (
        pa.types.is_integer(t)
        or pa.types.is_floating(t)
        or pa.types.is_temporal(t)
        or pa.types.is_boolean(t)
        or pa.types.is_decimal(t)
    ):
        try:
            return arr.cast(pa.string())
        except pa.ArrowException as e:
            raise _unsupported(arr, column, operator) from e
    if pa.types.is_null(t):
        return pa.nulls(len(arr), pa.string())
    raise _unsupported(arr, column, operator)


def as_binary(arr: pa.Array, column: str, operator: str) -> pa.Array:
    """The column as bytes: UTF-8 text for text-like types, raw bytes for binary types."""
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    t = arr.type
    if pa.types.is_binary(t):
        return arr
    if pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t) or pa.types.is_binary_view(t):
        return arr.cast(pa.binary())
    return as_text(arr, column, operator).cast(pa.binary())


def check_cell_sizes(arr: pa.Array, column: str, limit: int) -> None:
    """Refuse cells above ``limit`` bytes with the column and row (never the value)."""
    t = arr.type
    if not (
        pa.types.is_string(t)
        or pa.types.is_large_string(t)
        or pa.types.is_binary(t)
        or pa.types.is_large_binary(t)
    ):
        return
    if len(arr) == 0 or arr.null_count == len(arr):
        return
    lengths = pc.binary_length(arr)
    biggest = pc.max(lengths).as_py()
    if biggest is not None and biggest > limit:
        row = pc.index(lengths, biggest).as_py()
        raise DataError(
            f"Column '{column}' row {row} holds a {biggest:,}-byte cell, above the limit of {limit:,} bytes. "
            "Raise protection.max_cell_bytes in the policy, or drop the column."
        )


def _strings_from(values: Sequence[str]) -> pa.Array:
    return pa.array(values, pa.string())


def _fill_nulls_back(valid: pa.Array, compact: pa.Array) -> pa.Array:
    """Spread ``compact`` (one value per valid row) back over rows, nulls where ``valid`` is false."""
    mask = np.asarray(valid.to_numpy(zero_copy_only=False), dtype=bool)
    if mask.all():
        return compact
    idx = np.cumsum(mask) - 1
    return compact.take(pa.array(idx, mask=~mask))


def _map_distinct(arr: pa.Array, fn: Callable[[list[bytes]], pa.Array]) -> pa.Array:
    """Apply ``fn`` to each distinct non-null value once and spread the results back (nulls stay null)."""
    enc = arr.dictionary_encode()
    mapped = fn(enc.dictionary.to_pylist())
    return mapped.take(enc.indices)


def _packed(arr: pa.Array) -> Packed:
    """The values of a binary array without nulls, sharing its buffers (no copy)."""
    if len(arr) == 0:
        return Packed(np.zeros(1, dtype=np.int64), np.empty(0, dtype=np.uint8))
    large = pa.types.is_large_binary(arr.type)
    _, offsets_buf, data_buf = arr.buffers()
    all_offsets = np.frombuffer(offsets_buf, dtype=np.int64 if large else np.int32)
    offsets = all_offsets[arr.offset : arr.offset + len(arr) + 1].astype(np.int64)
    data = np.frombuffer(data_buf, dtype=np.uint8) if data_buf is not None else np.empty(0, dtype=np.uint8)
    return Packed(offsets, data)


def _text_from_packed(values: Packed, column: str) -> pa.Array:
    """A string array over packed ASCII text (base64url outputs), without copying it."""
    if len(values.data) > np.iinfo(np.int32).max:
        raise DataError(
            f"Protected column '{column}' would hold {len(values.data):,} bytes in one batch, above Arrow's 2 GiB "
            "per string array. Lower protection.batch_rows in the policy."
        )
    offsets = values.offsets.astype(np.int32)
    return pa.Array.from_buffers(
        pa.string(), len(values), [None, pa.py_buffer(offsets), pa.py_buffer(np.ascontiguousarray(values.data))]
    )


def tokenize_array(arr: pa.Array, tokenizer: Tokenizer, column: str) -> pa.Array:
    """Deterministic AES-SIV tokens (base64url text); equal values give equal tokens.

    Each distinct value of the batch is tokenized once, all of them together (vectorized AES-SIV).
    """
    enc = as_binary(arr, column, "tokenize").dictionary_encode()
    tokens = _text_from_packed(tokenizer.tokenize_b64(_packed(enc.dictionary)), column)
    return tokens.take(enc.indices)


def hash_array(arr: pa.Array, hasher: KeyedHasher, column: str) -> pa.Array:
    """Keyed HMAC-SHA256 (hex) of each value."""
    raw = as_binary(arr, column, "hash")
    return _map_distinct(raw, lambda vs: _strings_from(hasher.hash_many(vs)))


def encrypt_array(arr: pa.Array, cipher: CellCipher, column: str) -> pa.Array:
    """Randomized AES-256-GCM of each value (base64url text); equal values give different ciphertexts."""
    raw = as_binary(arr, column, "encrypt")
    valid = raw.is_valid()
    values = raw.filter(valid) if raw.null_count else raw
    compact = _text_from_packed(cipher.encrypt_b64(_packed(values), column=column), column)
    return _fill_nulls_back(valid, compact)


def redact_array(arr: pa.Array, placeholder: str) -> pa.Array:
    """Every non-null cell becomes ``placeholder``."""
    return pc.if_else(arr.is_valid(), pa.scalar(placeholder, pa.string()), pa.scalar(None, pa.string()))


def mask_array(arr: pa.Array, column: str, *, keep: int = 4, char: str = "*") -> pa.Array:
    """All but the last ``keep`` characters become ``char``."""
    text = as_text(arr, column, "mask")
    length = pc.utf8_length(text)
    hidden = pc.max_element_wise(pc.subtract(length, keep), 0)
    stars = pc.binary_repeat(pa.scalar(char, pa.string()), hidden)
    if keep == 0:
        return pc.if_else(text.is_valid(), stars, pa.scalar(None, pa.string()))
    tail = pc.utf8_slice_codeunits(text, start=-keep)
    return pc.binary_join_element_wise(stars, tail, "")


_YEAR = r"(?P<y>(?:1[89]|20)\d\d)"


def generalize_array(
    arr: pa.Array, column: str, *, to: str, bands: Sequence[float] | None = None
) -> pa.Array:
    """Coarser values: dates to ``year`` or ``month``, ZIP codes to ``zip3``, numbers to ``band`` labels.

    Cells that cannot be read as the expected kind become null (counted by the caller).
    """
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    t = arr.type
    if to in ("year", "month"):
        fmt = "%Y" if to == "year" else "%Y-%m"
        if pa.types.is_date(t) or pa.types.is_timestamp(t):
            return pc.strftime(arr, format=fmt)
        text = as_text(arr, column, "generalize")
        iso = pc.extract_regex(text, rf"^\s*{_YEAR}-(?P<m>\d\d)")
        y = pc.struct_field(iso, "y")
        if to == "month":
            return pc.binary_join_element_wise(y, pc.struct_field(iso, "m"), "-")
        other = pc.struct_field(pc.extract_regex(text, rf"\b{_YEAR}\b"), "y")
        return pc.coalesce(y, other)
    if to == "zip3":
        if pa.types.is_integer(t):
            text = pc.utf8_lpad(arr.cast(pa.string()), width=5, padding="0")
        else:
            text = as_text(arr, column, "generalize")
        return pc.struct_field(pc.extract_regex(text, r"^\s*(?P<z>\d{3})\d{2}(?:\D|$)"), "z")
    if to == "band":
        return _bands(arr, column, tuple(bands or DEFAULT_BANDS))
    raise DataError(f"Cannot generalize column '{column}' to {to!r}.")


def _bands(arr: pa.Array, column: str, edges: tuple[float, ...]) -> pa.Array:
    try:
        num = arr.cast(pa.float64()) if not pa.types.is_floating(arr.type) else arr
    except pa.ArrowException as e:
        raise DataError(
            f"Column '{column}' cannot be generalized to age bands: its values are not numbers "
            f"(type {arr.type})."
        ) from e
    ints = all(float(e).is_integer() for e in edges)

    def fmt(v: float) -> str:
        return str(int(v)) if ints else f"{v:g}"

    labels = [f"<{fmt(edges[0])}"]
    for lo, hi in itertools.pairwise(edges):
        labels.append(f"{fmt(lo)}-{fmt(hi - 1)}" if ints else f"{fmt(lo)}-<{fmt(hi)}")
    labels.append(f"{fmt(edges[-1])}+")
    values = num.to_numpy(zero_copy_only=False)
    idx = np.digitize(np.nan_to_num(values, nan=0.0), np.asarray(edges, dtype=float))
    mask = np.asarray(num.is_null().to_numpy(zero_copy_only=False), dtype=bool) | np.isnan(values)
    return pa.array(labels, pa.string()).take(pa.array(idx, mask=mask))


# ---------------------------------------------------------------- free text

SpanDetector = Callable[[list[str]], list[list[Any]]]
TOKEN_IN_TEXT = re.compile(r"<(?P<entity>[A-Z][A-Z0-9_]*):(?P<token>[A-Za-z0-9_-]{22,})>")


def protect_text_array(
    arr: pa.Array,
    column: str,
    *,
    detect: SpanDetector,
    rule_for: Callable[[str], Any],
    tokenizers: Callable[[str], Tokenizer],
    hashers: Callable[[str], KeyedHasher],
    counts: dict[str, int],
    extra: Sequence[Sequence[Any]] | None = None,
    touched: list[int] | None = None,
) -> pa.Array:
    """Replace each detected span in free text by its entity's operator; other text is kept.

    ``rule_for(entity)`` gives the span's ``Rule``; ``counts`` gets the spans handled per entity.
    ``extra`` holds more spans per row (row linkage), merged with the detected ones (overlaps become
    their union); ``touched`` gets the rows that had any span.
    """
    from bastion.data.protect._linkage import merge_spans

    text = as_text(arr, column, "redact")
    cells = text.to_pylist()
    idx = [i for i, c in enumerate(cells) if c]
    if not idx:
        return text
    found = detect([cells[i] for i in idx])
    out: list[str | None] = list(cells)
    for i, spans in zip(idx, found, strict=True):
        more = extra[i] if extra is not None else ()
        if more:
            spans = merge_spans([*spans, *more])
        elif spans:
            spans = merge_spans(spans)
        if spans:
            out[i] = _rewrite(cells[i] or "", spans, rule_for, tokenizers, hashers, counts)
            if touched is not None:
                touched.append(i)
    return pa.array(out, pa.string())


def _rewrite(
    cell: str,
    spans: Sequence[Any],
    rule_for: Callable[[str], Any],
    tokenizers: Callable[[str], Tokenizer],
    hashers: Callable[[str], KeyedHasher],
    counts: dict[str, int],
) -> str:
    pieces: list[str] = []
    pos = 0
    for s in sorted(spans, key=lambda s: (s.start, -s.end)):
        if s.start < pos or s.end <= s.start:
            continue  # overlapping or empty span: the earlier, longer one already covers it
        value = cell[s.start : s.end]
        rule = rule_for(s.entity)
        pieces.append(cell[pos : s.start])
        pieces.append(_span_replacement(value, s.entity, rule, tokenizers, hashers))
        pos = s.end
        counts[s.entity] = counts.get(s.entity, 0) + 1
    pieces.append(cell[pos:])
    return "".join(pieces)


def _span_replacement(
    value: str,
    entity: str,
    rule: Any,
    tokenizers: Callable[[str], Tokenizer],
    hashers: Callable[[str], KeyedHasher],
) -> str:
    op = rule.operator
    opts: Mapping[str, Any] = rule.options
    if op == "keep":
        return value
    if op == "drop":
        return ""
    if op == "redact":
        return str(opts.get("placeholder") or f"<{entity}>")
    if op == "mask":
        keep = int(opts.get("keep", 4))
        char = str(opts.get("char", "*"))
        tail = value[-keep:] if keep else ""
        return char * max(len(value) - keep, 0) + tail
    if op == "tokenize":
        tok = tokenizers(str(opts.get("domain", "default"))).tokenize(value.encode("utf-8"))
        return f"<{entity}:{b64e(tok)}>"
    if op == "hash":
        return f"<{entity}#{hashers(str(opts.get('domain', 'default'))).hash(value.encode('utf-8'))[:16]}>"
    raise DataError(f"Operator '{op}' cannot apply to spans inside text.")
