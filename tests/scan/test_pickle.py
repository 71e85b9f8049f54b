"""Opcode-level pickle analysis: every technique, protocols 0-5, malformed streams, fuzzing."""

from __future__ import annotations

import io
import os
import pickle
import pickletools
import sys
import types

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bastion.scan import ScanLimits, Severity, scan_bytes


def sbu(text: str) -> bytes:
    """SHORT_BINUNICODE."""
    raw = text.encode()
    return b"\x8c" + bytes([len(raw)]) + raw


def sg(module: str, name: str) -> bytes:
    """STACK_GLOBAL of constant strings."""
    return sbu(module) + sbu(name) + b"\x93"


P2 = b"\x80\x02"
P4 = b"\x80\x04"


def rules(data: bytes, **kw: object) -> dict[str, Severity]:
    report = scan_bytes(data, **kw)  # type: ignore[arg-type]
    out: dict[str, Severity] = {}
    for f in report.findings:
        out[f.rule_id] = max(out.get(f.rule_id, f.severity), f.severity)
    return out


TECHNIQUES = [
    # (id, pickle bytes, rule expected, minimum severity)
    ("global-reduce-p0", b"cos\nsystem\n(S'echo'\ntR.", "pickle.dangerous-global", Severity.CRITICAL),
    ("stack-global-p4", P4 + sg("builtins", "eval") + sbu("1") + b"\x85R.", "pickle.dangerous-global",
     Severity.CRITICAL),
    ("inst-p0", b"(S'echo hi'\nios\nsystem\n.", "pickle.dangerous-global", Severity.CRITICAL),
    ("obj-p1", b"(cos\nsystem\nS'x'\no.", "pickle.dangerous-global", Severity.CRITICAL),
    ("newobj-unknown", P2 + b"cmymod\nEvil\n)\x81.", "pickle.unknown-callable", Severity.HIGH),
    ("newobj-ex-unknown", P4 + sg("mymod", "Evil") + b")}\x92.", "pickle.unknown-callable", Severity.HIGH),
    ("memoized-names", P4 + sbu("os") + b"\x94" + sbu("system") + b"\x94" + b"h\x00h\x01\x93"
     + sbu("id") + b"\x85R.", "pickle.dangerous-global", Severity.CRITICAL),
    ("long-binput-names", P4 + sbu("subprocess") + b"r\x07\x00\x00\x00" + b"0" + sbu("getoutput")
     + b"r\x08\x00\x00\x00" + b"0" + b"j\x07\x00\x00\x00j\x08\x00\x00\x00\x93" + sbu("id") + b"\x85R.",
     "pickle.dangerous-global", Severity.CRITICAL),
    ("put-get-text", b"S'os'\np0\n0S'system'\np1\n0\x80\x04g0\ng1\n\x93S'id'\n\x85R.", "pickle.dangerous-global",
     Severity.CRITICAL),
    ("names-from-call", P4 + sg("mymod", "f") + b")R" + sbu("system") + b"\x93.", "pickle.unresolved-global",
     Severity.HIGH),
    ("ext1", P2 + b"\x82\x01)R.", "pickle.extension-code", Severity.HIGH),
    ("ext2", P2 + b"\x83\x01\x02)R.", "pickle.extension-code", Severity.HIGH),
    ("ext4", P2 + b"\x84\x01\x02\x03\x04)R.", "pickle.extension-code", Severity.HIGH),
    ("persid", b"Pfoo\n.", "pickle.persistent-id", Severity.HIGH),
    ("binpersid", P2 + b"K\x01Q.", "pickle.persistent-id", Severity.HIGH),
    ("build-on-class", P2 + b"ccollections\nOrderedDict\n}b.", "pickle.mutate-global", Severity.HIGH),
    ("setitem-on-class", P2 + b"ccollections\nOrderedDict\nK\x01K\x02s.", "pickle.mutate-global", Severity.HIGH),
    ("unknown-reference", P2 + b"cmymod\nThing\n.", "pickle.unknown-global", Severity.HIGH),
    ("attrgetter", P4 + sg("operator", "attrgetter") + sbu("x") + b"\x85R.", "pickle.dangerous-global",
     Severity.CRITICAL),
    ("partial-of-system", P4 + sg("functools", "partial") + sg("os", "system") + sbu("id") + b"\x86R.",
     "pickle.dangerous-global", Severity.CRITICAL),
    ("py2-builtin", b"c__builtin__\neval\n(S'1'\ntR.", "pickle.dangerous-global", Severity.CRITICAL),
    ("dunder-chain", P4 + sg("collections", "OrderedDict.__init__.__globals__") + b".", "pickle.dangerous-global",
     Severity.CRITICAL),
    ("torch-hub", P4 + sg("torch.hub", "load") + sbu("a") + sbu("b") + b"\x86R.", "pickle.dangerous-global",
     Severity.CRITICAL),
    ("getattr", P4 + sg("builtins", "getattr") + b".", "pickle.dangerous-global", Severity.CRITICAL),
    ("runpy", P4 + sg("runpy", "_run_code") + b".", "pickle.dangerous-global", Severity.CRITICAL),
    ("nested-pickle-loads", P4 + sg("pickle", "loads") + b"C\x01x\x85R.", "pickle.dangerous-global",
     Severity.CRITICAL),
    ("call-of-call", P4 + sg("collections", "OrderedDict") + b")R)R.", "pickle.computed-call", Severity.HIGH),
    ("out-of-band", b"\x80\x05\x97.", "pickle.out-of-band-buffer", Severity.MEDIUM),
    ("getattr-on-module", P4 + sg("builtins", "getattr") + sg("os", "path") + sbu("join") + b"\x86R.",
     "pickle.dangerous-global", Severity.CRITICAL),
    ("getattr-dunder-of-allowed", P4 + sg("builtins", "getattr") + sg("collections", "OrderedDict")
     + sbu("__init__") + b"\x86R.", "pickle.dangerous-global", Severity.CRITICAL),
    ("getattr-reused-on-instance", P4 + sg("builtins", "getattr") + b"\x94" + sg("zoneinfo", "ZoneInfo")
     + sbu("_unpickle") + b"\x86R0h\x00" + sg("collections", "OrderedDict") + b")R" + sbu("keys") + b"\x86R.",
     "pickle.dangerous-global", Severity.CRITICAL),
    ("dotted-unknown-reference", P4 + sg("sklearn.base", "np.load") + b".", "pickle.unknown-callable",
     Severity.HIGH),
]


@pytest.mark.parametrize(("data", "rule", "severity"), [t[1:] for t in TECHNIQUES], ids=[t[0] for t in TECHNIQUES])
def test_technique_is_found(data: bytes, rule: str, severity: Severity) -> None:
    found = rules(data)
    assert rule in found, found
    assert found[rule] >= severity


MALFORMED = [
    ("truncated", b"\x80\x02cos\nsystem\n(S'x'\ntR"),
    ("bad-opcode", b"\x80\x02\xff."),
    ("memo-missing", b"\x80\x02h\x05."),
    ("stack-underflow", b"\x80\x02R."),
    ("stop-on-empty-stack", b"\x80\x02."),
    ("no-mark", b"\x80\x02K\x01t."),
    ("odd-setitems", b"\x80\x02}(K\x01u."),
    ("negative-binstring", b"\x80\x02T\xff\xff\xff\xff."),
    ("bad-int-line", b"\x80\x02Ixyz\n."),
    ("unquoted-string", b"\x80\x02Sabc\n."),
    ("truncated-binunicode", b"\x80\x04X\x10\x00\x00\x00abc"),
    ("protocol-header-then-eof", b"\x80\x04"),
]


@pytest.mark.parametrize("data", [m[1] for m in MALFORMED], ids=[m[0] for m in MALFORMED])
def test_malformed_pickle_is_high(data: bytes) -> None:
    report = scan_bytes(data)
    assert not report.is_clean()
    assert any(f.rule_id == "pickle.malformed" and f.severity >= Severity.HIGH for f in report.findings)


@pytest.mark.parametrize(
    ("data", "rule"),
    [
        (pickle.dumps({"a": 1}, protocol=4) + b"garbage!", "pickle.trailing-data"),
        (pickle.dumps(1, protocol=2) + pickle.dumps([2], protocol=2), "pickle.multiple-pickles"),
        (pickle.dumps(1, protocol=4) + b"cos\nsystem\n(S'x'\ntR.", "pickle.multiple-pickles"),
    ],
    ids=["garbage", "two-benign", "benign-then-evil"],
)
def test_data_after_stop_is_high(data: bytes, rule: str) -> None:
    found = rules(data)
    assert found.get(rule, Severity.INFO) >= Severity.HIGH


def test_second_pickle_payload_is_analysed() -> None:
    data = pickle.dumps(1, protocol=4) + b"cos\nsystem\n(S'x'\ntR."
    assert rules(data)["pickle.dangerous-global"] == Severity.CRITICAL


class _Evil:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, ("echo pwned",))


@pytest.mark.parametrize("protocol", range(6))
def test_every_protocol_reduce(protocol: int) -> None:
    found = rules(pickle.dumps(_Evil(), protocol=protocol))
    assert found == {"pickle.dangerous-global": Severity.CRITICAL}


@pytest.mark.parametrize("protocol", range(6))
def test_every_protocol_benign_builtins_clean(protocol: int) -> None:
    value = {"a": [1, 2.5, "x", None, True], "b": (b"bytes", bytearray(b"ba")), "c": {1, 2}, "d": frozenset({3})}
    report = scan_bytes(pickle.dumps(value, protocol=protocol))
    assert report.findings == ()
    assert report.files[0].format == "pickle"


def test_classmethod_of_allowed_class_is_clean() -> None:
    import zoneinfo

    # pickle writes ZoneInfo as getattr(ZoneInfo, "_unpickle")(key, 1): an allowed method lookup.
    assert scan_bytes(pickle.dumps(zoneinfo.ZoneInfo("Europe/Berlin"), protocol=4)).findings == ()


def test_offsets_point_at_the_opcode() -> None:
    data = P4 + sg("os", "system") + sbu("id") + b"\x85R."
    (finding,) = scan_bytes(data).findings
    # The call is reported where REDUCE sits.
    assert data[finding.offset] == ord("R")


def test_scanning_never_imports_named_modules() -> None:
    name = "bastion_canary_never_imported"
    fake = types.ModuleType(name)

    def boom() -> None:  # pragma: no cover - must never run
        raise AssertionError("executed")

    boom.__module__ = name
    boom.__qualname__ = "boom"
    fake.boom = boom  # type: ignore[attr-defined]
    sys.modules[name] = fake
    try:
        data = P4 + sg(name, "boom") + b")R."
        pickled = pickle.dumps(boom, protocol=2)
    finally:
        del sys.modules[name]
    assert name not in sys.modules
    for blob in (data, pickled):
        report = scan_bytes(blob)
        assert name not in sys.modules
        assert any(f.construct == f"{name}.boom" for f in report.findings)
    assert rules(data)["pickle.unknown-callable"] == Severity.HIGH


def test_opcode_limit_is_a_finding() -> None:
    data = pickle.dumps(list(range(50_000)), protocol=0)
    found = rules(data, limits=ScanLimits(max_opcodes=10_000))
    assert found["limit.opcodes"] >= Severity.HIGH


def test_time_limit_is_a_finding() -> None:
    data = pickle.dumps(list(range(20_000)), protocol=0)
    found = rules(data, limits=ScanLimits(time_per_file=1e-6))
    assert found["limit.time"] >= Severity.HIGH


def test_joblib_inline_arrays_are_skipped_not_garbage() -> None:
    import joblib
    import numpy as np

    buf = io.BytesIO()
    joblib.dump({"w": np.arange(1000.0), "m": np.ones((3, 4), dtype=np.int16), "s": np.array(["ab", "c"])}, buf)
    report = scan_bytes(buf.getvalue())
    assert report.findings == ()
    assert report.files[0].format == "joblib"


def test_joblib_object_array_pickle_is_analysed() -> None:
    import joblib
    import numpy as np

    buf = io.BytesIO()
    joblib.dump({"o": np.array([_Evil(), 1], dtype=object)}, buf)
    assert rules(buf.getvalue())["pickle.dangerous-global"] == Severity.CRITICAL


def test_joblib_payload_after_array_is_found() -> None:
    import joblib
    import numpy as np

    buf = io.BytesIO()
    joblib.dump([np.arange(10.0), _Evil()], buf)
    assert rules(buf.getvalue())["pickle.dangerous-global"] == Severity.CRITICAL


def test_headerless_text_is_not_a_pickle() -> None:
    for text in (b"Hello world\n", b"a,b,c\n1,2,3\n", b"import os\n", b"class Foo:\n    pass\n", b"def f(): pass\n"):
        report = scan_bytes(text)
        assert report.findings == (), text
        assert report.files[0].format == "unknown"


# -- fuzzing --------------------------------------------------------------------------------------

_SEEDS = [
    pickle.dumps({"a": [1, 2, 3], "b": ("x", 2.5)}, protocol=p) for p in range(6)
] + [pickle.dumps(_Evil(), protocol=p) for p in (0, 2, 4)]
_FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
_LIMITS = ScanLimits(time_per_file=2.0, max_opcodes=100_000)


def _parses_completely(data: bytes) -> bool:
    try:
        end = 0
        for op, _arg, pos in pickletools.genops(io.BytesIO(data)):
            end = pos
            if op.name == "STOP":
                return end + 1 == len(data)
    except Exception:
        return False
    return False


@_FUZZ
@given(st.binary(max_size=512))
def test_fuzz_random_bytes_never_crash(data: bytes) -> None:
    report = scan_bytes(data, limits=_LIMITS)
    assert report.files[0].size == len(data)


@_FUZZ
@given(st.sampled_from(_SEEDS), st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=4),
       st.integers(0, 64))
def test_fuzz_mutated_pickles(seed: bytes, flips: list[tuple[int, int]], cut: int) -> None:
    data = bytearray(seed)
    for pos, value in flips:
        if len(data) > 2:
            data[2 + pos % (len(data) - 2)] = value  # keep the PROTO header so it stays "a pickle"
    blob = bytes(data[: max(2, len(data) - cut)]) if seed[:1] == b"\x80" else bytes(data)
    report = scan_bytes(blob, limits=_LIMITS)
    if blob[:1] == b"\x80" and blob[1] <= 5 and not _parses_completely(blob):
        # Anything the opcode grammar itself rejects must never come out clean.
        assert not report.is_clean(), blob


def test_joblib_array_bytes_that_are_opcodes_are_found() -> None:
    import joblib
    import numpy as np

    buf = io.BytesIO()
    joblib.dump(np.zeros(8, dtype=np.uint8), buf)
    raw = buf.getvalue()
    assert rules(raw) == {}
    data_start = len(raw) - 1 - 8  # ... BUILD, pad-length byte, padding, 8 array bytes, STOP
    pad_at = next(p for p in range(data_start - 1, 0, -1) if raw[p] + p + 1 == data_start)
    # joblib.load skips 0x63 bytes of "padding"; pickle.load reads 0x63 as GLOBAL and runs the payload.
    payload = b"os\nsystem\n(S'echo pwned'\ntR"
    hostile = raw[:pad_at] + bytes([0x63]) + payload.ljust(0x63, b"\0") + raw[data_start:]
    found = rules(hostile)
    assert found["pickle.joblib-array-opcodes"] == Severity.HIGH
    assert found["pickle.dangerous-global"] == Severity.CRITICAL


def test_opcode_table_matches_pickletools() -> None:
    import pickletools

    from bastion.scan.pickle import OPCODE_BYTES

    assert {ord(op.code) for op in pickletools.opcodes} == OPCODE_BYTES
