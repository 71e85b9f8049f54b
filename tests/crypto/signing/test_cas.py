"""Trusted CA certificates in the shared database: added and removed by audited actions, seen by every folder
on the database, and never trusted when a row was inserted or edited behind the audit chain's back."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from bastion.crypto.signing import SigningKey, TrustStore, sign_model, verify_model
from bastion.crypto.signing.cas import (
    CA_ADD,
    add_trusted_ca,
    ca_fingerprint,
    list_trusted_cas,
    remove_trusted_ca,
    trusted_ca_certificates,
)
from bastion.errors import ConfigError, KeyManagementError, VerificationError
from bastion.store.schema import trusted_cas

from .conftest import CA, pem_cert


@pytest.fixture
def model(tmp_path: Path) -> Path:
    root = tmp_path / "model"
    root.mkdir()
    (root / "weights.bin").write_bytes(b"w" * 100)
    return root


def _signed(model: Path, ca: CA, key: Any) -> Any:
    return sign_model(model, SigningKey("cert", key, (ca.issue(key),)))


def test_a_ca_added_in_a_verifies_in_b_and_removal_is_seen(two_folders: Any, model: Path, ca: CA, p256: Any) -> None:
    a, b = two_folders
    bundle = _signed(model, ca, p256)
    with pytest.raises(VerificationError):
        verify_model(model, bundle, TrustStore.from_project(b))
    [added] = add_trusted_ca(a, pem_cert(ca.cert), reason="our release CA")
    assert added.fingerprint == ca_fingerprint(ca.cert)
    assert verify_model(model, bundle, TrustStore.from_project(b)).signer.kind == "certificate"
    entry = b.audit.entries(action=CA_ADD)[0]
    assert (entry.subject, entry.details["reason"]) == (added.fingerprint, "our release CA")
    remove_trusted_ca(a, added.fingerprint[:20], reason="rotated")
    assert trusted_ca_certificates(b) == ()
    with pytest.raises(VerificationError):
        verify_model(model, bundle, TrustStore.from_project(b))


def test_a_row_inserted_behind_the_chain_is_not_trusted(two_folders: Any, model: Path, p256: Any) -> None:
    a, b = two_folders
    rogue = CA("Rogue Root")
    with b.db.write() as conn:  # a database-level attacker: the row, but no audited action
        conn.execute(trusted_cas.insert().values(fingerprint=ca_fingerprint(rogue.cert), subject="CN=Rogue Root",
                                                 pem=pem_cert(rogue.cert).decode(), added_at="2026-01-01",
                                                 added_by="admin"))
    assert trusted_ca_certificates(a) == ()
    [info] = list_trusted_cas(a)
    assert not info.trusted and "behind the audit chain" in info.why
    with pytest.raises(VerificationError):
        verify_model(model, _signed(model, rogue, p256), TrustStore.from_project(a))


def test_a_trusted_row_swapped_for_another_certificate_is_not_trusted(two_folders: Any, ca: CA) -> None:
    a, b = two_folders
    [added] = add_trusted_ca(a, pem_cert(ca.cert))
    rogue = CA("Rogue Root")
    with b.db.write() as conn:  # keep the audited fingerprint, swap the certificate
        conn.execute(update(trusted_cas).where(trusted_cas.c.fingerprint == added.fingerprint)
                     .values(pem=pem_cert(rogue.cert).decode()))
    assert trusted_ca_certificates(b) == ()
    assert "does not match its fingerprint" in list_trusted_cas(b)[0].why


def test_a_removed_ca_reinserted_is_not_trusted(two_folders: Any, ca: CA) -> None:
    a, b = two_folders
    [added] = add_trusted_ca(a, pem_cert(ca.cert))
    remove_trusted_ca(a, added.fingerprint, reason="compromised")
    with b.db.write() as conn:
        conn.execute(trusted_cas.insert().values(fingerprint=added.fingerprint, subject="x",
                                                 pem=pem_cert(ca.cert).decode(), added_at="x", added_by="x"))
    assert trusted_ca_certificates(b) == ()
    assert "removal" in list_trusted_cas(b)[0].why


def test_a_forged_add_entry_without_a_checkpoint_is_not_trusted(two_folders: Any, ca: CA) -> None:
    # With an audit key every add is anchored by a signed checkpoint; an entry appended by someone who can write
    # the database (a correct hash chain, but no checkpoint key) proves nothing.
    from bastion.audit.checkpoints import init_audit_key

    a, b = two_folders
    init_audit_key(a)
    [good] = add_trusted_ca(a, pem_cert(ca.cert))
    assert trusted_ca_certificates(a) == (ca.cert,)
    rogue = CA("Rogue Root")
    fp = ca_fingerprint(rogue.cert)
    with b.db.write() as conn:  # the attacker appends a well-formed entry and the row
        b.audit.append(conn, action=CA_ADD, subject=fp, details={"subject": "CN=Rogue Root", "reason": ""})
        conn.execute(trusted_cas.insert().values(fingerprint=fp, subject="CN=Rogue Root",
                                                 pem=pem_cert(rogue.cert).decode(),
                                                 added_at=datetime.now(UTC).isoformat(), added_by="x"))
    status = {c.fingerprint: c for c in list_trusted_cas(a)}
    assert status[good.fingerprint].trusted
    assert not status[fp].trusted and "not proven" in status[fp].why
    assert trusted_ca_certificates(a) == (ca.cert,)


def test_a_forged_add_entry_covered_by_a_later_checkpoint_is_not_trusted(two_folders: Any, ca: CA) -> None:
    # The next legitimate checkpoint signs the chain head and so covers the forged entry; only entries a
    # checkpoint's writer appended itself are vouched for.
    from bastion.audit.checkpoints import init_audit_key, write_checkpoint

    a, b = two_folders
    init_audit_key(a)
    rogue = CA("Rogue Root")
    fp = ca_fingerprint(rogue.cert)
    with b.db.write() as conn:
        b.audit.append(conn, action=CA_ADD, subject=fp, details={"subject": "CN=Rogue Root", "reason": ""})
        conn.execute(trusted_cas.insert().values(fingerprint=fp, subject="CN=Rogue Root",
                                                 pem=pem_cert(rogue.cert).decode(),
                                                 added_at=datetime.now(UTC).isoformat(), added_by="x"))
    [good] = add_trusted_ca(a, pem_cert(ca.cert))  # a legitimate add: its checkpoint covers the forged entry too
    assert write_checkpoint(a) is not None
    status = {c.fingerprint: c for c in list_trusted_cas(a)}
    assert status[good.fingerprint].trusted
    assert not status[fp].trusted and "vouches" in status[fp].why
    assert trusted_ca_certificates(a) == (ca.cert,)
    # a second folder with the audit public key copied in never trusts the forged entry either (here its artifact
    # store, where checkpoints live, is its own folder: it finds no checkpoint and fails closed)
    from bastion.audit.checkpoints import audit_key_paths

    pub_b = audit_key_paths(b.settings)[1]
    pub_b.parent.mkdir(parents=True, exist_ok=True)
    pub_b.write_bytes(audit_key_paths(a.settings)[1].read_bytes())
    assert rogue.cert not in trusted_ca_certificates(b)
    assert not {c.fingerprint: c for c in list_trusted_cas(b)}[fp].trusted


@pytest.mark.parametrize(("pem", "error"), [
    (b"not a pem", "holds no PEM certificates"),
    ("leaf", "is not a CA certificate"),
])
def test_bad_input_is_refused(two_folders: Any, ca: CA, p256: Any, pem: Any, error: str) -> None:
    a, _ = two_folders
    if pem == "leaf":
        pem = pem_cert(ca.issue(p256))
    with pytest.raises(ConfigError, match=error):
        add_trusted_ca(a, pem)
    assert list_trusted_cas(a) == [] and not a.audit.entries(action=CA_ADD)


def test_remove_needs_one_match(two_folders: Any) -> None:
    a, _ = two_folders
    with pytest.raises(KeyManagementError, match="No trusted CA"):
        remove_trusted_ca(a, "sha256:00", reason="x")


def test_cli_add_list_remove(two_folders: Any, ca: CA, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    from typer.testing import CliRunner

    from bastion.cli.main import app

    a, b = two_folders
    pem = tmp_path / "root.pem"
    pem.write_bytes(pem_cert(ca.cert))
    monkeypatch.chdir(a.root)
    r = CliRunner().invoke(app, ["keys", "signing", "ca", "add", str(pem), "--reason", "release CA", "--json"])
    assert r.exit_code == 0, r.output
    fp = json.loads(r.stdout)[0]["fingerprint"]
    monkeypatch.chdir(b.root)
    r = CliRunner().invoke(app, ["keys", "signing", "ca", "list", "--json"])
    assert [(c["fingerprint"], c["trusted"]) for c in json.loads(r.stdout)] == [(fp, True)]
    r = CliRunner().invoke(app, ["keys", "signing", "ca", "remove", fp, "--reason", "rotated"])
    assert r.exit_code == 0 and "Removed trusted CA" in r.output
    r = CliRunner().invoke(app, ["keys", "signing", "ca", "add", str(tmp_path / "missing.pem")])
    assert r.exit_code == 2
    bad = tmp_path / "bad.pem"
    bad.write_text("nope")
    r = CliRunner().invoke(app, ["keys", "signing", "ca", "add", str(bad)])
    assert isinstance(r.exception, ConfigError) and r.exception.exit_code == 2  # main() maps it to exit 2
    assert "no PEM certificates" in str(r.exception)
