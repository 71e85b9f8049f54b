"""NumPy .npy/.npz: header checks and the pickle inside object arrays."""

from __future__ import annotations

import io
import os
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest

from bastion.scan import Severity, scan_bytes, scan_path
from bastion.scan.numpy import descr_itemsize


class _Evil:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, ("echo pwned",))


def _npy(arr: np.ndarray, *, allow_pickle: bool = False) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=allow_pickle)
    return buf.getvalue()


def _rules(data: bytes) -> dict[str, Severity]:
    out: dict[str, Severity] = {}
    for f in scan_bytes(data).findings:
        out[f.rule_id] = max(out.get(f.rule_id, f.severity), f.severity)
    return out


@pytest.mark.parametrize(
    "arr",
    [np.arange(5), np.zeros((2, 3), dtype=np.float16), np.array(["ab", "c"]), np.zeros(0),
     np.zeros(3, dtype=[("a", "<f4"), ("b", "<i8", (2,))]), np.array(["2020-01-01"], dtype="M8[ns]"),
     np.asfortranarray(np.ones((3, 2)))],
    ids=["int", "f16", "unicode", "empty", "structured", "datetime", "fortran"],
)
def test_plain_arrays_are_clean(arr: np.ndarray) -> None:
    report = scan_bytes(_npy(arr))
    assert report.findings == ()
    assert report.files[0].format == "numpy"


def test_benign_object_array_is_low_only() -> None:
    found = _rules(_npy(np.array([1, "a", None], dtype=object), allow_pickle=True))
    assert found == {"numpy.object-array": Severity.LOW}


def test_malicious_object_array_is_critical() -> None:
    found = _rules(_npy(np.array([_Evil(), 1], dtype=object), allow_pickle=True))
    assert found["pickle.dangerous-global"] == Severity.CRITICAL


def test_npz_member_object_array(tmp_path: Path) -> None:
    path = tmp_path / "arrays.npz"
    np.savez(path, ok=np.arange(3), bad=np.array([_Evil()], dtype=object))
    report = scan_path(path)
    assert report.files[0].format == "npz"
    crit = [f for f in report.findings if f.severity == Severity.CRITICAL]
    assert [f.inner_path for f in crit] == ["bad.npy"]


@pytest.mark.parametrize(
    ("data", "rule"),
    [
        (b"\x93NUMPY\x01\x00\x10\x00{'descr': '<f8'}  \n", "numpy.bad-header"),
        (b"\x93NUMPY\x01\x00\x30\x00__import__('os').system('x')               \n", "numpy.bad-header"),
        (b"\x93NUMPY\x09\x00\x00\x00", "numpy.bad-header"),
        (b"\x93NUMPY\x01\x00\xff\xff{", "numpy.bad-header"),
    ],
    ids=["missing-keys", "code-in-header", "bad-version", "truncated-header"],
)
def test_bad_headers_are_high(data: bytes, rule: str) -> None:
    assert _rules(data)[rule] == Severity.HIGH


def test_truncated_and_trailing_data_are_medium() -> None:
    full = _npy(np.arange(10, dtype=np.int64))
    assert _rules(full[:-8])["numpy.truncated"] == Severity.MEDIUM
    assert _rules(full + b"cos\nsystem\n")["numpy.trailing-data"] == Severity.MEDIUM


def test_npz_with_renamed_pickle_member(tmp_path: Path) -> None:
    path = tmp_path / "x.npz"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("a.npy", _npy(np.arange(2)))
        zf.writestr("b.npy", pickle.dumps(_Evil()))
    assert scan_path(path).max_severity == Severity.CRITICAL


@pytest.mark.parametrize(
    ("descr", "size", "obj"),
    [("<f8", 8, False), ("|b1", 1, False), ("<U3", 12, False), ("|O", None, True),
     ([("a", "<f4"), ("b", "|O")], None, True), ([("a", "<f4"), ("b", "<i2", (3,))], 10, False), ("<M8[ns]", 8, False)],
)
def test_descr_itemsize(descr: object, size: int | None, obj: bool) -> None:
    assert descr_itemsize(descr) == (size, obj)
