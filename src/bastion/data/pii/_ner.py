"""Optional spaCy NER recognizer for PERSON spans in free text: opt-in, used only when asked for
(``--ner spacy:MODEL`` or ``ner:`` in the protection policy) and only with a locally installed model.

Models are never downloaded: `spacy.load` gets an installed package name. The default pipeline does not
need it: rules, dictionaries, context and row linkage find names; see bench/pii/RESULTS.md for what a model
adds on two corpora.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from functools import lru_cache
from typing import Any

from bastion.data.pii._context_names import refine_model_span
from bastion.data.pii.interface import Span
from bastion.errors import ConfigError

__all__ = ["DEFAULT_MODEL", "check_option", "ner_spans"]

DEFAULT_MODEL = "en_core_web_sm"
_OPTION = re.compile(r"spacy(?::(?P<model>[A-Za-z_][A-Za-z0-9_.\-]{0,99}))?")
_LABELS = frozenset({"PERSON", "PER"})  # English (OntoNotes) and multilingual (WikiNER) models
_SCORE = 0.8


def check_option(option: str, where: str = "--ner") -> str:
    """The model package an NER option names (``"spacy"`` or ``"spacy:MODEL"``); ConfigError otherwise."""
    m = _OPTION.fullmatch(option)
    if m is None:
        raise ConfigError(
            f"{where}: {option!r} is not an NER option; use 'spacy' or 'spacy:MODEL' with an installed spaCy "
            "model package (for example 'spacy:en_core_web_sm')."
        )
    return m.group("model") or DEFAULT_MODEL


@lru_cache(maxsize=2)
def _load(model: str) -> Any:
    try:
        import spacy
    except ImportError as e:
        raise ConfigError(
            "The NER recognizer needs spaCy and a model package: pip install spacy, then the model's package "
            "(Bastion never downloads models). Or drop the --ner option / the policy's 'ner:' key."
        ) from e
    if not spacy.util.is_package(model):
        raise ConfigError(
            f"The spaCy model {model!r} is not installed; Bastion never downloads models. "
            "Install the model package yourself or drop the NER option."
        )
    return spacy.load(model, disable=["lemmatizer", "parser", "tagger", "attribute_ruler"])


def ner_spans(texts: list[str], option: str) -> list[list[Span]]:
    """PERSON spans from a spaCy model for each text; ``option`` is ``"spacy"`` or ``"spacy:MODEL"``."""
    nlp = _load(check_option(option))
    return person_spans(texts, nlp.pipe)


def person_spans(
    texts: Sequence[str], pipe: Callable[..., Iterable[Any]], *, batch_size: int = 128
) -> list[list[Span]]:
    """PERSON spans from any spaCy-like ``pipe(texts, batch_size=...)`` (docs with ``.ents``), trimmed of
    punctuation at their ends and held to the shape evidence of the rules (`refine_model_span`): a small
    model calls eponyms, drugs and capitalised nouns PERSON (bench/pii/RESULTS.md)."""
    out: list[list[Span]] = []
    for text, doc in zip(texts, pipe(list(texts), batch_size=batch_size), strict=True):
        row: list[Span] = []
        for ent in doc.ents:
            if ent.label_ not in _LABELS:
                continue
            s, e = int(ent.start_char), int(ent.end_char)
            piece = text[s:e]
            lead = len(piece) - len(piece.lstrip(" \t\n,;:([{'\"-"))
            s += lead
            while e > s and not (text[e - 1].isalnum() or text[e - 1] == "."):
                e -= 1
            got = refine_model_span(text, s, e) if e > s else None
            if got is not None:
                row.append(Span("PERSON", got[0], got[1], _SCORE))
        out.append(row)
    return out
