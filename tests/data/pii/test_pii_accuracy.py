"""Accuracy on the generated, labelled corpus: per-entity column precision/recall, span F1."""

from __future__ import annotations

import pytest

from bastion.data.pii import detect_spans_batch, scan_table


def _predictions(report):
    out = {}
    for f in report.columns:
        out[f.column] = f.entity if f.kind == "column" else ("TEXT" if f.is_pii else None)
    return out


def test_column_level_f1_per_entity_and_no_false_columns(labelled, corpus_mod):
    report = scan_table(labelled.frame)
    scores = corpus_mod.column_scores(labelled.column_labels, _predictions(report))
    wrongly_flagged = [
        (f.column, f.entity, f.evidence)
        for f in report.columns
        if labelled.column_labels[f.column] is None and f.is_pii
    ]
    assert scores["NON_PII"]["flagged"] == 0, wrongly_flagged
    for entity in (*corpus_mod.ENTITIES, "TEXT"):
        assert scores[entity]["f1"] >= 0.95, (entity, scores[entity])


def test_span_level_f1(labelled, corpus_mod):
    col = next(c for c, v in labelled.column_labels.items() if v == "TEXT")
    spans = detect_spans_batch(labelled.frame[col].tolist())
    pred = [[(s.entity, s.start, s.end) for s in row] for row in spans]
    res = corpus_mod.span_f1(labelled.spans[col], pred)
    assert res["OVERALL"]["f1"] >= 0.85, res["OVERALL"]
    for entity, s in res.items():
        assert s["f1"] >= 0.8, (entity, s)


@pytest.mark.parametrize("entity", ["DATE_OF_BIRTH", "IP_ADDRESS", "US_SSN", "CREDIT_CARD", "PHONE"])
def test_decoys_in_text_are_not_reported(corpus_mod, entity):
    texts = [
        "Visit on 2023-04-05 went fine; order 4839201746 shipped.",
        "Upgraded to version 3.12.0.7 today, build 1.2.3.4 next.",
        "Lot 912-34-5678 and 900-12-3456 released.",
        "Reference 4111111111111112 retried (fails Luhn).",
        "SKU-AB-12345 restocked, 25 units.",
    ]
    found = [s.entity for row in detect_spans_batch(texts) for s in row]
    assert entity not in found
