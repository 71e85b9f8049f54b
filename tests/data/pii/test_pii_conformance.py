"""Every built-in recognizer passes the conformance helper offered to plugin authors; the NER hook works."""

from __future__ import annotations

import pytest

from bastion.data.pii import detect_spans
from bastion.data.pii._registry import builtin_recognizers
from bastion.data.pii.testing import check_recognizer
from bastion.errors import ConfigError

EXAMPLES = {
    "EMAIL": ("jane.doe@example.com",),
    "US_SSN": ("123-45-6789",),
    "CREDIT_CARD": ("4111 1111 1111 1111",),
    "IBAN": ("DE89 3704 0044 0532 0130 00",),
    "PHONE": ("+44 20 7946 0958",),
    "URL": ("https://example.org/x",),
}


@pytest.mark.parametrize("rec", builtin_recognizers(), ids=lambda r: str(r.entity))
def test_builtin_conforms(rec):
    check_recognizer(rec, examples=EXAMPLES.get(str(rec.entity), ()))


def test_conformance_catches_a_leaky_mask():
    from bastion.data.pii.email import EmailRecognizer

    class Leaky(EmailRecognizer):
        def mask(self, value: str) -> str:
            return value

    with pytest.raises(AssertionError, match="mask"):
        check_recognizer(Leaky(), examples=("jane.doe@example.com",))


class _Ent:
    def __init__(self, s, e, label):
        self.start_char, self.end_char, self.label_ = s, e, label


class _Doc:
    def __init__(self, ents):
        self.ents = ents


class _FakeNlp:
    def pipe(self, texts, batch_size):
        for t in texts:
            i = t.find("Zyx Qwv")
            yield _Doc([_Ent(i, i + 7, "PERSON")] if i >= 0 else [])


def test_ner_backend_adds_person_spans(monkeypatch):
    import bastion.data.pii._ner as ner

    monkeypatch.setattr(ner, "_load", lambda model: _FakeNlp())
    spans = detect_spans("we met zyx and Zyx Qwv today", ner="spacy")
    assert [(s.entity, s.start, s.end) for s in spans] == [("PERSON", 15, 22)]


def test_ner_backend_errors_are_config_errors():
    with pytest.raises(ConfigError):
        detect_spans("text", ner="nope")
    with pytest.raises(ConfigError, match=r"spaCy|not installed"):
        detect_spans("text", ner="spacy:definitely_not_a_model_xyz")
