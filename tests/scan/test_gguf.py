"""GGUF header sanity and chat-template checks."""

from __future__ import annotations

import struct

import pytest

from bastion.scan import Severity, scan_bytes


def _s(text: str) -> bytes:
    raw = text.encode()
    return struct.pack("<Q", len(raw)) + raw


def _gguf(
    kvs: list[tuple[str, int, bytes]], tensors: int = 0, *, version: int = 3, kv_count: int | None = None
) -> bytes:
    out = b"GGUF" + struct.pack("<IQQ", version, tensors, len(kvs) if kv_count is None else kv_count)
    for key, vtype, value in kvs:
        out += _s(key) + struct.pack("<I", vtype) + value
    for i in range(tensors):
        out += _s(f"t{i}") + struct.pack("<I", 1) + struct.pack("<Q", 4) + struct.pack("<I", 0) + struct.pack("<Q", 0)
    return out + b"\0" * 32


def _rules(data: bytes) -> dict[str, Severity]:
    out: dict[str, Severity] = {}
    for f in scan_bytes(data).findings:
        out[f.rule_id] = max(out.get(f.rule_id, f.severity), f.severity)
    return out


BENIGN_TEMPLATE = "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
EVIL_TEMPLATE = "{{ ''.__class__.__mro__[1].__subclasses__() }}"


def test_valid_file_is_clean_apart_from_template_info() -> None:
    data = _gguf([("general.name", 8, _s("tiny")), ("general.alignment", 4, struct.pack("<I", 32)),
                  ("tokenizer.ggml.tokens", 9, struct.pack("<IQ", 8, 2) + _s("a") + _s("b")),
                  ("tokenizer.chat_template", 8, _s(BENIGN_TEMPLATE))], tensors=1)
    report = scan_bytes(data)
    assert report.files[0].format == "gguf"
    assert {f.rule_id: f.severity for f in report.findings} == {"gguf.chat-template": Severity.INFO}


def test_template_injection_is_critical() -> None:
    data = _gguf([("tokenizer.chat_template", 8, _s(EVIL_TEMPLATE))])
    assert _rules(data)["gguf.chat-template-injection"] == Severity.CRITICAL


@pytest.mark.parametrize(
    "data",
    [
        _gguf([], version=7),
        _gguf([], kv_count=1 << 50),
        b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + struct.pack("<Q", 1 << 40),
        _gguf([("x", 99, b"")]),
    ],
    ids=["version", "kv-count-bomb", "string-length", "value-type"],
)
def test_bad_headers_are_high(data: bytes) -> None:
    assert _rules(data)["gguf.malformed"] == Severity.HIGH
