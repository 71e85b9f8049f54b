"""`bastion gate run` when the policy's alias rules require a signature: the attestation must be signed,
so a missing key or passphrase is refused (exit 1, saying why) before any check runs, or asked for in a
terminal. Without such a rule an unsigned gate is still fine."""

from __future__ import annotations

import sys

import pytest
import yaml

from bastion.demo.data import ADULT_FEATURES, ADULT_TARGET, load_adult

PASS = "correct horse battery staple"


@pytest.fixture
def income(project, project_dir):
    from tests.gates.conftest import baseline

    train = load_adult("train", rows=1500)
    model = baseline().fit(train[ADULT_FEATURES], train[ADULT_TARGET])
    mv = project.log_model(model, name="income")
    load_adult("test", rows=600).to_parquet(project_dir / "holdout.parquet")
    return mv.ref


def _policy(project_dir, *, requires: list[str]) -> None:
    doc = {"version": 1, "positive_label": 1, "checks": {"performance": {"thresholds": {"accuracy": 0.6}}},
           "aliases": {"production": {"requires": requires}, "staging": {"requires": ["gate"]}}}
    (project_dir / "bastion-policy.yaml").write_text(yaml.safe_dump(doc))


def _gate(cli, ref, *extra):
    return cli("gate", "run", ref, "--data", "holdout.parquet", "--target", ADULT_TARGET, *extra)


def test_no_signing_key_is_refused_before_the_gate_runs(cli, income, project, project_dir, monkeypatch) -> None:
    monkeypatch.delenv("BASTION_KEY_PASSPHRASE", raising=False)
    _policy(project_dir, requires=["gate", "signature", "scan"])
    r = _gate(cli, income)
    assert r.exit_code == 1
    assert "production" in r.stderr and "require a signature" in r.stderr and "bastion keys signing init" in r.stderr
    assert project.attachments(income, "gate") == []  # nothing ran, nothing stored


def test_key_without_passphrase_and_no_terminal_is_refused(cli, income, project, project_dir, monkeypatch) -> None:
    monkeypatch.setenv("BASTION_KEY_PASSPHRASE", PASS)
    assert cli("keys", "signing", "init", "release").exit_code == 0
    monkeypatch.delenv("BASTION_KEY_PASSPHRASE")
    _policy(project_dir, requires=["gate", "signature"])
    r = _gate(cli, income)
    assert r.exit_code == 1 and "BASTION_KEY_PASSPHRASE" in r.stderr and "encrypted" in r.stderr
    assert "\n" not in r.stderr.strip()  # one line, never cut
    assert project.attachments(income, "gate") == []
    no_sign = _gate(cli, income, "--no-sign")
    assert no_sign.exit_code == 1 and "--no-sign refused" in no_sign.stderr


def test_terminal_prompts_for_the_passphrase_and_signs(cli, income, project, project_dir, monkeypatch) -> None:
    monkeypatch.setenv("BASTION_KEY_PASSPHRASE", PASS)
    assert cli("keys", "signing", "init", "release").exit_code == 0
    monkeypatch.delenv("BASTION_KEY_PASSPHRASE")
    _policy(project_dir, requires=["gate", "signature"])
    asked: list[str] = []

    def prompt(text: str, hide_input: bool = False) -> str:
        asked.append(text)
        assert hide_input
        return "wrong passphrase" if len(asked) == 1 else PASS

    monkeypatch.setattr(sys.stdin, "isatty", lambda: True)
    monkeypatch.setattr("typer.prompt", prompt)
    wrong = _gate(cli, income)
    assert wrong.exit_code == 1 and "Cannot sign the gate attestation" in wrong.stderr
    ok = _gate(cli, income)
    assert ok.exit_code == 0, ok.stderr
    assert "(signed)" in ok.stdout and len(asked) == 2
    [att] = project.attachments(income, "attestation")
    assert att.get("bundle") or att.get("signed")


def test_without_a_signature_rule_an_unsigned_gate_still_passes(cli, income, project_dir, monkeypatch) -> None:
    monkeypatch.delenv("BASTION_KEY_PASSPHRASE", raising=False)
    _policy(project_dir, requires=["gate"])
    r = _gate(cli, income)
    assert r.exit_code == 0, r.stderr
    assert "(unsigned)" in r.stdout
