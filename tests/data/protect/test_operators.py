from __future__ import annotations

import os

import pyarrow as pa
import pytest

from bastion.crypto.aead import CellCipher
from bastion.crypto.tokenize import KeyedHasher, Tokenizer
from bastion.data.protect import operators as ops
from bastion.errors import DataError

KEY = os.urandom(32)


def test_tokenize_is_deterministic_and_keeps_nulls():
    arr = pa.array(["a", "b", "a", None])
    out = ops.tokenize_array(arr, Tokenizer(KEY, key_id="k"), "c").to_pylist()
    assert out[0] == out[2] != out[1] and out[3] is None
    assert "a" not in out


def test_encrypt_is_randomized_and_keeps_nulls():
    arr = pa.array(["a", "a", None])
    out = ops.encrypt_array(arr, CellCipher(KEY, key_id="k"), "c").to_pylist()
    assert out[0] != out[1] and out[2] is None


def test_hash_is_keyed_hex():
    out = ops.hash_array(pa.array(["x", "x", None]), KeyedHasher(KEY, key_id="k"), "c").to_pylist()
    assert out[0] == out[1] and len(out[0]) == 64 and out[2] is None


@pytest.mark.parametrize(
    ("value", "keep", "expected"),
    [
        ("123-45-6789", 4, "*******6789"),
        ("ab", 4, "ab"),
        ("abcdef", 0, "******"),
        ("ñandú", 2, "***dú"),
        (None, 4, None),
    ],
)
def test_mask(value, keep, expected):
    assert ops.mask_array(pa.array([value], pa.string()), "c", keep=keep).to_pylist() == [expected]


def test_redact_keeps_nulls():
    assert ops.redact_array(pa.array(["x", None]), "<EMAIL>").to_pylist() == ["<EMAIL>", None]


@pytest.mark.parametrize(
    ("values", "to", "expected"),
    [
        (["1984-03-02", "n/a", None], "year", ["1984", None, None]),
        (["1984-03-02", "03/14/1990"], "year", ["1984", "1990"]),
        (["1984-03-02"], "month", ["1984-03"]),
        (["02139", "94105-1234", "abc"], "zip3", ["021", "941", None]),
    ],
)
def test_generalize_strings(values, to, expected):
    assert ops.generalize_array(pa.array(values, pa.string()), "c", to=to).to_pylist() == expected


def test_generalize_dates_ints_and_bands():
    import datetime as dt

    assert ops.generalize_array(pa.array([dt.date(1984, 3, 2)]), "c", to="month").to_pylist() == ["1984-03"]
    assert ops.generalize_array(pa.array([2139, 94105]), "c", to="zip3").to_pylist() == ["021", "941"]
    out = ops.generalize_array(pa.array([5, 18, 29, 44, 64, 65, 99, None]), "c", to="band").to_pylist()
    assert out == ["0-17", "18-29", "18-29", "30-44", "45-64", "65+", "65+", None]
    with pytest.raises(DataError, match="not numbers"):
        ops.generalize_array(pa.array(["a"]), "c", to="band")


def test_cell_size_limit_names_column_and_row_not_value():
    arr = pa.array(["short", "x" * 2000])
    with pytest.raises(DataError) as e:
        ops.check_cell_sizes(arr, "notes", 1000)
    assert "'notes' row 1" in str(e.value) and "xxxx" not in str(e.value)


def test_nested_types_refused():
    with pytest.raises(DataError, match="cannot protect"):
        ops.tokenize_array(pa.array([[1, 2]]), Tokenizer(KEY, key_id="k"), "c")
