"""EMAIL recognizer: RFC-5322-ish addresses with a dotted domain and a letter TLD."""

from __future__ import annotations

from bastion.data.pii.interface import EntityType, RegexRecognizer

__all__ = ["EmailRecognizer"]

# local parts may hold any letters (RFC 6531: "josé.müller@…"); \w is Unicode-aware in str patterns
_LOCAL = r"[^\W_](?:[\w.%+-]{0,62}[\w%+-])?"
_DOMAIN = r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}"

class EmailRecognizer(RegexRecognizer):
    entity = EntityType.EMAIL
    name_hints = (r"e_?mail", r"mail_?addr", r"contact")
    priority = 80
    cell_pattern = rf"(?:mailto:)?{_LOCAL}@{_DOMAIN}"
    # the lookahead is implied by _LOCAL (at most 64 of its characters, then "@"); it only skips words faster
    text_pattern = rf"(?=[\w.%+-]{{1,64}}+@)(?<![\w.@%+-]){_LOCAL}@{_DOMAIN}(?![\w@-])"
    text_requires = "@"  # only cells with an "@" are searched
    context_words = ("email", "e-mail", "mail", "contact", "write to")
    base_score = 0.95

    def mask(self, value: str) -> str:
        local, _, domain = value.partition("@")
        tld = domain.rsplit(".", 1)[-1] if "." in domain else ""
        return f"{local[:1]}***@{'*' * min(8, max(1, len(domain) - len(tld) - 1))}.{tld}"

