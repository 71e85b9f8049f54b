"""URL recognizer: http(s)/ftp links and www. hosts; an email address is never also a URL."""

from __future__ import annotations

import re

from bastion.data.pii.interface import EntityType, RegexRecognizer

__all__ = ["UrlRecognizer"]

_HOST = r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}(?::\d{2,5})?"


class UrlRecognizer(RegexRecognizer):
    entity = EntityType.URL
    name_hints = (r"url", r"link", r"website", r"homepage", r"profile")
    priority = 40
    cell_pattern = rf"(?:(?:https?|ftp)://(?:[^\s/@]+@)?{_HOST}|www\.{_HOST})(?:[/?#][^\s]*)?"
    cell_flags = re.IGNORECASE
    text_pattern = rf"(?=[hfw])(?<![\w@.])(?:(?:https?|ftp)://{_HOST}|www\.{_HOST})(?:[/?#][^\s<>\"']*)?"
    text_flags = re.IGNORECASE
    # only cells with "://" or "www." (any case) are searched
    text_requires = r"[:wW](?:(?<=:)//|(?<=[wW])[wW][wW]\.)"
    base_score = 0.7

    def score_span(self, match: str, before: str, after: str) -> float | None:
        # trailing sentence punctuation is not part of a link; the engine trims it
        return self.base_score

    def mask(self, value: str) -> str:
        scheme, sep, rest = value.partition("://")
        if not sep:
            scheme, rest = "", value
        masked = re.sub(r"[^\W_]", "*", rest[:40])
        return f"{scheme}{sep}{masked}"
