"""`bastion keys signing init|list|rotate|revoke|export`."""

from __future__ import annotations

import json

import pytest


@pytest.fixture(autouse=True)
def _passphrase(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BASTION_KEY_PASSPHRASE", "pw")


def test_life_cycle(project, cli) -> None:
    r = cli("keys", "signing", "init", "release", "--curve", "P-384", "--json")
    assert r.exit_code == 0, r.stderr
    first = json.loads(r.stdout)
    assert first["curve"] == "P-384" and first["status"] == "active"
    r = cli("keys", "signing", "rotate", "release", "--json")
    second = json.loads(r.stdout)
    r = cli("keys", "signing", "list", "--json")
    assert [(k["fingerprint"], k["status"]) for k in json.loads(r.stdout)] == [
        (first["fingerprint"], "rotated"), (second["fingerprint"], "active")]
    r = cli("keys", "signing", "export", "release")
    assert r.stdout.startswith("-----BEGIN PUBLIC KEY-----")
    r = cli("keys", "signing", "revoke", "release", "--reason", "rotated out", "--json")
    assert json.loads(r.stdout)["status"] == "revoked"
    r = cli("keys", "signing", "list")
    assert r.exit_code == 0 and "revoked" in r.stdout


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("keys", "signing", "init", "bad name"), 2, "Key name"),
        (("keys", "signing", "rotate", "nope"), 2, "No signing key named"),
        (("keys", "signing", "revoke", "nope"), 2, "--reason"),
        (("keys", "signing", "init", "k", "--curve", "ed25519"), 2, "Curve"),
    ],
)
def test_errors(project, cli, args, code: int, message: str) -> None:
    r = cli(*args)
    assert r.exit_code == code and message in (r.stderr + r.stdout)
