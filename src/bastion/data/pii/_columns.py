"""Column classification on a sample: value match share (vectorised over the sample), checksum pass
rate (inside each recognizer) and column-name evidence, with the decision explained."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bastion.data.pii.interface import ColumnFinding, Recognizer

__all__ = ["ColumnVerdict", "classify_column", "normalize_name", "to_text_values"]

#: a column is free text when its cells are this long and hold this many words on average
TEXT_MIN_CHARS = 16.0
TEXT_MIN_WORDS = 3.0
EXAMPLES = 3


@dataclass(frozen=True)
class ColumnVerdict:
    finding: ColumnFinding
    is_text: bool


def normalize_name(name: str) -> str:
    """``patientDOB`` / ``Patient-DOB`` -> ``patient_dob``: words joined by ``_`` for name hints."""
    s = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", str(name))
    s = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", s)
    return re.sub(r"[^0-9a-z]+", "_", s.lower()).strip("_")


def _hint(patterns: Sequence[str], norm: str) -> bool:
    # "\b" in hints means a word edge; "_" joins words in normalised names
    spaced = norm.replace("_", " ")
    return any(re.search(p, spaced) or re.search(p, norm) for p in patterns)


def to_text_values(raw: pd.Series) -> tuple[pd.Series | None, str | None]:
    """Non-empty cells as a stripped str Series (object dtype), or None and why the column is not looked at.

    Object dtype on purpose: on a sample, pandas' Arrow string path re-parses every regex per call
    and is slower than Python's cached `re` for a few thousand cells.
    """
    values, why = _text_values(raw)
    return (None if values is None else values.astype(object)), why


def _text_values(raw: pd.Series) -> tuple[pd.Series | None, str | None]:
    s = raw.dropna()
    dtype = raw.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return None, "boolean column"
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return s.dt.strftime("%Y-%m-%d").astype(object).astype(str), None
    if pd.api.types.is_integer_dtype(dtype):
        return s.astype("int64").astype(str), None
    if pd.api.types.is_float_dtype(dtype):
        if len(s) and bool(np.all(np.mod(s.to_numpy(), 1) == 0)) and bool(np.all(np.abs(s.to_numpy()) < 1e18)):
            return s.astype("int64").astype(str), None
        return None, "non-integer numeric column"
    if len(s) == 0:
        return s.astype(str), None
    if isinstance(dtype, pd.StringDtype):
        vals = s.str.strip()  # already text: no per-cell conversion (the same strip as below)
        return vals[vals != ""].astype(str), None
    # object columns may mix types (ints, dates, bytes): look at every cell as text
    vals = s.map(lambda v: v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v))
    vals = vals.str.strip()
    return vals[vals != ""].astype(str), None


def classify_column(name: str, raw: pd.Series, recs: Sequence[Recognizer]) -> ColumnVerdict:
    """Decide what one sampled column is (entity column, free text, or nothing)."""
    values, why_not = to_text_values(raw)
    if values is None:
        return ColumnVerdict(ColumnFinding(name, None, "none", 0.0, 0.0, (why_not or "",)), False)
    if len(values) == 0:
        return ColumnVerdict(ColumnFinding(name, None, "none", 0.0, 0.0, ("no non-empty values in the sample",)), False)
    values = values.reset_index(drop=True)
    norm = normalize_name(name)
    # recognizers judge each cell on its own (`Recognizer.match_cells`): match the distinct values once and
    # spread the result over the cells (category-like columns have few distinct values)
    codes, uniques = pd.factorize(values)
    distinct = pd.Series(uniques, dtype=object) if len(uniques) < len(values) else None
    best: tuple[float, int, Recognizer, float, tuple[str, ...], np.ndarray] | None = None
    best_idx = -1
    notes: list[tuple[int, str]] = []
    best_partial: tuple[float, int, str] = (0.0, 0, "")
    # highest possible key first, so that recognizers that cannot beat the verdict so far are skipped;
    # ties still go to the recognizer listed first, as if every recognizer had run in order
    order = sorted(range(len(recs)), key=lambda i: -recs[i].priority)
    for idx in order:
        rec = recs[idx]
        named = bool(rec.name_hints) and _hint(rec.name_hints, norm)
        negative = bool(rec.negative_name_hints) and _hint(rec.negative_name_hints, norm)
        if rec.requires_name_evidence and not named:
            continue
        if negative and not named:
            continue
        if best is not None:
            bound = min(0.99, 0.95 + (0.1 if named else 0.0)) + rec.priority / 1000.0
            if bound < best[0] or (bound == best[0] and idx > best_idx):
                continue
        match = rec.match_named if named else rec.match_cells
        mask = np.asarray(match(values) if distinct is None else match(distinct)[codes], dtype=bool)
        share = float(mask.mean()) if len(mask) else 0.0
        needed = rec.min_share * (0.5 if named else 1.0)
        if share < needed:
            if share > best_partial[0] or (share == best_partial[0] and share > 0 and idx < best_partial[1]):
                best_partial = (share, idx, str(rec.entity))
            if named and share == 0.0:
                notes.append((idx, f"name suggests {rec.entity} but no sampled value matches"))
            continue
        factor, ev = rec.refine(values, mask, named=named)
        if factor <= 0.0:
            notes.extend((idx, e) for e in ev)
            continue
        # the documented range of `refine`'s factor is [0, 1]; the bound above relies on it
        conf = min(0.99, (0.5 + 0.45 * share) * min(factor, 1.0) + (0.1 if named else 0.0))
        evidence = [f"{share:.0%} of {len(values)} sampled values match {rec.entity}"]
        if named:
            evidence.append(f"column name '{name}' suggests {rec.entity}")
        evidence.extend(ev)
        key = conf + rec.priority / 1000.0
        if best is None or key > best[0] or (key == best[0] and idx < best_idx):
            best = (key, rec.priority, rec, share, tuple(evidence), mask)
            best_idx = idx
    if best is not None:
        _, _, rec, share, evidence_t, mask = best
        conf = min(0.99, best[0] - rec.priority / 1000.0)
        examples = tuple(rec.mask(v) for v in values[mask].drop_duplicates().head(EXAMPLES))
        return ColumnVerdict(ColumnFinding(name, str(rec.entity), "column", conf, share, evidence_t, examples), False)
    lengths = values.str.len()
    words = values.str.count(" ") + 1
    if float(lengths.mean()) >= TEXT_MIN_CHARS and float(words.mean()) >= TEXT_MIN_WORDS:
        ev = (f"free text: {lengths.mean():.0f} characters and {words.mean():.1f} words per cell on average",)
        return ColumnVerdict(ColumnFinding(name, None, "text", 0.0, 0.0, ev), True)
    said = [n for _, n in sorted(notes, key=lambda t: t[0])]  # stable: in recognizer order, as listed
    if best_partial[0] > 0:
        said.insert(0, f"at most {best_partial[0]:.0%} of values look like {best_partial[2]} (too few)")
    if not said:
        said.append("no entity type matches the values or the name")
    return ColumnVerdict(ColumnFinding(name, None, "none", 0.0, 0.0, tuple(dict.fromkeys(said))), False)
