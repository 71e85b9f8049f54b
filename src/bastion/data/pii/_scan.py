"""`scan_table`: classify structured columns from a sample, scan free-text columns span by span
over the whole table in batches (flat memory), and report with masked examples only."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from bastion.data.pii._columns import EXAMPLES, classify_column
from bastion.data.pii._io import open_source
from bastion.data.pii._registry import with_extra
from bastion.data.pii._text import detect_spans_batch
from bastion.data.pii.interface import ColumnFinding, Recognizer, TableScanReport
from bastion.errors import DataError

__all__ = ["scan_table"]

log = logging.getLogger("bastion.data.pii")


def scan_table(
    data: Any,
    *,
    sample_rows: int = 1000,
    text_full: bool = True,
    columns: Sequence[str] | None = None,
    entities: Sequence[str] | None = None,
    progress: Callable[[int, int], None] | None = None,
    recognizers: Sequence[Recognizer] | None = None,
    ner: str | None = None,
) -> TableScanReport:
    """Find PII in a table: which columns are an entity type, which are free text holding entities.

    Parameters
    ----------
    data : a pandas DataFrame, or a path to a CSV, Parquet or JSONL file, or a folder of them.
    sample_rows : rows used to classify structured columns.
    text_full : scan free-text columns over every row (else only over the sample).
    columns : only these columns (default: all).
    entities : only these entity types (default: all active recognizers).
    progress : ``progress(rows_done, rows_total_or_0)`` during the full text scan.
    recognizers : extra recognizers for this call.
    ner : optional NER backend for names in text (``"spacy"``); needs an installed model.

    Returns
    -------
    TableScanReport
        One `ColumnFinding` per column; examples are masked.
    """
    if sample_rows < 1:
        raise DataError(f"sample_rows must be at least 1; got {sample_rows}.")
    recs = with_extra(recognizers, entities)
    source = open_source(data)
    wanted = list(source.columns) if columns is None else [str(c) for c in columns]
    unknown = [c for c in wanted if c not in source.columns]
    if unknown:
        raise DataError(f"Column(s) {unknown} are not in {source.label}; it has {source.columns}.")
    sample = source.sample(sample_rows)
    if len(sample) == 0:
        raise DataError(f"{source.label} has no rows. Give a table with at least one row.")
    findings: dict[str, ColumnFinding] = {}
    text_cols: list[str] = []
    for col in wanted:
        verdict = classify_column(col, sample[col] if col in sample.columns else sample.iloc[:0, 0], recs)
        findings[col] = verdict.finding
        if verdict.is_text:
            text_cols.append(col)
    rows_scanned = len(sample)
    if text_cols:
        stats = {c: _TextStats() for c in text_cols}
        if text_full:
            rows_scanned = 0
            for batch in source.batches(text_cols):
                for c in text_cols:
                    stats[c].add(batch[c].tolist(), entities, recognizers, ner)
                rows_scanned += len(batch)
                if progress is not None:
                    progress(rows_scanned, 0)
        else:
            for c in text_cols:
                stats[c].add(sample[c].tolist(), entities, recognizers, ner)
        for c in text_cols:
            findings[c] = stats[c].finding(findings[c])
    log.info(
        "scanned %s: %d columns, %d rows, %d text columns", source.label, len(wanted), rows_scanned, len(text_cols)
    )
    return TableScanReport(
        source=source.label,
        columns=tuple(findings[c] for c in wanted),
        rows_scanned=rows_scanned,
        sample_rows=len(sample),
        text_full=text_full,
    )


class _TextStats:
    """Running counts for one free-text column (constant memory: counts and a few masked examples)."""

    def __init__(self) -> None:
        self.cells = 0
        self.cells_with = 0
        self.counts: Counter[str] = Counter()
        self.score_sum = 0.0
        self.examples: list[str] = []

    def add(self, texts: list[Any], entities: Any, recognizers: Any, ner: str | None) -> None:
        texts = [t if isinstance(t, str) else (None if t is None or t != t else str(t)) for t in texts]
        spans = detect_spans_batch(texts, entities=entities, recognizers=recognizers, ner=ner)
        from bastion.data.pii._mask import mask_span

        for text, found in zip(texts, spans, strict=True):
            if not text:
                continue
            self.cells += 1
            if not found:
                continue
            self.cells_with += 1
            for sp in found:
                self.counts[sp.entity] += 1
                self.score_sum += sp.score
                if len(self.examples) < EXAMPLES * 2 and not any(e.startswith(sp.entity + ":") for e in self.examples):
                    self.examples.append(f"{sp.entity}: {mask_span(sp.entity, text[sp.start : sp.end])}")

    def finding(self, base: ColumnFinding) -> ColumnFinding:
        total = sum(self.counts.values())
        share = self.cells_with / self.cells if self.cells else 0.0
        evidence = (*base.evidence, f"{total} spans in {self.cells_with} of {self.cells} cells")
        return replace(
            base,
            confidence=(self.score_sum / total) if total else 0.0,
            share=share,
            evidence=evidence,
            masked_examples=tuple(self.examples[: EXAMPLES * 2]),
            spans_found=dict(self.counts),
        )
