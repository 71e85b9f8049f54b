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


CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' "
    "+ '\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
LLAMA2 = (
    "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set ns = namespace(s="
    "messages[0]['content']) %}{% else %}{% set loop_messages = messages %}{% endif %}{% for message in "
    "loop_messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('roles "
    "must alternate') }}{% endif %}{{ bos_token + '[INST] ' + message['content'] | trim + ' [/INST]' }}{% endfor %}"
)


@pytest.mark.parametrize(
    "template",
    [
        EVIL_TEMPLATE,
        "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
        # names assembled at render time, no dunder in the text
        "{{ (cycler|attr('_'*2 ~ 'init' ~ '_'*2)) }}",
        "{{ cycler['_' * 2 ~ 'init' ~ '_' * 2] }}",
        "{{ self._TemplateReference__context }}",
        "{{ lipsum | attr('__globals__') }}",
    ],
    ids=["mro", "globals-popen", "attr-filter", "subscript-concat", "private-attr", "attr-dunder"],
)
def test_template_injection_is_critical(template: str) -> None:
    data = _gguf([("tokenizer.chat_template", 8, _s(template))])
    assert _rules(data)["gguf.chat-template-injection"] == Severity.CRITICAL


@pytest.mark.parametrize("template", [BENIGN_TEMPLATE, CHATML, LLAMA2], ids=["simple", "chatml", "llama2"])
def test_ordinary_templates_are_info(template: str) -> None:
    assert _rules(_gguf([("tokenizer.chat_template", 8, _s(template))])) == {"gguf.chat-template": Severity.INFO}


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
