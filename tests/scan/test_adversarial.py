"""Attacks on an allowlist (issue 12): call gadgets, implicit calls, per-use exemptions, nested
loads, loader-exact parsing, resource exhaustion and GGUF templates.

Every sample that carries a payload is proven real first: one throwaway subprocess loads each with
its usual loader (``pickle.loads``, ``joblib.load``, ``numpy.load(allow_pickle=True)``, an
unsandboxed jinja2 render) and reports whether the canary file appeared. Then the scanner must fail
it at the default ``--fail-on high``, and the restricted unpickler must refuse the pickle ones.
"""

from __future__ import annotations

import ast
import json
import pickle
import struct
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

from bastion.errors import UnsafeArtifactError
from bastion.scan import Severity, scan_bytes, scan_path
from bastion.scan.restricted import restricted_loads

from .conftest import load_corpus_module

A = load_corpus_module("_pickleasm")
G = A.glob


def _p(*ops: bytes, proto: int = 2) -> bytes:
    return b"\x80" + bytes([proto]) + b"".join(bytes(o) for o in ops) + b"."


def _tup(*items: bytes) -> bytes:
    return A.MARK + b"".join(bytes(i) for i in items) + A.TUPLE


def _call(func: bytes, *args: bytes) -> bytes:
    return bytes(func) + _tup(*args) + A.REDUCE


def _s(text: str) -> bytes:
    return bytes(A.ustr(text))


def _npy(descr: object, payload: bytes) -> bytes:
    header = repr({"descr": descr, "fortran_order": False, "shape": (1,)}).encode("latin-1")
    header += b" " * (63 - (len(header) + 10) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + payload


def _gguf_template(template: str) -> bytes:
    def s(text: str) -> bytes:
        raw = text.encode()
        return struct.pack("<Q", len(raw)) + raw

    kvs = [("general.name", s("tiny")), ("tokenizer.chat_template", s(template))]
    out = b"GGUF" + struct.pack("<IQQ", 3, 0, len(kvs))
    for key, value in kvs:
        out += s(key) + struct.pack("<I", 8) + value
    return out + b"\0" * 32


@dataclass(frozen=True)
class Sample:
    name: str
    data: bytes
    loader: str  # pickle | npy | jinja | none (structural: nothing to run, or running it would exhaust)
    rule: str  # the finding that must be reported, at HIGH or above


def _samples(canary: Path) -> list[Sample]:
    c = str(canary)
    fh = G("logging", "FileHandler")  # not critical, not allowlisted: creates its file when built
    touch = _call(G("os", "system"), _s(f"touch {c}"))
    system_pickle = _p(touch)
    template = (
        '{{ cycler["\\x5f\\x5finit\\x5f\\x5f"]["\\x5f\\x5fglobals\\x5f\\x5f"]["os"]["po" ~ "pen"]'
        f'("touch {c}")["read"]() }}}}'
    )
    zone = G("zoneinfo", "ZoneInfo")
    return [
        # 1. call gadgets: allowlisted constructors that call their arguments
        Sample("gadget-randomstate-ctor", _p(_call(G("numpy.random._pickle", "__randomstate_ctor"), _s(c), fh)),
               "pickle", "pickle.unknown-callable"),
        Sample("gadget-generator-ctor", _p(_call(G("numpy.random._pickle", "__generator_ctor"), _s(c),
                                                 G("sqlite3", "connect"))), "pickle", "pickle.unknown-callable"),
        Sample("gadget-partial-as-ctor", _p(_call(G("numpy.random._pickle", "__randomstate_ctor"), _s("a"),
                                                  _call(G("functools", "partial"), fh, _s(c)))),
               "pickle", "pickle.call-gadget"),
        Sample("gadget-allowlisted-in-call-position", _p(_call(G("numpy.random._pickle", "__randomstate_ctor"),
                                                               _s("MT19937"), G("builtins", "len"))),
               "none", "pickle.call-gadget"),
        # 2. calls the unpickler makes by itself
        Sample("implicit-planted-setstate", _p(_call(G("collections", "OrderedDict")), A.MARK, _s("__setstate__"),
                                               fh, b"d", A.BUILD, _s(c), A.BUILD), "pickle", "pickle.implicit-call"),
        Sample("implicit-planted-append", _p(_call(G("collections", "OrderedDict")), A.MARK, _s("append"), fh,
                                             b"d", A.BUILD, A.MARK, _s(c), A.APPENDS), "pickle",
               "pickle.implicit-call"),
        # 3. exemptions per use: one legitimate getattr lookup does not excuse another use of getattr
        Sample("getattr-exempt-once-only", _p(bytes(G("builtins", "getattr")), A.binput(0), A.POP,
                                              _call(A.binget(0), zone, _s("_unpickle")), A.POP,
                                              A.MARK, A.binget(0), b"l"), "none", "pickle.dangerous-global"),
        # 5. loader-exact parsing: every spelling of an object dtype
        Sample("npy-object-spelled-object", _npy("object", system_pickle), "npy", "pickle.dangerous-global"),
        Sample("npy-object-subarray", _npy(("O", (1,)), system_pickle), "npy", "pickle.dangerous-global"),
        Sample("npy-object-nested-field", _npy([("a", [("b", "O")])], system_pickle), "npy",
               "pickle.dangerous-global"),
        Sample("npy-object-spelled-O8", _npy("|O8", system_pickle), "npy", "pickle.dangerous-global"),
        # 6. resource exhaustion through allowlisted callables
        Sample("pow-huge-exponent", _p(_call(G("builtins", "pow"), A.value(10), A.value(10**9))), "none",
               "limit.allocation"),
        Sample("bytes-huge", _p(_call(G("builtins", "bytes"), A.value(1 << 40))), "none", "limit.allocation"),
        # 7. GGUF template: dunders spelled with escapes, names joined with ~
        Sample("gguf-escaped-dunders", _gguf_template(template), "jinja", "gguf.chat-template-injection"),
    ]


_LOADER = textwrap.dedent("""
    import io, json, os, pickle, struct, sys, warnings
    warnings.simplefilter("ignore")
    manifest, canary = json.load(open(sys.argv[1])), sys.argv[2]
    out = {}
    for name, (path, loader) in manifest.items():
        data = open(path, "rb").read()
        try:
            if loader == "pickle":
                pickle.loads(data)
            elif loader == "npy":
                import numpy
                numpy.load(io.BytesIO(data), allow_pickle=True)
            elif loader == "jinja":
                import jinja2
                key = b"tokenizer.chat_template"
                at = data.index(key) + len(key) + 4  # value type, then a u64 length and the text
                (size,) = struct.unpack("<Q", data[at:at + 8])
                jinja2.Template(data[at + 8:at + 8 + size].decode()).render(messages=[])
        except Exception:
            pass
        out[name] = os.path.exists(canary)
        if out[name]:
            os.remove(canary)
    print(json.dumps(out))
""")


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Sample]]:
    base = tmp_path_factory.mktemp("adversarial")
    canary = base / "canary" / "PWNED"
    canary.parent.mkdir()
    items = _samples(canary)
    for s in items:
        (base / s.name).write_bytes(s.data)
    return base, items


def test_payloads_are_real_under_their_usual_loaders(samples: tuple[Path, list[Sample]]) -> None:
    base, items = samples
    manifest = {s.name: (str(base / s.name), s.loader) for s in items if s.loader != "none"}
    (base / "manifest.json").write_text(json.dumps(manifest))
    canary = base / "canary" / "PWNED"
    run = subprocess.run([sys.executable, "-c", _LOADER, str(base / "manifest.json"), str(canary)],
                         capture_output=True, text=True, timeout=120, cwd=base / "canary", check=True)
    created = json.loads(run.stdout.strip().splitlines()[-1])
    assert created == dict.fromkeys(manifest, True), run.stderr[-2000:]


@pytest.mark.parametrize("name", [s.name for s in _samples(Path("/nonexistent/PWNED"))])
def test_scanner_fails_every_sample_at_the_default_threshold(samples: tuple[Path, list[Sample]], name: str) -> None:
    base, items = samples
    sample = next(s for s in items if s.name == name)
    report = scan_path(base / name)
    assert not report.is_clean(), report.to_text()
    rules = {f.rule_id: f.severity for f in report.findings}
    assert rules.get(sample.rule, Severity.INFO) >= Severity.HIGH, rules
    assert not (base / "canary" / "PWNED").exists()


@pytest.mark.parametrize("name", [s.name for s in _samples(Path("/nonexistent/PWNED"))
                                  if s.loader == "pickle" or s.name.startswith(("gadget", "pow", "bytes"))])
def test_restricted_loader_refuses_every_pickle_sample(samples: tuple[Path, list[Sample]], name: str) -> None:
    base, items = samples
    sample = next(s for s in items if s.name == name)
    with pytest.raises(UnsafeArtifactError):
        restricted_loads(sample.data)
    assert not (base / "canary" / "PWNED").exists()


# -- loader-exact parsing without a payload to run ----------------------------------------------------


def test_frame_straddle_is_a_finding_because_the_two_unpicklers_disagree() -> None:
    body = bytes(A.ustr("abcdef")) + b"."
    data = b"\x80\x04" + A.frame(body[:3])[:9] + body  # the frame claims 3 bytes; the string needs 8
    assert pickle.loads(data) == "abcdef"  # the C unpickler reads straight through
    with pytest.raises(pickle.UnpicklingError, match="frame"):
        pickle._loads(data)  # type: ignore[attr-defined]  # the pure-Python one (joblib's) does not
    rules = {f.rule_id for f in scan_bytes(data).findings}
    assert "pickle.frame-mismatch" in rules


def test_ordinary_framed_pickles_are_clean() -> None:
    for proto in (4, 5):
        data = pickle.dumps({"a": list(range(10000)), "b": "x" * 100000}, protocol=proto)
        assert scan_bytes(data).is_clean(), scan_bytes(data).to_text()


def test_joblib_wrapper_built_through_copyreg_is_read_as_joblib_does(tmp_path: Path) -> None:
    import joblib
    import numpy as np

    from bastion.scan.restricted import restricted_load

    path = tmp_path / "p1.joblib"
    arr = np.arange(4096, dtype="f8")
    joblib.dump({"w": arr}, path, protocol=1)  # protocol 1: copyreg._reconstructor(NumpyArrayWrapper, ...)
    assert b"_reconstructor" in path.read_bytes()
    report = scan_path(path)
    assert report.is_clean(), report.to_text()  # the array bytes are skipped, not parsed as opcodes
    loaded = restricted_load(path)
    assert isinstance(loaded, dict) and (loaded["w"] == arr).all()


def test_npy_plain_dtypes_stay_clean(tmp_path: Path) -> None:
    import numpy as np

    for dtype in ("<f8", "|b1", "<U3", "|S2", "<M8[ns]", "<c16", [("a", "<f4"), ("b", "<i2", (2,))]):
        path = tmp_path / "a.npy"
        np.save(path, np.zeros(3, dtype=dtype))
        assert scan_path(path).is_clean(), (dtype, scan_path(path).to_text())


def test_custom_main_class_says_how_to_allow_it() -> None:
    data = b"\x80\x02c__main__\nMyScaler\n)\x81}b."
    found = [f for f in scan_bytes(data).findings if f.construct == "__main__.MyScaler"]
    assert found and found[0].severity >= Severity.HIGH
    assert "--allow-finding" in found[0].remediation and "audited" in found[0].remediation


def test_argparse_namespace_checkpoints_pass() -> None:
    import argparse

    data = pickle.dumps({"args": argparse.Namespace(lr=0.1, arch="transformer_lm"), "epoch": 3})
    assert scan_bytes(data).is_clean()
    assert restricted_loads(data) == {"args": argparse.Namespace(lr=0.1, arch="transformer_lm"), "epoch": 3}


@pytest.mark.parametrize(
    ("template", "bad"),
    [
        ("{% for m in messages %}{{ m['role'] }}: {{ m['content'] | trim }}{% endfor %}", False),
        ("{{ messages[loop.index0 + 1]['content'] }}{{ m.content.split('</think>')[-1] }}", False),
        ("{% set ns = namespace(found=false) %}{{ raise_exception('x') if ns.found }}", False),
        ("{{ x['\\x5f\\x5fclass\\x5f\\x5f'] }}", True),
        ("{{ lipsum[('_' * 2) ~ 'globals' ~ ('_' * 2)] }}", True),
        ("{{ '{0.__class__}'.format(x) }}", True),
        ("{{ x | attr('a' ~ 'b') }}", True),
        ("{{ self._TemplateReference__context }}", True),
    ],
)
def test_gguf_templates_are_judged_through_jinja2s_parser(template: str, bad: bool) -> None:
    from bastion.scan.templates import template_danger

    assert (template_danger(template) is not None) is bad
    ast.parse("0")  # keep the import used when jinja2 would refuse the template
