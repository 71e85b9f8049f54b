"""joblib inline arrays: dtype sizing from the simulated ``numpy.dtype`` call."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from bastion.scan.joblib import dtype_itemsize


@pytest.mark.parametrize(
    ("args", "state", "expected"),
    [
        (("f8", False, True), (3, "<", None, None, None, -1, -1, 0), (8, False)),
        (("i2", False, True), None, (2, False)),
        (("U5", False, True), (3, "<", None, None, None, 20, 4, 8), (20, False)),
        (("U5", False, True), None, (20, False)),
        (("O8", False, True), (3, "|", None, None, None, -1, -1, 63), (8, True)),
        (("V12", False, True), (3, "|", None, ("a", "b"), {}, 12, 4, 17), (12, True)),
        (("V12", False, True), (3, "|", None, ("a",), {}, 12, 4, 16), (12, False)),
        (("M8", False, True), (4, "<", None, None, None, -1, -1, 0, {}), (8, False)),
        (("x", False, True), None, None),
        ((), None, None),
        ((5,), None, None),
    ],
)
def test_dtype_itemsize(args: tuple[object, ...], state: object, expected: tuple[int, bool] | None) -> None:
    assert dtype_itemsize(SimpleNamespace(args=args, state=state)) == expected


def test_non_call_values_are_unknown() -> None:
    assert dtype_itemsize("f8") is None
    assert dtype_itemsize(None) is None
