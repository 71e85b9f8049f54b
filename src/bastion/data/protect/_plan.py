"""A protection plan: the operator per column plus the derived keys, as one picklable batch function.

Engines ship the plan to workers; ciphers are rebuilt there from key bytes and never pickled themselves.
"""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from bastion.crypto.aead import CellCipher
from bastion.crypto.tokenize import KeyedHasher, Tokenizer
from bastion.data.protect import operators as ops
from bastion.data.protect.policy import Policy, Rule
from bastion.errors import DataError

__all__ = ["METADATA_KEY", "ColumnAction", "ProtectionPlan"]

METADATA_KEY = "bastion.protection"


@dataclass(frozen=True)
class ColumnAction:
    """What happens to one column."""

    column: str
    rule: Rule
    scope: str  # "cell" or "spans"
    entity: str | None = None
    confidence: float | None = None
    masked_examples: tuple[str, ...] = ()
    reason: str = ""


@dataclass
class ProtectionPlan:
    """Apply to a ``pa.RecordBatch``; returns the protected batch and partial results for the report."""

    actions: dict[str, ColumnAction]
    policy: Policy
    quasi_identifiers: tuple[str, ...] = ()
    token_key: tuple[str, bytes] | None = field(default=None, repr=False)
    encrypt_key: tuple[str, bytes] | None = field(default=None, repr=False)
    detector: Any = None
    linker: Any = None
    kanon: Any = None
    #: re-scan the output for identifiers that survived (the residual check)
    residual_check: bool = True
    _cache: dict[str, Any] = field(default_factory=dict, repr=False)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_cache"] = {}
        return state

    # keys -------------------------------------------------------------
    def _tokenizer(self, domain: str) -> Tokenizer:
        key = f"tok:{domain}"
        if key not in self._cache:
            if self.token_key is None:
                raise DataError("Tokenizing needs the project's tokenization key; none was loaded.")
            self._cache[key] = Tokenizer(self.token_key[1], key_id=self.token_key[0], domain=domain)
        tok: Tokenizer = self._cache[key]
        return tok

    def _hasher(self, domain: str) -> KeyedHasher:
        key = f"hash:{domain}"
        if key not in self._cache:
            if self.token_key is None:
                raise DataError("Hashing needs the project's tokenization key; none was loaded.")
            self._cache[key] = KeyedHasher(self.token_key[1], key_id=self.token_key[0], domain=domain)
        h: KeyedHasher = self._cache[key]
        return h

    def _cipher(self) -> CellCipher:
        if "enc" not in self._cache:
            if self.encrypt_key is None:
                raise DataError("Encrypting needs the dataset's data key; none was loaded.")
            self._cache["enc"] = CellCipher(self.encrypt_key[1], key_id=self.encrypt_key[0])
        c: CellCipher = self._cache["enc"]
        return c

    def key_id_for(self, action: ColumnAction) -> str | None:
        op = action.rule.operator
        if op == "encrypt" and self.encrypt_key:
            return self.encrypt_key[0]
        if (op in ("tokenize", "hash") or action.scope == "spans") and self.token_key:
            return self.token_key[0]
        return None

    # metadata ---------------------------------------------------------
    def metadata(self, schema: pa.Schema) -> dict[str, str]:
        """What reveal needs (operators, key ids, original types), stored in the Parquet schema."""
        cols: dict[str, Any] = {}
        for name, a in self.actions.items():
            if a.rule.operator == "keep" and a.scope == "cell":
                continue
            entry: dict[str, Any] = {
                "operator": a.rule.operator,
                "scope": a.scope,
                "entity": a.entity,
                "type": str(schema.field(name).type),
                "key_id": self.key_id_for(a),
            }
            if a.rule.operator in ("tokenize", "hash"):
                entry["domain"] = str(a.rule.options.get("domain", "default"))
            cols[name] = entry
        doc = {"schema_version": 1, "columns": cols}
        return {METADATA_KEY: json.dumps(doc, sort_keys=True)}

    # the batch function ----------------------------------------------
    def __call__(self, batch: pa.RecordBatch) -> tuple[pa.RecordBatch, dict[str, Any]]:
        import time

        t0 = time.perf_counter()
        linked = self.linker.spans(batch) if self.linker else {}
        t_link = time.perf_counter() - t0
        names: list[str] = []
        arrays: list[pa.Array] = []
        spans: dict[str, dict[str, int]] = {}
        link_counts: dict[str, int] = {}
        unreadable: dict[str, int] = {}
        touched: dict[str, list[int]] = {}
        for name in batch.schema.names:
            arr = batch.column(name)
            action = self.actions.get(name)
            extra = linked.get(name)
            if extra is not None:
                link_counts[name] = sum(len(x) for x in extra)
            if action is None or (action.rule.operator == "keep" and action.scope == "cell"):
                if extra is not None and link_counts[name]:
                    ops.check_cell_sizes(arr, name, self.policy.max_cell_bytes)
                    arr = ops.protect_text_array(
                        arr, name, detect=_no_spans, rule_for=lambda e: self.policy.text_rule(e, None),
                        tokenizers=self._tokenizer, hashers=self._hasher,
                        counts=spans.setdefault(name, {}), extra=extra,
                    )  # fmt: skip
                names.append(name)
                arrays.append(arr)
                continue
            if action.rule.operator == "drop" and action.scope == "cell":
                continue
            ops.check_cell_sizes(arr, name, self.policy.max_cell_bytes)
            out = self._apply(action, arr, spans, extra, touched.setdefault(name, []))
            if action.rule.operator == "generalize":
                unreadable[name] = out.null_count - arr.null_count
            names.append(name)
            arrays.append(out)
        suppressed = 0
        if self.kanon is not None:
            general = self.kanon.generalised(batch)
            for q, values in general.items():
                if q in names and self.kanon.levels[q] != "raw":
                    arrays[names.index(q)] = pa.array(values.tolist(), pa.string())
            keep = self.kanon.keep_mask(general)
            if keep is not None and not keep.all():
                suppressed = int((~keep).sum())
                mask = pa.array(keep)
                arrays = [a.filter(mask) for a in arrays]
                batch = batch.filter(mask)
                touched = {c: _reindex(rows, keep) for c, rows in touched.items()}
        result = pa.RecordBatch.from_arrays(arrays, names=names)
        residual = self._residual(batch, result, touched) if self.residual_check else {}
        return result, {
            "rows": result.num_rows,
            "classes": self._classes(result),
            "spans": spans,
            "linked": link_counts,
            "unreadable": unreadable,
            "suppressed": suppressed,
            "residual": residual,
            "seconds_linkage": t_link,
            "seconds_total": time.perf_counter() - t0,
        }

    def _residual(
        self, raw: pa.RecordBatch, result: pa.RecordBatch, touched: dict[str, list[int]]
    ) -> dict[str, dict[str, int]]:
        """Identifiers left in the output: kept entity columns, and spans any detector or the row
        linkage still finds in text (placeholders and tokens excluded)."""
        out: dict[str, dict[str, int]] = {}
        for name, a in self.actions.items():
            if (
                a.scope == "cell"
                and a.entity
                and a.rule.operator == "keep"
                and name in result.schema.names
                and (self.kanon is None or name not in self.kanon.levels)
            ):
                n = len(result.column(name)) - result.column(name).null_count
                if n:
                    out.setdefault(name, {})[a.entity] = n
        text_cols = [n for n, a in self.actions.items() if a.scope == "spans" and n in result.schema.names]
        if text_cols:
            detect = self.detector
            if detect is None:
                detect = importlib.import_module("bastion.data.pii").detect_spans_batch
            for name in text_cols:
                cells = result.column(name).to_pylist()
                rows = [i for i in touched.get(name, []) if cells[i]]
                found = detect([cells[i] for i in rows]) if rows else []
                for i, sp in zip(rows, found, strict=True):
                    _count_residual(out, name, cells[i], sp)
        if self.linker:
            targets = {c: result.column(c) for c in self.linker.targets if c in result.schema.names}
            again = self.linker.spans(raw, columns=targets) if targets else {}
            for name, per_row in again.items():
                cells = targets[name].to_pylist() if name in targets else []
                for i, sp in enumerate(per_row):
                    if sp:
                        _count_residual(out, name, cells[i] or "", sp)
        return out

    def _apply(
        self,
        action: ColumnAction,
        arr: pa.Array,
        spans: dict[str, dict[str, int]],
        extra: list[list[Any]] | None = None,
        touched: list[int] | None = None,
    ) -> pa.Array:
        name, rule = action.column, action.rule
        opts = rule.options
        if action.scope == "spans":
            detect = self.detector
            if detect is None:
                detect = importlib.import_module("bastion.data.pii").detect_spans_batch
            counts: dict[str, int] = spans.setdefault(name, {})
            column_rule = rule if rule.operator != "keep" else None
            return ops.protect_text_array(
                arr,
                name,
                detect=detect,
                rule_for=lambda e: self.policy.text_rule(e, column_rule),
                tokenizers=self._tokenizer,
                hashers=self._hasher,
                counts=counts,
                extra=extra,
                touched=touched,
            )
        op = rule.operator
        if op == "redact":
            return ops.redact_array(arr, str(opts.get("placeholder") or f"<{action.entity or 'REDACTED'}>"))
        if op == "mask":
            return ops.mask_array(arr, name, keep=int(opts.get("keep", 4)), char=str(opts.get("char", "*")))
        if op == "hash":
            return ops.hash_array(arr, self._hasher(str(opts.get("domain", "default"))), name)
        if op == "tokenize":
            return ops.tokenize_array(arr, self._tokenizer(str(opts.get("domain", "default"))), name)
        if op == "encrypt":
            return ops.encrypt_array(arr, self._cipher(), name)
        if op == "generalize":
            to = opts.get("to") or _generalize_target(action, arr)
            return ops.generalize_array(arr, name, to=str(to), bands=opts.get("bands"))
        raise DataError(f"Unknown operator '{op}' for column '{name}'.")

    def _classes(self, batch: pa.RecordBatch) -> dict[tuple[Any, ...], int]:
        if not self.quasi_identifiers:
            return {}
        table = pa.Table.from_batches([batch]).select(list(self.quasi_identifiers))
        grouped = table.group_by(list(self.quasi_identifiers), use_threads=False).aggregate(
            [([], "count_all")]
        )
        keys = zip(*(grouped.column(q).to_pylist() for q in self.quasi_identifiers), strict=True)
        return dict(zip(keys, grouped.column("count_all").to_pylist(), strict=True))


def _no_spans(texts: list[str]) -> list[list[Any]]:
    return [[] for _ in texts]


def _reindex(rows: list[int], keep: Any) -> list[int]:
    import numpy as np

    new = np.cumsum(keep) - 1
    return [int(new[i]) for i in rows if keep[i]]


_PLACEHOLDER = re.compile(r"<[A-Z][A-Z0-9_]*(?:[:#][A-Za-z0-9_-]*)?>")


def _count_residual(out: dict[str, dict[str, int]], column: str, cell: str, spans: Any) -> None:
    holes = [m.span() for m in _PLACEHOLDER.finditer(cell)] if "<" in cell else []
    for sp in spans:
        if any(sp.start < e and sp.end > s for s, e in holes):
            continue
        col = out.setdefault(column, {})
        col[sp.entity] = col.get(sp.entity, 0) + 1


def _generalize_target(action: ColumnAction, arr: pa.Array) -> str:
    if action.entity == "DATE_OF_BIRTH" or pa.types.is_temporal(arr.type):
        return "year"
    if action.entity == "US_ZIP":
        return "zip3"
    if pa.types.is_integer(arr.type) or pa.types.is_floating(arr.type):
        return "band"
    raise DataError(
        f"Column '{action.column}': say what to generalize to (to: year|month|zip3|band) in the policy; "
        f"its type {arr.type} does not tell."
    )


def merge_partial(total: dict[str, Any], partial: Mapping[str, Any]) -> None:
    """Fold one batch's partial results into the running totals (order-independent)."""
    total["rows"] = total.get("rows", 0) + partial["rows"]
    classes: dict[Any, int] = total.setdefault("classes", {})
    for k, n in partial["classes"].items():
        classes[k] = classes.get(k, 0) + n
    spans: dict[str, dict[str, int]] = total.setdefault("spans", {})
    for col, counts in partial["spans"].items():
        dst = spans.setdefault(col, {})
        for e, n in counts.items():
            dst[e] = dst.get(e, 0) + n
    unreadable: dict[str, int] = total.setdefault("unreadable", {})
    for col, n in partial["unreadable"].items():
        unreadable[col] = unreadable.get(col, 0) + n
    linked: dict[str, int] = total.setdefault("linked", {})
    for col, n in partial.get("linked", {}).items():
        linked[col] = linked.get(col, 0) + n
    residual: dict[str, dict[str, int]] = total.setdefault("residual", {})
    for col, counts in partial.get("residual", {}).items():
        dst = residual.setdefault(col, {})
        for e, n in counts.items():
            dst[e] = dst.get(e, 0) + n
    for key in ("suppressed", "seconds_linkage", "seconds_total"):
        total[key] = total.get(key, 0) + partial.get(key, 0)
