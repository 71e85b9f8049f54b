from __future__ import annotations

import pytest

from bastion.data.protect import Policy, load_policy
from bastion.errors import ConfigError


def test_load_policy_file(tmp_path):
    p = tmp_path / "bastion-policy.yaml"
    p.write_text("""
protection:
  columns:
    ssn: encrypt
    phone: {operator: mask, keep: 4}
    age: {operator: generalize, to: band, bands: [0, 30, 60]}
  entities:
    EMAIL: hash
  text:
    PERSON: tokenize
  quasi_identifiers: [age, zip]
  k_anonymity: {min_k: 5}
""")
    pol = load_policy(p)
    assert pol.columns["phone"].options == {"keep": 4}
    assert pol.entity_rule("EMAIL").operator == "hash"
    assert pol.entity_rule("US_SSN").operator == "encrypt"  # built-in default
    assert pol.text_rule("PERSON", None).operator == "tokenize"
    assert pol.text_rule("EMAIL", None).operator == "redact"
    assert pol.quasi_identifiers == ("age", "zip") and pol.min_k == 5


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"protection": {"columns": {"a": "scramble"}}}, "operator must be one of"),
        ({"protection": {"columns": {"a": {"operator": "mask", "keep": -1}}}}, "whole number"),
        ({"protection": {"columns": {"a": {"operator": "mask", "kepp": 2}}}}, "unknown option"),
        ({"protection": {"colums": {}}}, "unknown key"),
        ({"protection": {"text": {"PERSON": "encrypt"}}}, "cannot apply to spans"),
        ({"protection": {"default": "tokenize"}}, "'keep' or 'drop'"),
        ({"protection": {"columns": {"a": {"operator": "generalize", "bands": [5, 1]}}}}, "rising"),
        ({"protection": {"k_anonymity": {"min_k": 0}}}, "min_k"),
    ],
)
def test_bad_policies(doc, message):
    with pytest.raises(ConfigError, match=message):
        Policy.from_dict(doc)


def test_policy_file_without_section(tmp_path):
    p = tmp_path / "p.yaml"
    p.write_text("monitoring: {}\n")
    with pytest.raises(ConfigError, match="no 'protection:'"):
        load_policy(p)


@pytest.mark.parametrize(
    ("kan", "message"),
    [
        ({"min_k": 0}, "min_k must be a whole number >= 1"),
        ({"min_k": 5, "max_suppression": 0.9}, "max_suppression must be a share of rows in [0, 0.5]"),
        ({"min_k": 5, "max_suppression": True}, "max_suppression"),
        ({"min_k": 5, "hierarchies": {"age": ["band5", "decade"]}}, "hierarchies.age must be a list of distinct"),
        ({"min_k": 5, "hierarchies": {"age": "band5"}}, "hierarchies.age"),
        ({"min_k": 5, "suppress": 1}, "unknown key(s) ['suppress']"),
        ([5], "k_anonymity must be a mapping"),
    ],
)
def test_k_anonymity_section_is_strict(kan, message):
    with pytest.raises(ConfigError) as e:
        Policy.from_dict({"k_anonymity": kan})
    assert message in str(e.value)


def test_k_anonymity_section_parses():
    pol = Policy.from_dict({"k_anonymity": {"min_k": 5, "max_suppression": 0.01, "hierarchies": {"sex": ["raw", "*"]}}})
    assert (pol.min_k, pol.max_suppression, dict(pol.hierarchies)) == (5, 0.01, {"sex": ("raw", "*")})
    assert Policy.from_dict({}).min_k is None
