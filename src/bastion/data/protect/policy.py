"""The protection policy: which operator each column (or entity type, or span in free text) gets.

Read from the ``protection:`` section of ``bastion-policy.yaml``; strict, an unknown key is a ``ConfigError``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bastion.errors import ConfigError
from bastion.policy_file import PolicyDocument, read_policy_file, register_section

__all__ = [
    "DEFAULT_ENTITY_RULES",
    "DEFAULT_QUASI_IDENTIFIER_NAMES",
    "OPERATORS",
    "TEXT_OPERATORS",
    "Policy",
    "Rule",
    "load_policy",
]

#: national identifiers (bastion.data.pii.national_ids): encrypted like SSNs by default
NATIONAL_ID_ENTITIES = (
    "UK_NHS", "UK_NINO", "ES_NIF", "ES_NIE", "IT_FISCAL_CODE", "PL_PESEL", "NL_BSN", "FR_NIR", "DE_TAX_ID",
    "BR_CPF", "IN_AADHAAR", "IN_PAN", "AU_TFN", "SG_NRIC",
)  # fmt: skip
OPERATORS = ("keep", "drop", "redact", "mask", "hash", "tokenize", "encrypt", "generalize")
TEXT_OPERATORS = ("keep", "drop", "redact", "mask", "hash", "tokenize")
_OPTIONS: dict[str, set[str]] = {
    "keep": set(),
    "drop": set(),
    "redact": {"placeholder"},
    "mask": {"keep", "char"},
    "hash": {"domain"},
    "tokenize": {"domain"},
    "encrypt": set(),
    "generalize": {"to", "bands"},
}
_COMMON = {"operator", "scope"}
GENERALIZE_TO = ("year", "month", "zip3", "band")


@dataclass(frozen=True)
class Rule:
    """One operator with its options; ``scope`` is ``cell``, ``spans`` or None (decided by the scan)."""

    operator: str
    options: Mapping[str, Any] = field(default_factory=dict)
    scope: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"operator": self.operator, **dict(self.options)}
        if self.scope:
            d["scope"] = self.scope
        return d

    @staticmethod
    def parse(raw: Any, where: str) -> Rule:
        """A rule from ``"tokenize"`` or ``{"operator": "mask", "keep": 4}``."""
        if isinstance(raw, str):
            raw = {"operator": raw}
        if not isinstance(raw, Mapping):
            raise ConfigError(f"{where} must be an operator name or a mapping with 'operator'; got {raw!r}.")
        op = raw.get("operator")
        if op not in OPERATORS:
            raise ConfigError(f"{where}: operator must be one of {', '.join(OPERATORS)}; got {op!r}.")
        unknown = set(raw) - _COMMON - _OPTIONS[op]
        if unknown:
            allowed = ", ".join(sorted(_OPTIONS[op] | _COMMON))
            raise ConfigError(f"{where}: unknown option(s) {sorted(unknown)} for '{op}'; allowed: {allowed}.")
        scope = raw.get("scope")
        if scope not in (None, "cell", "spans"):
            raise ConfigError(f"{where}: scope must be 'cell' or 'spans'; got {scope!r}.")
        opts = {k: v for k, v in raw.items() if k not in _COMMON}
        _check_options(op, opts, where)
        return Rule(op, opts, scope)


def _check_options(op: str, opts: dict[str, Any], where: str) -> None:
    if op == "mask":
        keep = opts.get("keep", 4)
        if not isinstance(keep, int) or isinstance(keep, bool) or keep < 0:
            raise ConfigError(f"{where}: mask 'keep' must be a whole number >= 0; got {keep!r}.")
        char = opts.get("char", "*")
        if not isinstance(char, str) or len(char) != 1:
            raise ConfigError(f"{where}: mask 'char' must be one character; got {char!r}.")
    if op == "generalize":
        to = opts.get("to")
        if to is not None and to not in GENERALIZE_TO:
            raise ConfigError(
                f"{where}: generalize 'to' must be one of {', '.join(GENERALIZE_TO)}; got {to!r}."
            )
        bands = opts.get("bands")
        if bands is not None and (
            not isinstance(bands, list)
            or len(bands) < 2
            or not all(isinstance(b, int | float) and not isinstance(b, bool) for b in bands)
            or sorted(bands) != bands
            or len(set(bands)) != len(bands)
        ):
            raise ConfigError(
                f"{where}: 'bands' must be a rising list of at least two numbers; got {bands!r}."
            )
    if op in ("hash", "tokenize") and not isinstance(opts.get("domain", "default"), str):
        raise ConfigError(f"{where}: 'domain' must be a string.")
    if op == "redact" and not isinstance(opts.get("placeholder", ""), str):
        raise ConfigError(f"{where}: 'placeholder' must be a string.")


DEFAULT_ENTITY_RULES: dict[str, Rule] = {
    "PERSON": Rule("tokenize"),
    "EMAIL": Rule("tokenize"),
    "PHONE": Rule("tokenize"),
    "US_SSN": Rule("encrypt"),
    "CREDIT_CARD": Rule("encrypt"),
    "IBAN": Rule("encrypt"),
    "IP_ADDRESS": Rule("tokenize"),
    "STREET_ADDRESS": Rule("redact"),
    "DATE_OF_BIRTH": Rule("generalize", {"to": "year"}),
    "US_ZIP": Rule("generalize", {"to": "zip3"}),
    "MEDICAL_RECORD_NUMBER": Rule("tokenize"),
    "ID_NUMBER": Rule("tokenize"),
    "URL": Rule("redact"),
    **{e: Rule("encrypt") for e in NATIONAL_ID_ENTITIES},
}
#: column names taken as quasi-identifiers when the policy declares none (besides DOB and ZIP columns)
DEFAULT_QUASI_IDENTIFIER_NAMES = ("age", "sex", "gender", "race", "ethnicity", "zip", "zipcode", "postcode")
_TOP_KEYS = {
    "columns",
    "entities",
    "text",
    "default",
    "quasi_identifiers",
    "k_anonymity",
    "sample_rows",
    "max_cell_bytes",
    "ner",
    "batch_rows",
}


@dataclass(frozen=True)
class Policy:
    """A parsed protection policy. ``Policy()`` means "the scan's defaults"."""

    columns: Mapping[str, Rule] = field(default_factory=dict)
    entities: Mapping[str, Rule] = field(default_factory=dict)
    text: Mapping[str, Rule] = field(default_factory=dict)
    default: Rule = field(default_factory=lambda: Rule("keep"))
    quasi_identifiers: tuple[str, ...] | None = None
    min_k: int | None = None
    max_suppression: float = 0.02
    hierarchies: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    sample_rows: int = 1000
    max_cell_bytes: int = 1 << 20
    batch_rows: int = 65_536
    #: optional NER recognizer for names in free text ("spacy:MODEL", an installed model package); opt-in
    ner: str | None = None
    source: str = "defaults"

    def entity_rule(self, entity: str) -> Rule:
        """The rule for a whole column of ``entity`` (policy, then built-in default, then redact)."""
        return self.entities.get(entity) or DEFAULT_ENTITY_RULES.get(entity) or Rule("redact")

    def text_rule(self, entity: str, column_rule: Rule | None) -> Rule:
        """The rule for a span of ``entity`` inside a free-text column."""
        if entity in self.text:
            return self.text[entity]
        if column_rule is not None and column_rule.operator in TEXT_OPERATORS:
            return column_rule
        return self.text.get("default", Rule("redact"))

    def to_dict(self) -> dict[str, Any]:
        return {
            "columns": {k: v.to_dict() for k, v in self.columns.items()},
            "entities": {k: v.to_dict() for k, v in self.entities.items()},
            "text": {k: v.to_dict() for k, v in self.text.items()},
            "default": self.default.to_dict(),
            "quasi_identifiers": list(self.quasi_identifiers) if self.quasi_identifiers is not None else None,
            "k_anonymity": {
                "min_k": self.min_k,
                "max_suppression": self.max_suppression,
                "hierarchies": {k: list(v) for k, v in self.hierarchies.items()},
            }
            if self.min_k
            else None,
            "ner": self.ner,
            "source": self.source,
        }

    @staticmethod
    def from_dict(data: Mapping[str, Any] | None, *, source: str = "python") -> Policy:
        """Parse the ``protection:`` mapping (or a whole policy document holding one)."""
        if data is None:
            return Policy()
        if "protection" in data:
            data = data["protection"]
            if data is None:
                return Policy(source=source)
        if not isinstance(data, Mapping):
            raise ConfigError(f"{source}: 'protection' must be a mapping; got {type(data).__name__}.")
        unknown = set(data) - _TOP_KEYS
        if unknown:
            raise ConfigError(
                f"{source}: unknown key(s) {sorted(unknown)} in 'protection'; allowed: "
                f"{', '.join(sorted(_TOP_KEYS))}."
            )

        def rules(key: str, allowed: tuple[str, ...] = OPERATORS) -> dict[str, Rule]:
            raw = data.get(key) or {}
            if not isinstance(raw, Mapping):
                raise ConfigError(f"{source}: 'protection.{key}' must be a mapping of name to operator.")
            out = {str(k): Rule.parse(v, f"{source}: protection.{key}.{k}") for k, v in raw.items()}
            for k, r in out.items():
                if r.operator not in allowed:
                    raise ConfigError(
                        f"{source}: protection.{key}.{k}: '{r.operator}' cannot apply to spans "
                        f"inside text; use one of {', '.join(allowed)}."
                    )
            return out

        default = Rule.parse(data.get("default", "keep"), f"{source}: protection.default")
        if default.operator not in ("keep", "drop"):
            raise ConfigError(
                f"{source}: protection.default must be 'keep' or 'drop'; got '{default.operator}'."
            )
        qis = data.get("quasi_identifiers")
        if qis is not None and (not isinstance(qis, list) or not all(isinstance(q, str) for q in qis)):
            raise ConfigError(f"{source}: protection.quasi_identifiers must be a list of column names.")
        min_k, max_supp, hierarchies = _parse_k_anonymity(data.get("k_anonymity"), source)
        ints = {}
        for key, default_value in (
            ("sample_rows", 1000),
            ("max_cell_bytes", 1 << 20),
            ("batch_rows", 65_536),
        ):
            v = data.get(key, default_value)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ConfigError(f"{source}: protection.{key} must be a whole number >= 1; got {v!r}.")
            ints[key] = v
        return Policy(
            columns=rules("columns"),
            entities=rules("entities"),
            text=rules("text", TEXT_OPERATORS),
            default=default,
            quasi_identifiers=tuple(qis) if qis is not None else None,
            min_k=min_k,
            max_suppression=max_supp,
            hierarchies=hierarchies,
            ner=_parse_ner(data.get("ner"), source),
            source=source,
            **ints,
        )


def _parse_ner(value: Any, source: str) -> str | None:
    if value is None:
        return None
    from bastion.data.pii._ner import check_option

    if not isinstance(value, str):
        raise ConfigError(f"{source}: protection.ner must be a string like 'spacy:en_core_web_sm'; got {value!r}.")
    check_option(value, f"{source}: protection.ner")
    return value


def _parse_k_anonymity(
    kan: Any, source: str
) -> tuple[int | None, float, dict[str, tuple[str, ...]]]:
    from bastion.data.protect._kanon import LEVELS

    if kan is None:
        return None, 0.02, {}
    if not isinstance(kan, Mapping):
        raise ConfigError(f"{source}: protection.k_anonymity must be a mapping like {{min_k: 5}}; got {kan!r}.")
    unknown = set(kan) - {"min_k", "max_suppression", "hierarchies"}
    if unknown:
        raise ConfigError(
            f"{source}: unknown key(s) {sorted(unknown)} in protection.k_anonymity; allowed: "
            "hierarchies, max_suppression, min_k."
        )
    min_k = kan.get("min_k")
    if min_k is not None and (not isinstance(min_k, int) or isinstance(min_k, bool) or min_k < 1):
        raise ConfigError(
            f"{source}: protection.k_anonymity.min_k must be a whole number >= 1; got {min_k!r}."
        )
    supp = kan.get("max_suppression", 0.02)
    if not isinstance(supp, int | float) or isinstance(supp, bool) or not 0 <= supp <= 0.5:
        raise ConfigError(
            f"{source}: protection.k_anonymity.max_suppression must be a share of rows in [0, 0.5]; got {supp!r}."
        )
    raw = kan.get("hierarchies") or {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{source}: protection.k_anonymity.hierarchies must map a column to a list of levels.")
    hierarchies: dict[str, tuple[str, ...]] = {}
    for col, levels in raw.items():
        if (
            not isinstance(levels, list)
            or not levels
            or not all(isinstance(lv, str) and lv in LEVELS for lv in levels)
            or len(set(levels)) != len(levels)
        ):
            raise ConfigError(
                f"{source}: protection.k_anonymity.hierarchies.{col} must be a list of distinct levels from "
                f"{', '.join(sorted(LEVELS))}, finest first; got {levels!r}."
            )
        hierarchies[str(col)] = tuple(levels)
    return min_k, float(supp), hierarchies


def load_policy(path: Path | str | None) -> Policy:
    """Read the ``protection:`` section of a policy file; None gives the scan's defaults."""
    if path is None:
        return Policy()
    p = Path(path)
    doc = read_policy_file(p)  # one reader: every section of the file is checked by its owner
    if not doc.has("protection"):
        raise ConfigError(f"The policy file {p} has no 'protection:' section.")
    parsed = doc.parsed.get("protection")
    return parsed if isinstance(parsed, Policy) else _protection_section(doc)


def _protection_section(doc: PolicyDocument) -> Policy:
    return Policy.from_dict({"protection": doc.get("protection")}, source=doc.source)


register_section("protection", {"protection"}, _protection_section)
