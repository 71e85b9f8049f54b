from __future__ import annotations

import pytest
from sklearn.linear_model import LogisticRegression

from bastion.errors import NotFoundError, RegistryError
from bastion.project import Project


@pytest.fixture
def three(any_project: Project, toy_model: LogisticRegression) -> Project:
    for _ in range(3):
        any_project.log_model(toy_model, name="churn")
    return any_project


def test_promote_and_rollback_step_by_step(three: Project) -> None:
    p = three
    for v in (1, 2, 3):
        p.promote(f"churn:{v}", alias="production")
    assert p.get_model("churn@production").version == 3
    assert p.rollback("churn", alias="production").version == 2
    assert p.get_model("churn@production").version == 2
    assert p.rollback("churn", alias="production").version == 1
    with pytest.raises(RegistryError, match="no earlier version"):
        p.rollback("churn", alias="production")
    assert p.get_model("churn@production").version == 1
    hist = p.alias_history("churn", "production")
    assert [h["version"] for h in hist] == [1, 2, 3]
    assert [h["active"] for h in hist] == [True, False, False]
    actions = [e.action for e in p.audit.entries(action="model.", newest_first=False)]
    assert actions.count("model.promote") == 3 and actions.count("model.rollback") == 2
    assert p.audit.verify().ok


def test_promote_after_rollback_continues_from_there(three: Project) -> None:
    p = three
    p.promote("churn:1", alias="prod")
    p.promote("churn:2", alias="prod")
    p.rollback("churn", alias="prod")
    p.promote("churn:3", alias="prod")
    assert p.rollback("churn", alias="prod").version == 1


def test_aliases_are_listed_on_versions(three: Project) -> None:
    three.promote("churn:2", alias="staging")
    three.promote("churn:2", alias="production")
    assert three.get_model("churn:2").aliases == ("production", "staging")


@pytest.mark.parametrize(
    "call,err,match",
    [
        (lambda p: p.rollback("churn", alias="production"), RegistryError, "never been set"),
        (lambda p: p.rollback("ghost", alias="production"), NotFoundError, "No model named 'ghost'"),
        (lambda p: p.promote("churn:9", alias="production"), NotFoundError, "versions: 1..3"),
        (lambda p: p.promote("churn:1", alias="1bad"), RegistryError, "Invalid alias"),
        (lambda p: p.get_model("churn@nope"), NotFoundError, "no alias 'nope'"),
    ],
)
def test_bad_alias_operations_change_nothing(three: Project, call, err, match) -> None:  # type: ignore[no-untyped-def]
    before = three.audit.count()
    with pytest.raises(err, match=match):
        call(three)
    assert three.audit.count() == before


def test_deleted_version_cannot_be_promoted(three: Project) -> None:
    three.delete_model("churn:2", reason="leak")
    with pytest.raises(RegistryError, match="deleted"):
        three.promote("churn:2", alias="production")
    with pytest.raises(RegistryError, match="never been set"):
        three.rollback("churn", alias="production")


def test_version_behind_an_alias_cannot_be_deleted(three: Project) -> None:
    three.promote("churn:1", alias="production")
    with pytest.raises(RegistryError, match="behind alias"):
        three.delete_model("churn:1")


_POLICY = """version: 1
checks: {}
aliases:
  production:
    requires: [gate]
    force_allowed: [release-manager]
"""


def test_forcing_a_refused_promotion_needs_an_allowed_actor_and_is_audited(
    three: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dataclasses import replace

    from bastion.errors import PolicyViolation

    (three.root / "bastion-policy.yaml").write_text(_POLICY)
    with pytest.raises(PolicyViolation, match="refused"):
        three.promote("churn:1", alias="production")
    with pytest.raises(PolicyViolation, match="may not force"):
        three.promote("churn:1", alias="production", force_reason="hotfix")
    three.settings = replace(three.settings, user="release-manager")
    three.audit.actor = "release-manager"
    with pytest.raises(PolicyViolation, match="refused"):
        three.promote("churn:1", alias="production", force_reason="  ")
    three.promote("churn:1", alias="production", force_reason="hotfix for incident 42")
    entry = three.audit.entries(action="model.promote.forced")[0]
    assert entry.actor == "release-manager"
    assert entry.details["reason"] == "hotfix for incident 42"
    assert entry.details["refused_because"]
    assert three.get_model("churn@production").version == 1
