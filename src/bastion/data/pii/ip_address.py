"""IP_ADDRESS recognizer: IPv4 and IPv6, validated by `ipaddress`; version strings are rejected by context."""

from __future__ import annotations

import ipaddress
import re

import numpy as np
import pandas as pd

from bastion.data.pii.interface import EntityType, Recognizer, as_mask, fullmatch_mask

__all__ = ["IpAddressRecognizer"]

_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_V4 = rf"{_OCTET}(?:\.{_OCTET}){{3}}"
_V6 = r"(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}"
_V4_RE = re.compile(_V4)
_VERSION_WORDS = ("version", "ver ", "ver.", "release", "build", "python", "v.", "firmware", "update to",
                  "upgrade", "patch", "sdk", "library", "package", "driver")


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


class IpAddressRecognizer(Recognizer):
    entity = EntityType.IP_ADDRESS
    name_hints = (r"\bip\b", r"ip_?addr", r"ipv[46]", r"client_?ip", r"remote_?addr", r"src_?ip", r"host_?addr")
    negative_name_hints = (r"version", r"\bver\b", r"release", r"build", r"firmware")
    priority = 70
    # the shared lookbehind and the lookahead are implied by both shapes (an octet and a dot, or up to four hex
    # digits and a colon); they only skip text faster
    text_pattern = (
        rf"(?<![\w:])(?=\d{{1,3}}\.|[0-9A-Fa-f]{{0,4}}:)"
        rf"(?:(?<![\w.:]){_V4}(?![\w]|\.\d)|(?:{_V6})(?![\w:]))"
    )
    # only cells with four dotted numbers or two colons close together are searched
    text_requires = r"[.:](?:(?<=\.)\d{1,3}\.\d{1,3}\.\d|(?<=:)[0-9A-Fa-f]{0,4}:)"
    context_words = ("ip", "address", "from", "login", "host", "client", "server")
    base_score = 0.8

    def match_cells(self, values: pd.Series) -> np.ndarray:
        v4 = fullmatch_mask(values, _V4_RE)
        maybe6 = as_mask(values.str.contains(":", regex=False)) & ~v4
        if maybe6.any():
            idx = np.flatnonzero(maybe6)
            ok = np.fromiter((_is_ip(v) for v in values.iloc[idx]), dtype=bool, count=len(idx))
            v4[idx[ok]] = True
        return v4

    def refine(self, values: pd.Series, mask: np.ndarray, *, named: bool) -> tuple[float, tuple[str, ...]]:
        if named or not mask.any():
            return 1.0, ()
        v4 = values[mask]
        v4 = v4[v4.str.fullmatch(_V4_RE).fillna(False)]
        if len(v4) < max(1, int(mask.sum()) // 2):
            return 1.0, ()
        octets = v4.str.split(".", expand=True).astype(np.int64).to_numpy()
        # version numbers: small components throughout; addresses: big octets are common
        if octets[:, 0].max() < 40 and (octets[:, 1:] < 64).mean() > 0.95:
            return 0.0, ("dotted numbers look like version strings (all components small)",)
        return 1.0, ()

    def score_span(self, match: str, before: str, after: str) -> float | None:
        if not _is_ip(match):
            return None
        low = before.lower()[-25:]
        if any(w in low for w in _VERSION_WORDS) or low.endswith("v"):
            return None
        if ":" not in match:
            octets = [int(o) for o in match.split(".")]
            if octets[0] < 40 and max(octets[1:]) < 64 and not self.has_context(before[-30:]):
                return None  # small dotted numbers without IP context read as versions
        return 0.9 if self.has_context(before[-30:]) else self.base_score

    def mask(self, value: str) -> str:
        if not _is_ip(value):
            from bastion.data.pii._mask import mask_generic

            return mask_generic(value)
        if ":" in value:
            head = value.split(":", 1)[0]
            return head + ":" + re.sub(r"[0-9A-Fa-f]", "*", value[len(head) + 1 :])
        first = value.split(".", 1)[0]
        return first + ".***.***.***"
