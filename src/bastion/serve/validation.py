"""Request validation generated per served version from its training dataset's recorded schema and statistics.

One precompiled pydantic model per version: types, ranges (with a margin), categories, required fields,
no unknown fields, a batch size limit; plus cheap body-size and JSON-depth checks before parsing.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, NoReturn

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, create_model
from pydantic_core import from_json

from bastion.errors import ConfigError

__all__ = [
    "FeatureSpec",
    "InputSchema",
    "InvalidInput",
    "build_input_schema",
    "check_media",
    "feature_specs",
    "json_depth",
    "signature_specs",
]

_FLOAT_TYPES = ("double", "float", "halffloat", "float64", "float32", "float16", "decimal")
_INT_TYPES = ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64")
_STR_TYPES = ("string", "large_string", "utf8", "large_utf8", "string_view")
_QUOTE, _BACKSLASH = 34, 92
_OPENERS = (91, 123)  # [ {
_CLOSERS = (93, 125)  # ] }


_INT_MIN, _UINT_MAX = -(2**63), 2**64 - 1
# Bodies up to this size go straight to pydantic (at most a few hundred members: well under a millisecond
# even when every one is wrong); bigger ones are bounded and checked structurally first.
_SMALL_BODY = 4096
_ARRAY_ROWS = re.compile(rb'\A\s*\{\s*"instances"\s*:\s*\[\s*\[')  # {"instances": [[...
_CHUNK_ROWS = 64  # rows validated per pydantic call on the bounded path: errors stop piling up after one chunk
_COLON, _COMMA = 58, 44
_NOT_COUNTED = bytes(b for b in range(256) if b not in b'":,')
_STRUCTURE = b'"[]{}'
_NOT_STRUCTURE = bytes(b for b in range(256) if b not in _STRUCTURE)


def json_depth(body: bytes) -> int:
    """How deeply ``body``'s arrays and objects nest (0 for a scalar), vectorized with numpy.

    Brackets inside strings do not count; a quote preceded by an odd run of backslashes is escaped.
    """
    if b"\\" not in body:
        # No escapes: keep only quotes and brackets (one C pass) and count on what is left; a 100-row
        # body shrinks from ~50 kB to ~6 kB before numpy sees it.
        return _depth_unescaped(body.translate(None, _NOT_STRUCTURE))
    return _depth_scan(body)


def _depth_scan(body: bytes) -> int:
    """:func:`json_depth` over every byte (any body, escapes included)."""
    arr = np.frombuffer(body, dtype=np.uint8)
    if arr.size == 0:
        return 0
    quote = arr == _QUOTE
    if _BACKSLASH in arr:
        bs = arr == _BACKSLASH
        idx = np.arange(arr.size)
        # length of the backslash run ending just before each position
        last_other = np.maximum.accumulate(np.where(bs, -1, idx))
        run_before = np.empty(arr.size, dtype=np.int64)
        run_before[0] = 0
        run_before[1:] = (idx[:-1] - last_other[:-1]) * bs[:-1]
        quote &= (run_before % 2) == 0
    outside = (np.cumsum(quote) & 1) == 0
    opens = ((arr == _OPENERS[0]) | (arr == _OPENERS[1])) & outside
    closes = ((arr == _CLOSERS[0]) | (arr == _CLOSERS[1])) & outside
    steps = opens.astype(np.int32) - closes.astype(np.int32)
    return max(0, int(np.cumsum(steps).max()))


def _depth_unescaped(structure: bytes) -> int:
    arr = np.frombuffer(structure, dtype=np.uint8)
    if arr.size == 0:
        return 0
    outside = (np.cumsum(arr == _QUOTE, dtype=np.int32) & 1) == 0  # an unclosed string runs to the end
    steps = ((arr == _OPENERS[0]) | (arr == _OPENERS[1])).astype(np.int32) - (
        (arr == _CLOSERS[0]) | (arr == _CLOSERS[1])).astype(np.int32)
    return max(0, int(np.cumsum(steps * outside, dtype=np.int32).max()))


def _structural_counts(body: bytes) -> tuple[int, int]:
    """Colons and commas outside JSON strings (escaped quotes handled), vectorized with numpy."""
    # Without escapes, only quotes, colons and commas matter (one C pass drops the rest); with escapes,
    # every byte stays, since dropping the escaped character would pair a backslash with the next quote.
    arr = np.frombuffer(body if b"\\" in body else body.translate(None, _NOT_COUNTED), dtype=np.uint8)
    if arr.size == 0:
        return 0, 0
    quote = arr == _QUOTE
    if _BACKSLASH in arr:
        bs = arr == _BACKSLASH
        idx = np.arange(arr.size)
        last_other = np.maximum.accumulate(np.where(bs, -1, idx))
        run_before = np.zeros(arr.size, dtype=np.int64)
        run_before[1:] = (idx[:-1] - last_other[:-1]) * bs[:-1]
        quote &= (run_before % 2) == 0
    outside = (np.cumsum(quote, dtype=np.int64) & 1) == 0
    return int(np.count_nonzero((arr == _COLON) & outside)), int(np.count_nonzero((arr == _COMMA) & outside))


_JSON_MEDIA = re.compile(r"application/(?:[a-z0-9.+-]+\+)?json", re.IGNORECASE)
_UTF8 = re.compile(r'"?utf-?8"?', re.IGNORECASE)


def check_media(content_type: str | None, content_encoding: str | None) -> None:
    """Refuse (415) a body that is not plain UTF-8 JSON as declared by its headers: another media type
    (``text/plain``, a form, ``multipart``: what a filter that inspects JSON would let through unread), another
    charset, or any ``Content-Encoding`` (a compressed body is never inflated, so no decompression bomb).
    No ``Content-Type`` at all is read as JSON."""
    if content_encoding is not None and content_encoding.strip().lower() not in ("", "identity"):
        raise InvalidInput(415, f"Content-Encoding {content_encoding.strip()[:40]!r} is not accepted: "
                                "send the JSON body uncompressed.")
    if content_type is None:
        return
    media, _, params = content_type.partition(";")
    if not _JSON_MEDIA.fullmatch(media.strip()):
        raise InvalidInput(415, f"Content-Type {media.strip()[:60]!r} is not accepted: send application/json.")
    for param in params.split(";"):
        k, _, v = param.partition("=")
        if k.strip().lower() == "charset" and not _UTF8.fullmatch(v.strip()):
            raise InvalidInput(415, f"charset {v.strip()[:40]!r} is not accepted: JSON bodies are UTF-8.")


@dataclass(frozen=True)
class FeatureSpec:
    """One input field: its JSON type and what training saw."""

    name: str
    kind: Literal["number", "integer", "string", "boolean"]
    nullable: bool = False
    min: float | None = None
    max: float | None = None
    categories: tuple[str, ...] | None = None
    sensitive: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "kind": self.kind, "nullable": self.nullable, "min": self.min, "max": self.max,
            "categories": list(self.categories) if self.categories is not None else None, "sensitive": self.sensitive,
        }


def _kind(arrow_type: str) -> Literal["number", "integer", "string", "boolean"] | None:
    t = arrow_type.strip()
    if t.startswith("dictionary<values="):
        t = t[len("dictionary<values=") :].split(",")[0]
    if t in _FLOAT_TYPES or t.startswith("decimal"):
        return "number"
    if t in _INT_TYPES:
        return "integer"
    if t in _STR_TYPES:
        return "string"
    if t == "bool":
        return "boolean"
    return None


def feature_specs(
    schema: Sequence[Mapping[str, Any]],
    stats: Mapping[str, Mapping[str, Any]],
    features: Sequence[str],
    *,
    margin: float = 0.1,
    sensitive: Sequence[str] = (),
    enforce_ranges: bool = True,
    enforce_categories: bool = True,
) -> list[FeatureSpec]:
    """Specs for ``features`` from a dataset version's ``schema`` and ``stats``.

    Numeric ranges are the training min/max widened by ``margin`` times the observed range (or times
    the value when the column was constant). A column that had nulls in training accepts null.
    """
    if margin < 0 or not math.isfinite(margin):
        raise ConfigError(f"The range margin must be a finite number >= 0; got {margin}.")
    by_name = {str(f["name"]): f for f in schema}
    out: list[FeatureSpec] = []
    for name in features:
        if name not in by_name:
            raise ConfigError(
                f"The model expects input '{name}', which its training dataset does not record; "
                "cannot build input validation. Register the model with the dataset it was trained on."
            )
        kind = _kind(str(by_name[name].get("type", "")))
        if kind is None:
            raise ConfigError(
                f"Input '{name}' has type {by_name[name].get('type')!r}, which the server cannot validate "
                "(numbers, integers, strings and booleans are supported)."
            )
        st = stats.get(name) or {}
        nullable = bool(st.get("nulls")) if "nulls" in st else bool(by_name[name].get("nullable", False))
        lo = hi = None
        if kind in ("number", "integer") and enforce_ranges:
            mn, mx = st.get("min"), st.get("max")
            if isinstance(mn, int | float) and isinstance(mx, int | float) and not isinstance(mn, bool):
                width = float(mx) - float(mn)
                pad = margin * (width if width > 0 else max(abs(float(mn)), 1.0))
                lo, hi = float(mn) - pad, float(mx) + pad
                if kind == "integer":
                    lo, hi = math.floor(lo), math.ceil(hi)
        cats = None
        if kind == "string" and enforce_categories and st.get("categories") is not None:
            raw = st["categories"]
            cats = tuple(sorted(str(c) for c in (raw.keys() if isinstance(raw, Mapping) else raw)))
        out.append(FeatureSpec(name, kind, nullable, lo, hi, cats, name in sensitive))
    return out


# What a JSON value may be for each declared element type: the element type's own range (float32 overflows to
# inf above 3.4e38; integers stay exact in the float64 matrix only up to 2**53).
_F32_MAX = float(np.finfo(np.float32).max)
_F16_MAX = float(np.finfo(np.float16).max)
_EXACT_INT = 2**53
_ELEMENT_KINDS: dict[str, tuple[Literal["number", "integer", "string", "boolean"], float | None, float | None]] = {
    "double": ("number", None, None), "float": ("number", -_F32_MAX, _F32_MAX),
    "float16": ("number", -_F16_MAX, _F16_MAX),
    "int64": ("integer", -_EXACT_INT, _EXACT_INT), "uint64": ("integer", 0, _EXACT_INT),
    "int32": ("integer", -(2**31), 2**31 - 1), "uint32": ("integer", 0, 2**32 - 1),
    "int16": ("integer", -(2**15), 2**15 - 1), "uint16": ("integer", 0, 2**16 - 1),
    "int8": ("integer", -128, 127), "uint8": ("integer", 0, 255),
    "string": ("string", None, None), "bool": ("boolean", None, None),
}


def signature_specs(ref: str, flavor_docs: Sequence[Mapping[str, Any]]) -> list[FeatureSpec]:
    """Specs of a version registered without a dataset, from the input fields its registration recorded (names
    and element types from the model's signature): types and the element type's range; no training ranges."""
    doc = flavor_docs[-1] if flavor_docs else {}
    fields = doc.get("inputs")
    if not isinstance(fields, list) or not fields:
        raise ConfigError(
            f"{ref} records no training dataset and no input signature, so the server cannot validate requests. "
            "Register the model with its training dataset (--dataset NAME:VERSION), or, for an ONNX, XGBoost or "
            "LightGBM model, register it again so its signature is recorded."
        )
    out: list[FeatureSpec] = []
    for f in fields:
        if not isinstance(f, Mapping) or not isinstance(f.get("name"), str) or f.get("type") not in _ELEMENT_KINDS:
            raise ConfigError(f"{ref}: the recorded input signature has a field the server cannot validate: "
                              f"{str(f)[:120]} (numbers, integers, strings and booleans are supported).")
        kind, lo, hi = _ELEMENT_KINDS[str(f["type"])]
        out.append(FeatureSpec(str(f["name"]), kind, False, lo, hi))
    return out


def _field_type(spec: FeatureSpec) -> Any:
    t: Any
    if spec.kind == "number":
        t = Annotated[float, Field(strict=True, allow_inf_nan=False, ge=spec.min, le=spec.max)]
    elif spec.kind == "integer":
        # Without a recorded range, still no wider than the column's widest type (int64 / uint64): JSON
        # integers are unbounded, and 10**400 would fail the float matrix (a 500) instead of validation.
        lo = _INT_MIN if spec.min is None else int(spec.min)
        hi = _UINT_MAX if spec.max is None else int(spec.max)
        t = Annotated[int, Field(strict=True, ge=lo, le=hi)]
    elif spec.kind == "boolean":
        t = Annotated[bool, Field(strict=True)]
    elif spec.categories is not None:
        t = Literal[spec.categories] if spec.categories else Annotated[str, Field(max_length=0)]
    else:
        t = Annotated[str, Field(strict=True, max_length=10_000)]
    return t | None if spec.nullable else t


def _raise_unreadable(detail: str) -> NoReturn:
    """A body the JSON parser refused: 422 for a number beyond what any field can hold (a literal of more than
    4,300 digits, Python's integer limit: valid JSON, a wrong value), else 400 (not JSON at all)."""
    if "number out of range" in detail:
        raise InvalidInput(422, "1 field error(s) in the request body.", [
            {"loc": [], "type": "number_out_of_range", "msg": "A number in the body has too many digits"}])
    raise InvalidInput(400, "The request body is not valid JSON.")


_PLAIN_KEY = re.compile(r"[A-Za-z0-9_-]{1,64}")


def _shown_loc(loc: list[Any], kind: str) -> list[Any]:
    """The error location as answered: an unknown key is named only when it reads like a field name (a typo such as
    'colour'); anything else the caller put in a key (an e-mail address, markup, a long string) is not echoed."""
    if kind == "extra_forbidden" and loc and isinstance(loc[-1], str) and not _PLAIN_KEY.fullmatch(loc[-1]):
        return [*loc[:-1], "(unknown key)"]
    return loc


def _refuse_duplicate_keys(body: bytes, expected: int) -> None:
    """A body that validated has exactly ``expected`` keys (every field is required, no other is allowed), so
    more colons outside strings means a repeated key, which parsers resolve differently (the last wins here,
    the first in others): refused rather than guessed."""
    if body.count(b":") != expected and _structural_counts(body)[0] != expected:
        raise InvalidInput(422, "1 field error(s) in the request body.", [
            {"loc": [], "type": "duplicate_key", "msg": "A key appears more than once in one object"}])


@dataclass
class InvalidInput(Exception):
    """A request body that does not fit; ``status`` is 400 (unreadable), 413 (too big) or 422 (wrong fields)."""

    status: int
    message: str
    errors: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"error": "invalid_input", "message": self.message, "errors": self.errors}


class InputSchema:
    """The precompiled validator of one served version's request bodies (``{"instances": [...]}``)."""

    def __init__(
        self,
        specs: Sequence[FeatureSpec],
        *,
        model_name: str = "model",
        max_rows: int = 1000,
        max_depth: int = 8,
    ) -> None:
        if max_rows < 1:
            raise ConfigError(f"max_rows must be >= 1; got {max_rows}.")
        self.specs = tuple(specs)
        self.features = tuple(s.name for s in specs)
        self.sensitive = frozenset(s.name for s in specs if s.sensitive)
        # What the prediction log may record: (column, index in a row, kind); protected fields never appear.
        self.log_columns: tuple[tuple[str, int, str], ...] = tuple(
            (f"in.{s.name}", i, s.kind) for i, s in enumerate(self.specs) if not s.sensitive)
        self.max_rows = max_rows
        self.max_depth = max_depth
        self.all_numeric = all(s.kind in ("number", "integer") and not s.nullable for s in specs)
        safe = re.sub(r"[^A-Za-z0-9_]", "_", model_name)
        # Field names may not be Python identifiers (or may clash with BaseModel); alias them.
        fields: dict[str, Any] = {}
        for i, s in enumerate(self.specs):
            fields[f"x{i}"] = (_field_type(s), Field(..., alias=s.name))
        self.row_model: type[BaseModel] = create_model(
            f"{safe}_Instance",
            __config__=ConfigDict(extra="forbid", allow_inf_nan=False, populate_by_name=False),
            **fields,
        )
        instances: Any = Annotated[list[self.row_model], Field(min_length=1, max_length=max_rows)]  # type: ignore[name-defined]
        self.body_model: type[BaseModel] = create_model(
            f"{safe}_PredictRequest", __config__=ConfigDict(extra="forbid"), instances=(instances, ...)
        )
        self._rows_adapter: TypeAdapter[list[Any]] = TypeAdapter(list[self.row_model])  # type: ignore[name-defined]
        # The same body with each row as an array in the declared input order.
        row_tuple: Any = tuple.__class_getitem__(tuple(_field_type(sp) for sp in self.specs))
        arrays: Any = Annotated[list[row_tuple], Field(min_length=1, max_length=max_rows)]
        self.array_body_model: type[BaseModel] = create_model(
            f"{safe}_PredictArrayRequest", __config__=ConfigDict(extra="forbid"), instances=(arrays, ...)
        )
        self._array_rows_adapter: TypeAdapter[list[Any]] = TypeAdapter(list[row_tuple])
        self._feature_set = frozenset(self.features)
        # Members (keys or array items) a valid body can hold: every row's fields and the row itself.
        self.max_members = max_rows * (len(self.specs) + 1) + 16
        self.small_body = _SMALL_BODY
        self._attrs = tuple(f"x{i}" for i in range(len(self.specs)))
        getter = operator.attrgetter(*self._attrs)  # one C call per row instead of one getattr per field
        self._row = getter if len(self._attrs) > 1 else (lambda r: (getter(r),))

    def json_schema(self) -> dict[str, Any]:
        """The JSON Schema of a request body (for the OpenAPI document)."""
        return self.body_model.model_json_schema(by_alias=True)

    def parse(self, body: bytes) -> list[tuple[Any, ...]]:
        """Rows as tuples in feature order, or :class:`InvalidInput` (values never echoed back)."""
        if not body:
            raise InvalidInput(400, "The request body is empty; send {\"instances\": [{...}]}.")
        # Nesting cannot exceed the number of openers: most bodies skip the full scan.
        if body.count(b"[") + body.count(b"{") > self.max_depth and (depth := json_depth(body)) > self.max_depth:
            raise InvalidInput(400, f"The JSON body nests {depth} levels deep; at most {self.max_depth} are allowed.")
        if len(body) > self.small_body:
            return self._parse_bounded(body)
        arrays = _ARRAY_ROWS.search(body) is not None
        try:
            if arrays:  # rows as arrays in the declared input order: already tuples
                out = list(self.array_body_model.model_validate_json(body).instances)  # type: ignore[attr-defined]
                _refuse_duplicate_keys(body, 1)
                return out
            parsed = self.body_model.model_validate_json(body)
        except ValidationError as e:
            errs = e.errors(include_url=False, include_input=False, include_context=False)
            bad_json = [x for x in errs if x["type"] == "json_invalid"]
            if bad_json:
                _raise_unreadable(str(bad_json[0].get("msg", "")))
            out = []
            for x in errs[:50]:
                loc = _shown_loc([self._field_name(p) for p in x["loc"]], x["type"])
                if arrays:
                    loc = self._array_loc(loc)
                out.append({"loc": loc, "type": x["type"], "msg": x["msg"]})
            raise InvalidInput(422, f"{len(errs)} field error(s) in the request body.{self._hint(arrays)}",
                               out) from None
        instances = parsed.instances  # type: ignore[attr-defined]
        _refuse_duplicate_keys(body, 1 + len(instances) * len(self.specs))
        row = self._row
        return [row(r) for r in instances]

    def _parse_bounded(self, body: bytes) -> list[tuple[Any, ...]]:
        """Large bodies: refuse more members than a valid body can have before parsing (byte counts, then an
        exact count outside strings only if those are inconclusive), parse with one C call, refuse unknown or
        surplus keys row by row, then validate in chunks, so the cost of a request is bounded by what a
        valid body costs and never by how many errors it can provoke."""
        limit = self.max_members
        if (body.count(b":") > limit or body.count(b",") > limit) and max(_structural_counts(body)) > limit:
            raise InvalidInput(413, f"The JSON body has more members than {self.max_rows} rows of "
                                    f"{len(self.specs)} fields can; refused before parsing.")
        try:
            doc = from_json(body, allow_inf_nan=False)
        except ValueError as e:
            _raise_unreadable(str(e))
        if not isinstance(doc, dict) or not isinstance(doc.get("instances"), list) or len(doc) != 1:
            if isinstance(doc, dict) and len(doc) > 8:
                raise InvalidInput(422, "1 field error(s) in the request body.", [
                    {"loc": [], "type": "extra_forbidden", "msg": "Only 'instances' is allowed"}])
            self._raise(TypeAdapter(self.body_model), doc, ())
        rows = doc["instances"]
        if not rows or len(rows) > self.max_rows:
            raise InvalidInput(422, "1 field error(s) in the request body.", [
                {"loc": ["instances"], "type": "too_long" if rows else "too_short",
                 "msg": f"between 1 and {self.max_rows} rows are allowed; got {len(rows)}"}])
        nf, fset = len(self.specs), self._feature_set
        if isinstance(rows[0], list):  # rows as arrays in the declared input order
            arrays = self._parse_array_rows(rows)
            _refuse_duplicate_keys(body, 1)
            return arrays
        for i, r in enumerate(rows):
            if isinstance(r, dict) and (len(r) > nf or not r.keys() <= fset):
                key = next((k for k in r if k not in fset), "")
                raise InvalidInput(422, "1 field error(s) in the request body.", [
                    {"loc": _shown_loc(["instances", i, str(key)], "extra_forbidden"), "type": "extra_forbidden",
                     "msg": "Extra inputs are not permitted"}])
        out: list[tuple[Any, ...]] = []
        row = self._row
        for start in range(0, len(rows), _CHUNK_ROWS):
            chunk = rows[start:start + _CHUNK_ROWS]
            try:
                parsed = self._rows_adapter.validate_python(chunk)
            except ValidationError:
                self._raise(self._rows_adapter, chunk, ("instances",), start)
            out.extend(row(r) for r in parsed)
        _refuse_duplicate_keys(body, 1 + len(out) * nf)
        return out

    def _parse_array_rows(self, rows: list[Any]) -> list[tuple[Any, ...]]:
        nf = len(self.specs)
        for i, r in enumerate(rows):
            if isinstance(r, list) and len(r) > nf:
                raise InvalidInput(422, f"1 field error(s) in the request body.{self._hint(True)}", [
                    {"loc": ["instances", i], "type": "too_long", "msg": f"at most {nf} values are allowed"}])
        out: list[tuple[Any, ...]] = []
        for start in range(0, len(rows), _CHUNK_ROWS):
            chunk = rows[start:start + _CHUNK_ROWS]
            try:
                out.extend(self._array_rows_adapter.validate_python(chunk))
            except ValidationError:
                self._raise(self._array_rows_adapter, chunk, ("instances",), start, arrays=True)
        return out

    def _hint(self, arrays: bool) -> str:
        if not arrays:
            return ""
        return f" Arrays must hold {len(self.features)} values in this order: {', '.join(self.features)}."

    def _array_loc(self, loc: list[Any]) -> list[Any]:
        """An array position reads as the feature it stands for (``instances, row, position``)."""
        if len(loc) >= 3 and isinstance(loc[2], int) and 0 <= loc[2] < len(self.features):
            loc = [*loc[:2], self.features[loc[2]], *loc[3:]]
        return loc

    def _raise(self, validator: Any, value: Any, prefix: tuple[Any, ...], offset: int = 0, *,
               arrays: bool = False) -> Any:
        try:
            validator.validate_python(value)
        except ValidationError as e:
            errs = e.errors(include_url=False, include_input=False, include_context=False)
            out = []
            for x in errs[:50]:
                loc = list(x["loc"])
                if prefix and loc and isinstance(loc[0], int):
                    loc[0] += offset
                full = _shown_loc([*prefix, *(self._field_name(p) for p in loc)], x["type"])
                out.append({"loc": self._array_loc(full) if arrays else full, "type": x["type"], "msg": x["msg"]})
            raise InvalidInput(422, f"{len(errs)} field error(s) in the request body.{self._hint(arrays)}",
                               out) from None
        raise InvalidInput(422, "The request body does not fit the model's inputs.")  # pragma: no cover

    def _field_name(self, part: Any) -> Any:
        if isinstance(part, str) and part.startswith("x") and part[1:].isdigit():
            i = int(part[1:])
            if i < len(self.features):
                return self.features[i]
        return part

    def to_matrix(self, rows: list[tuple[Any, ...]], *, frame: bool = False) -> Any:
        """A float matrix (all-numeric schemas, unless ``frame``) or a DataFrame with the feature names."""
        if self.all_numeric and not frame:
            return np.array(rows, dtype=np.float64)
        import pandas as pd

        return pd.DataFrame.from_records(rows, columns=list(self.features))


def build_input_schema(
    specs: Sequence[FeatureSpec], *, model_name: str, max_rows: int = 1000, max_depth: int = 8
) -> InputSchema:
    """Compile the validator for a served version."""
    return InputSchema(specs, model_name=model_name, max_rows=max_rows, max_depth=max_depth)
