"""Cheap rejection before validation: large bodies are bounded and checked structurally before pydantic,
and the bounded path answers exactly what the direct path answers."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bastion.serve.validation import FeatureSpec, InputSchema, InvalidInput, _structural_counts

SPECS = [FeatureSpec("age", "integer", min=0, max=120), FeatureSpec("score", "number", min=0.0, max=1.0),
         FeatureSpec("plan", "string", categories=("basic", "pro")), FeatureSpec("note", "string", nullable=True)]


def _schema(small_body: int) -> InputSchema:
    s = InputSchema(SPECS, max_rows=200)
    s.small_body = small_body
    return s


def _outcome(schema: InputSchema, body: bytes) -> Any:
    try:
        return ("ok", schema.parse(body))
    except InvalidInput as e:
        return (e.status, e.errors[:1] and [e.errors[0]["loc"], e.errors[0]["type"]])


def _row(**over: Any) -> dict[str, Any]:
    return {"age": 40, "score": 0.5, "plan": "pro", "note": "a, b: \"c\" \\ {d}", **over}


BODIES = {
    "good": {"instances": [_row() for _ in range(50)]},
    "good_null": {"instances": [_row(note=None) for _ in range(50)]},
    "wrong_type_row_37": {"instances": [_row() for _ in range(37)] + [_row(age="x")] + [_row()] * 12},
    "out_of_range": {"instances": [_row(score=1.5)] * 50},
    "unknown_key_row_3": {"instances": [_row()] * 3 + [{**_row(), "evil": 1}] + [_row()] * 46},
    "missing_field": {"instances": [{k: v for k, v in _row().items() if k != "plan"}] * 50},
    "bool_for_int": {"instances": [_row(age=True)] * 50},
    "top_level_extra": {"instances": [_row()] * 50, "more": 1},
    "instances_not_list": {"instances": {"a": _row()}, "pad": "x" * 5000},
    "rows_not_objects": {"instances": [[1, 2, 3]] * 50},
    "too_many_rows": {"instances": [_row()] * 201},
}


@pytest.mark.parametrize("name", sorted(BODIES))
def test_bounded_path_answers_like_the_direct_path(name: str) -> None:
    body = json.dumps(BODIES[name]).encode()
    direct, bounded = _outcome(_schema(10**9), body), _outcome(_schema(0), body)
    if name == "good" or name == "good_null":
        assert direct[0] == "ok" and direct == bounded
    else:
        assert direct[0] == bounded[0] != "ok"
        if name not in ("top_level_extra", "too_many_rows"):  # same first error location and type
            assert direct[1] == bounded[1]


@pytest.mark.parametrize(("body", "status"), [
    (b'{"instances":[{' + b",".join(b'"k%d":1' % i for i in range(75_000)) + b"}]}", 413),  # the finding
    (b'{"instances":[{"age":[' + b",".join(b"1" for _ in range(300_000)) + b"]}]}", 413),  # a long array
    (b'{"instances":[' + b",".join(b"{}" for _ in range(200_000)) + b"]}", 413),  # many empty rows
    (json.dumps({"instances": [_row(age="x", score="y", plan=1, note=2)] * 200}).encode(), 422),
    (b'{"instances":[{"age":NaN}]}' + b" " * 5000, 400),
    (b'{"instances":[' + b" " * 5000, 400),
])
def test_costly_bodies_are_refused_in_a_few_milliseconds(body: bytes, status: int) -> None:
    schema = InputSchema(SPECS, max_rows=1000)
    schema.parse(json.dumps({"instances": [_row()]}).encode())  # warm
    best = 1.0
    for _ in range(3):
        t0 = time.perf_counter()
        with pytest.raises(InvalidInput) as e:
            schema.parse(body)
        best = min(best, time.perf_counter() - t0)
    assert e.value.status == status
    assert len(e.value.errors) <= 50
    assert best < 0.02, f"{best * 1000:.1f} ms"


def _reference_counts(text: str) -> tuple[int, int]:
    colons = commas = 0
    in_str = esc = False
    for ch in text:
        if in_str:
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                in_str = False
        elif ch == '"':
            in_str = True
        elif ch == ":":
            colons += 1
        elif ch == ",":
            commas += 1
    return colons, commas


_json = st.recursive(st.none() | st.booleans() | st.integers() | st.text(alphabet=':,"\\{}[] ab\n\u00e9'),
                     lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
                         st.text(alphabet=':,"\\ ab', max_size=4), inner, max_size=4), max_leaves=12)


@settings(max_examples=100, deadline=None)
@given(_json)
def test_structural_counts_match_a_reference_scanner(doc: Any) -> None:
    text = json.dumps(doc, ensure_ascii=False)
    assert _structural_counts(text.encode()) == _reference_counts(text)
