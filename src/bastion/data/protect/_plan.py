"""A protection plan: the operator per column plus the derived keys, as one picklable batch function.

Engines ship the plan to workers; ciphers are rebuilt there from key bytes and never pickled themselves.
"""

from __future__ import annotations

import importlib
import json
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
        names: list[str] = []
        arrays: list[pa.Array] = []
        spans: dict[str, dict[str, int]] = {}
        unreadable: dict[str, int] = {}
        for name in batch.schema.names:
            arr = batch.column(name)
            action = self.actions.get(name)
            if action is None or (action.rule.operator == "keep" and action.scope == "cell"):
                names.append(name)
                arrays.append(arr)
                continue
            if action.rule.operator == "drop" and action.scope == "cell":
                continue
            ops.check_cell_sizes(arr, name, self.policy.max_cell_bytes)
            out = self._apply(action, arr, spans)
            if action.rule.operator == "generalize":
                unreadable[name] = out.null_count - arr.null_count
            names.append(name)
            arrays.append(out)
        result = pa.RecordBatch.from_arrays(arrays, names=names)
        return result, {
            "rows": batch.num_rows,
            "classes": self._classes(result),
            "spans": spans,
            "unreadable": unreadable,
        }

    def _apply(self, action: ColumnAction, arr: pa.Array, spans: dict[str, dict[str, int]]) -> pa.Array:
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
