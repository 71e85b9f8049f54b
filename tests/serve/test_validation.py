"""The generated validator: ranges with margin, categories, nullability, depth, and the limiter."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

SCHEMA = [{"name": "age", "type": "int64"}, {"name": "income", "type": "double"},
          {"name": "city", "type": "large_string"}, {"name": "member", "type": "bool"},
          {"name": "note", "type": "string"}, {"name": "score", "type": "double"}]
STATS = {"age": {"min": 18, "max": 90, "nulls": 0}, "income": {"min": 0.0, "max": 1000.0, "nulls": 0},
         "city": {"categories": ["Oslo", "Rome"], "nulls": 0}, "member": {"nulls": 0}, "note": {"nulls": 3},
         "score": {"min": 5.0, "max": 5.0, "nulls": 0}}


def _schema(**kw: Any) -> Any:
    from bastion.serve.validation import build_input_schema, feature_specs

    specs = feature_specs(SCHEMA, STATS, [f["name"] for f in SCHEMA], margin=kw.pop("margin", 0.1))
    return build_input_schema(specs, model_name="m", **kw)


GOOD = {"age": 30, "income": 10.5, "city": "Oslo", "member": True, "note": None, "score": 5.0}


@pytest.mark.parametrize(("change", "ok"), [
    ({}, True),
    ({"age": 10}, True),            # 18 - 0.1*72 = 10.8 -> floor 10
    ({"age": 9}, False),
    ({"age": 30.5}, False),
    ({"income": 1100.0}, True),     # margin 10% of the range
    ({"income": 1100.01}, False),
    ({"income": -100.0}, True),
    ({"score": 5.5}, True),         # constant column: margin of the value
    ({"score": 5.6}, False),
    ({"city": "Paris"}, False),
    ({"city": None}, False),
    ({"member": 1}, False),
    ({"note": "free text"}, True),
    ({"extra": 1}, False),
])
def test_rows(change: dict[str, Any], ok: bool) -> None:
    from bastion.serve.validation import InvalidInput

    s = _schema()
    body = json.dumps({"instances": [{**GOOD, **change}]}).encode()
    if ok:
        assert s.parse(body)[0] == tuple({**GOOD, **change}[k] for k in s.features)
    else:
        with pytest.raises(InvalidInput) as e:
            s.parse(body)
        assert e.value.status == 422 and e.value.errors


@pytest.mark.parametrize(("value", "ok"), [(2**63 - 1, True), (2**64 - 1, True), (-(2**63), True), (2**64, False),
                                          (-(2**63) - 1, False), (10**400, False)])
def test_an_integer_without_a_recorded_range_is_still_bounded(value: int, ok: bool) -> None:
    """JSON integers are unbounded: 10**400 used to pass validation and fail the float matrix (a 500)."""
    from bastion.serve.validation import FeatureSpec, InvalidInput, build_input_schema

    s = build_input_schema([FeatureSpec("n", "integer"), FeatureSpec("x", "number")], model_name="m")
    body = b'{"instances": [{"n": %d, "x": 1.0}]}' % value
    if ok:
        rows = s.parse(body)
        assert rows == [(value, 1.0)] and s.to_matrix(rows).shape == (1, 2)
    else:
        with pytest.raises(InvalidInput) as e:
            s.parse(body)
        assert e.value.status == 422


def test_margin_zero_is_the_training_range() -> None:
    from bastion.serve.validation import InvalidInput

    s = _schema(margin=0.0)
    with pytest.raises(InvalidInput):
        s.parse(json.dumps({"instances": [{**GOOD, "income": 1000.5}]}).encode())


def test_unknown_feature_or_type_refuses_to_build() -> None:
    from bastion.errors import ConfigError
    from bastion.serve.validation import feature_specs

    with pytest.raises(ConfigError, match="does not record"):
        feature_specs(SCHEMA, STATS, ["age", "height"])
    with pytest.raises(ConfigError, match="cannot validate"):
        feature_specs([{"name": "t", "type": "timestamp[us]"}], {}, ["t"])


@pytest.mark.parametrize(("body", "depth"), [
    (b"1", 0), (b"[]", 1), (b'{"a": [1, {"b": []}]}', 4), (b'{"a": "[[[[[[["}', 1),
    (b'{"a": "\\"[[[["}', 1), (b"[" * 50 + b"]" * 50, 50),
])
def test_json_depth(body: bytes, depth: int) -> None:
    from bastion.serve.validation import json_depth

    assert json_depth(body) == depth


@settings(max_examples=200, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.floats(allow_nan=False) | st.text(max_size=5),
                    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=3), c, max_size=3),
                    max_leaves=20))
def test_json_depth_matches_a_reference(value: Any) -> None:
    from bastion.serve.validation import json_depth

    def ref(v: Any) -> int:
        if isinstance(v, list):
            return 1 + max((ref(x) for x in v), default=0)
        if isinstance(v, dict):
            return 1 + max((ref(x) for x in v.values()), default=0)
        return 0

    assert json_depth(json.dumps(value).encode()) == ref(value)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from([b"[", b"]", b"{", b"}", b'"', b"a", b",", b":", b" ", b"1"]), max_size=80))
def test_json_depth_fast_path_agrees_with_the_full_scan(parts: list[bytes]) -> None:
    """Bodies without escapes take the shortcut (brackets and quotes only); it must count exactly like
    the byte-by-byte scan, unbalanced and unterminated strings included."""
    from bastion.serve.validation import _depth_scan, json_depth

    body = b"".join(parts)
    assert json_depth(body) == _depth_scan(body)


_TRICKY_TEXT = st.text(alphabet=st.sampled_from(list('[]{}"\\/u0 a\u00e9\u2028\n')), max_size=12)


@settings(max_examples=300, deadline=None)
@given(st.recursive(st.none() | _TRICKY_TEXT | st.integers(),
                    lambda c: st.lists(c, max_size=3) | st.dictionaries(_TRICKY_TEXT, c, max_size=3), max_leaves=20),
       st.booleans(), st.sampled_from([None, 0, 2]))
def test_json_depth_agrees_with_a_full_parse_on_strings_full_of_brackets_and_escapes(
    value: Any, ascii_only: bool, indent: int | None
) -> None:
    """Brackets, quotes and backslash runs inside strings, raw or as \\u escapes, never change the depth."""
    from bastion.serve.validation import json_depth

    def ref(v: Any) -> int:
        if isinstance(v, list | dict):
            return 1 + max((ref(x) for x in (v.values() if isinstance(v, dict) else v)), default=0)
        return 0

    body = json.dumps(value, ensure_ascii=ascii_only, indent=indent).encode()
    assert json_depth(body) == ref(value)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_any_body_is_rows_or_invalid_input(body: bytes) -> None:
    from bastion.serve.validation import InvalidInput

    try:
        rows = _schema().parse(body)
    except InvalidInput as e:
        assert e.status in (400, 422)
    else:
        assert rows


def test_limiter_rate_and_concurrency() -> None:
    from bastion.serve.limits import Limiter, LimitSettings, RateLimited

    lim = Limiter(LimitSettings(rate=1.0, burst=2, concurrency=1))
    lim.acquire("a")
    with pytest.raises(RateLimited) as e:
        lim.acquire("a")  # concurrency 1: the first is still in flight
    assert e.value.reason == "concurrency"
    lim.release("a")
    lim.acquire("a")
    lim.release("a")
    with pytest.raises(RateLimited) as e:
        lim.acquire("a")  # burst of 2 used up
    assert e.value.reason == "rate" and e.value.retry_after >= 1
    lim.acquire("b")  # per caller


@pytest.mark.parametrize("bad", [{"rate": -1}, {"burst": 0}, {"concurrency": 0}, {"timeout_s": 0},
                                 {"max_rows": 0}, {"max_body_bytes": 10}, {"max_depth": 2}])
def test_limit_settings_are_checked(bad: dict[str, Any]) -> None:
    from bastion.errors import ConfigError
    from bastion.serve.limits import LimitSettings

    with pytest.raises(ConfigError):
        LimitSettings(**bad)


def test_per_worker_share() -> None:
    from bastion.serve.limits import LimitSettings

    s = LimitSettings(rate=100, burst=20, concurrency=8).per_worker(4)
    assert (s.rate, s.burst, s.concurrency) == (25, 5, 2)
