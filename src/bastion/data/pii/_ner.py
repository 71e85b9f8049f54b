"""Optional spaCy NER backend for PERSON spans: used only when asked for and a model is installed.

Models are never downloaded: `spacy.load` gets a locally installed package name.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from bastion.data.pii.interface import Span
from bastion.errors import ConfigError

__all__ = ["ner_spans"]

DEFAULT_MODEL = "en_core_web_sm"


@lru_cache(maxsize=2)
def _load(model: str) -> Any:
    try:
        import spacy
    except ImportError as e:
        raise ConfigError("The spaCy NER backend needs spaCy: pip install spacy, then a model package.") from e
    if not spacy.util.is_package(model):
        raise ConfigError(
            f"The spaCy model {model!r} is not installed; Bastion never downloads models. "
            "Install the model package yourself or drop the NER option."
        )
    return spacy.load(model, disable=["lemmatizer", "parser", "tagger", "attribute_ruler"])


def ner_spans(texts: list[str], option: str) -> list[list[Span]]:
    """PERSON spans from spaCy for each text; ``option`` is ``"spacy"`` or ``"spacy:MODEL"``."""
    backend, _, model = option.partition(":")
    if backend != "spacy":
        raise ConfigError(f"Unknown NER backend {backend!r}; the only one is 'spacy' (or 'spacy:MODEL').")
    nlp = _load(model or DEFAULT_MODEL)
    out: list[list[Span]] = []
    for doc in nlp.pipe(texts, batch_size=128):
        out.append([Span("PERSON", e.start_char, e.end_char, 0.8) for e in doc.ents if e.label_ == "PERSON"])
    return out
