"""Masking of example values for reports: the shape stays, the value does not.

Reports and logs only ever see what these functions return.
"""

from __future__ import annotations

import re

__all__ = ["mask_generic", "mask_keep_last", "mask_name", "mask_span"]

_WORD = re.compile(r"[^\W\d_]+|\d+")


def mask_generic(value: str) -> str:
    """Letters and digits become ``*``; separators stay. Long values are cut to 40 characters."""
    out = re.sub(r"[^\W_]", "*", value[:40])
    return out + ("…" if len(value) > 40 else "")


def mask_keep_last(value: str, keep: int = 4) -> str:
    """Mask every letter/digit except the last ``keep`` digits (``***-**-6789``)."""
    digits_seen = 0
    chars = list(value[-60:])
    for i in range(len(chars) - 1, -1, -1):
        ch = chars[i]
        if ch.isdigit() and digits_seen < keep:
            digits_seen += 1
            continue
        if ch.isalnum():
            chars[i] = "*"
    return "".join(chars)


def mask_name(value: str) -> str:
    """Keep the first letter of each word of a name: ``J*** S****``."""
    return _WORD.sub(lambda m: m.group(0)[0] + "*" * (len(m.group(0)) - 1), value[:60])


def mask_span(entity: str, value: str) -> str:
    """The masked form of a span value, chosen by entity type."""
    from bastion.data.pii._registry import recognizer_for

    rec = recognizer_for(entity)
    return rec.mask(value) if rec is not None else mask_generic(value)
