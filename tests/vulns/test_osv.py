"""OSV parsing: PyPI entries only, PEP 503 names, severities from CVSS v3 vectors or the database's label."""

from __future__ import annotations

from typing import Any

import pytest

from bastion.errors import DataError
from bastion.vulns.osv import cvss3_base_score, normalize_name, parse_record, severity_rank
from tests.vulns.conftest import osv


@pytest.mark.parametrize(
    ("name", "expected"),
    [("Scikit_Learn", "scikit-learn"), ("zope.interface", "zope-interface"), ("A-_.-b", "a-b"),
     ("numpy", "numpy"), ("Django", "django")],
)
def test_pep503_normalisation(name: str, expected: str) -> None:
    assert normalize_name(name) == expected


@pytest.mark.parametrize(
    ("vector", "score"),
    [
        ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", 9.8),
        ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H", 10.0),
        ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N", 7.5),
        ("CVSS:3.0/AV:N/AC:H/PR:N/UI:R/S:U/C:L/I:N/A:N", 3.1),
        ("CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:N/I:N/A:N", 0.0),
        ("CVSS:3.1/AV:N/AC:L/PR:L/UI:R/S:C/C:L/I:L/A:N", 5.4),
        ("CVSS:3.1/AV:P/AC:H/PR:H/UI:R/S:U/C:L/I:N/A:N", 1.6),
    ],
)
def test_cvss3_base_scores_match_the_specification_examples(vector: str, score: float) -> None:
    assert cvss3_base_score(vector) == score


@pytest.mark.parametrize(
    "vector",
    ["CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H", "CVSS:3.1/AV:X/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
     "CVSS:2.0/AV:N/AC:L/Au:N/C:P/I:P/A:P", "AV:N/AC:L/Au:N/C:P/I:P/A:P",
     "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H\n",
     "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N"],
)
def test_incomplete_or_other_vectors_have_no_v3_score(vector: str) -> None:
    assert cvss3_base_score(vector) is None


def test_record_fields_and_severity_from_vector() -> None:
    rec = osv("GHSA-aaaa-bbbb-cccc", "Scikit_Learn", events=[{"introduced": "0"}, {"fixed": "1.5.0"}],
              aliases=["CVE-2024-0001"], summary="Bad thing",
              severity=[{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N"}])
    adv = parse_record(rec)
    assert adv.id == "GHSA-aaaa-bbbb-cccc"
    assert adv.aliases == ("CVE-2024-0001",)
    assert adv.severity == "high" and adv.score == 7.5
    assert adv.summary == "Bad thing"
    assert adv.affected[0].package == "scikit-learn"
    assert adv.affected[0].ranges == ((("introduced", "0"), ("fixed", "1.5.0")),)


@pytest.mark.parametrize(
    ("db", "expected"), [("MODERATE", "medium"), ("HIGH", "high"), ("low", "low"), ("CRITICAL", "critical"),
                         ("bogus", "unknown"), (None, "unknown")],
)
def test_database_severity_label_when_no_vector(db: str | None, expected: str) -> None:
    assert parse_record(osv("PYSEC-2024-1", versions=["1.0"], db_severity=db)).severity == expected


def test_v4_vector_alone_leaves_severity_to_the_database_label() -> None:
    v4 = "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N"
    adv = parse_record(osv("GHSA-v4", versions=["1.0"], severity=[{"type": "CVSS_V4", "score": v4}],
                           db_severity="LOW"))
    assert (adv.severity, adv.vector, adv.score) == ("low", v4, None)


def test_non_pypi_entries_are_dropped_and_named() -> None:
    rec = osv("GHSA-multi", "left-pad", ecosystem="npm", versions=["1.0.0"])
    rec["affected"].append({"package": {"ecosystem": "PyPI", "name": "NumPy"}, "versions": ["1.0"]})
    rec["affected"].append({"package": {"ecosystem": "Go", "name": "x"}, "versions": ["1"]})
    adv = parse_record(rec)
    assert [a.package for a in adv.affected] == ["numpy"]
    assert adv.other_ecosystems == ("Go", "npm")


def test_git_and_semver_ranges_and_limit_events_are_ignored() -> None:
    rec = osv("GHSA-git", versions=["1.0"])
    rec["affected"][0]["ranges"] = [
        {"type": "GIT", "repo": "https://x", "events": [{"introduced": "abc"}, {"fixed": "def"}]},
        {"type": "ECOSYSTEM", "events": [{"introduced": "1.0"}, {"limit": "2.0"}, {"fixed": "1.2"}]},
    ]
    assert parse_record(rec).affected[0].ranges == ((("introduced", "1.0"), ("fixed", "1.2")),)


def _bad(**changes: Any) -> dict[str, Any]:
    rec = osv("GHSA-bad", versions=["1.0"])
    rec.update(changes)
    return rec


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ([], "must be a JSON object"),
        ({"modified": "2026-01-01T00:00:00Z"}, "'id' is missing"),
        (_bad(id="../../etc/passwd"), "not a valid identifier"),
        (_bad(id="GHSA-x\n"), "not a valid identifier"),
        (_bad(modified=None), "'modified' is missing"),
        (_bad(modified=5), "must be a string"),
        (_bad(affected={"package": {}}), "'affected' must be a list"),
        (_bad(affected=[{"package": {"name": "x"}}]), "package.name and package.ecosystem"),
        (_bad(affected=["x"]), "must be an object"),
        (_bad(affected=[{"package": {"name": "x", "ecosystem": "PyPI"},
                         "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0", "fixed": "1"}]}]}]),
         "exactly one key"),
        (_bad(affected=[{"package": {"name": "x", "ecosystem": "PyPI"},
                         "ranges": [{"type": "ECOSYSTEM", "events": [{"broken": "1"}]}]}]), "unknown range event"),
    ],
)
def test_malformed_records_are_refused_with_the_field_named(record: Any, message: str) -> None:
    with pytest.raises(DataError, match=message):
        parse_record(record, where="file.json")


def test_unknown_severity_ranks_as_the_policy_says() -> None:
    assert severity_rank("unknown") == severity_rank("critical")
    assert severity_rank("unknown", unknown_as="low") == severity_rank("low")
    assert severity_rank("none") < severity_rank("low") < severity_rank("medium") < severity_rank("high")
