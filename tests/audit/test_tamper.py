"""Red-team attacks on the trust core, each on a private copy of one project made the way a user makes it (audit
key first, then signing key, models signed, gated, v1 promoted to production), in its own folder (so the chain
records that this folder keeps an audit head file).

Attackers: (a) write access to the metadata database only, (b) to the artifact store only, (c) to the project
folder without the signing key passphrase. Each attack is refused or named by `audit verify`, nothing stored is
corrupted, and the legitimate flow still works.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bastion.errors import VerificationError
from tests.cli_inprocess import run_cli

_ROOT = "proj"  # every copy lives at <tmp>/proj, the folder the chain registered (see _template)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Any]]:
    from bastion.audit.checkpoints import init_audit_key
    from bastion.project import init_project
    from bastion.serve._sample import build_sample_project

    base = tmp_path_factory.mktemp("tamper-template")
    root = base / _ROOT
    p = init_project(root)
    try:
        init_audit_key(p)  # `bastion keys init` first, as the docs say
    finally:
        p.close()
    sample = build_sample_project(root, versions=2, rows=300, n_features=4, categorical=False, protect_email=False)
    yield root, sample


@pytest.fixture
def proj(template: tuple[Path, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A private copy at the same path as the template's (the path the chain registered): the template is moved
    aside while the copy is in place, so a test sees the folder exactly as `init` left it."""
    root, _ = template
    aside = tmp_path / "template-aside"
    shutil.move(str(root), aside)
    shutil.copytree(aside, root)
    monkeypatch.chdir(root)
    try:
        yield root
    finally:
        shutil.rmtree(root)
        shutil.move(str(aside), root)


def _sql(root: Path, *statements: str) -> list[Any]:
    con = sqlite3.connect(root / ".bastion" / "bastion.db")
    try:
        out: list[Any] = []
        for s in statements:
            out = con.execute(s).fetchall()
        con.commit()
        return out
    finally:
        con.close()


def _open(root: Path) -> Any:
    from bastion.project import open_project

    return open_project(root)


def _verify(root: Path, **kw: Any) -> Any:
    from bastion.audit.verify import verify_project

    p = _open(root)
    try:
        return verify_project(p, **kw)
    finally:
        p.close()


def _cli(*args: str) -> tuple[int, str]:
    code, out, err = run_cli(*args)
    return code, out + err


def _serve(root: Path, ref: str = "sample@production") -> Any:
    from bastion.serve import load_trusted

    p = _open(root)
    try:
        return load_trusted(p, ref)
    finally:
        p.close()


def _forge_promote(root: Path, version: int) -> None:
    """(a) The database admin appends a well-formed promote entry (a correct hash chain: it is unkeyed) and moves
    the alias row, then any legitimate action writes the next checkpoint, which covers the forged entry."""
    from sqlalchemy import update

    from bastion.audit.checkpoints import write_checkpoint
    from bastion.store.schema import aliases

    p = _open(root)
    try:
        digest = p.get_model(f"sample:{version}").digest
        with p.db.write() as conn:  # no Project.transaction: no checkpoint of its own
            p.audit.append(conn, action="model.promote", subject=f"sample:{version}",
                           details={"alias": "production", "digest": digest, "reason": "forged"})
            conn.execute(update(aliases).where(aliases.c.name == "sample", aliases.c.alias == "production")
                         .values(version=version))
        p.audited("note.after", "x", {})
        assert write_checkpoint(p) is not None  # `bastion audit checkpoint`, or the next promote anywhere
    finally:
        p.close()


# ------------------------------------------------------------------------------------------- baseline


def test_the_untouched_project_serves_and_verifies(proj: Path) -> None:
    assert _serve(proj).ref == "sample:1"
    report = _verify(proj)
    assert report.ok, report.problems
    code, out = _cli("audit", "verify")
    assert code == 0 and "signed checkpoint" in out


# ------------------------------------------------------------- (a) database only: forged audit entries


def test_a_forged_promote_covered_by_a_later_checkpoint_is_refused_and_named(proj: Path) -> None:
    _forge_promote(proj, 2)
    with pytest.raises(VerificationError, match=r"alias: the alias event is not proven.*vouches"):
        _serve(proj)
    report = _verify(proj)
    assert report.chain.ok and not report.ok
    assert any("model.promote sample:2" in a and "not vouched" in a for a in report.anchors), report.problems
    code, out = _cli("audit", "verify")
    assert code == 1 and "not vouched" in out
    # the legitimate flow still works: a real promote of v2 (the operator) is vouched and served
    p = _open(proj)
    try:
        p.promote("sample:2", alias="production")
    finally:
        p.close()
    assert _serve(proj).ref == "sample:2"


def test_an_entry_checked_by_the_operator_can_be_vouched_for(proj: Path) -> None:
    # a promote made on a machine without the audit key is vouched for later, deliberately, with the key
    _forge_promote(proj, 2)
    (seq,) = _sql(proj, "select max(seq) from audit_log where action = 'model.promote'")[0]
    code, out = _cli("audit", "checkpoint", "--vouch", str(seq))
    assert code == 0, out
    assert _serve(proj).ref == "sample:2"
    assert _verify(proj).ok
    code, out = _cli("audit", "checkpoint", "--vouch", "999999")
    assert code == 2 and "no entry 999999" in out


def test_a_forged_gate_run_for_a_failed_version_is_refused(proj: Path) -> None:
    # v1's newest gate run is replaced by a forged entry naming another (v2's, valid) attestation digest
    from bastion.audit.checkpoints import write_checkpoint

    p = _open(proj)
    try:
        run = p.audit.newest(("gate.run",), subject="sample:1")
        assert run is not None
        with p.db.write() as conn:
            p.audit.append(conn, action="gate.run", subject="sample:1", details=dict(run.details))
        write_checkpoint(p)
    finally:
        p.close()
    with pytest.raises(VerificationError, match=r"gate: the gate run of sample:1 is not proven.*vouches"):
        _serve(proj)


def test_a_rollback_target_planted_in_the_alias_history_is_refused(proj: Path) -> None:
    from bastion.errors import RegistryError

    p = _open(proj)
    try:
        p.promote("sample:2", alias="production")  # legitimate history: v1, then v2
    finally:
        p.close()
    # (a) plants history rows so that the operator's next rollback goes where they say (here: stays on v2)
    _sql(proj, "insert into alias_history (kind, name, alias, version, active, at, by, reason) "
               "values ('model', 'sample', 'production', 2, 1, 'x', 'x', '')",
         "insert into alias_history (kind, name, alias, version, active, at, by, reason) "
         "values ('model', 'sample', 'production', 2, 1, 'x', 'x', '')")
    p = _open(proj)
    try:
        with pytest.raises(RegistryError, match=r"audited promotions and rollbacks say from sample:2 to sample:1"):
            p.rollback("sample", alias="production", reason="drift")
        assert p.get_model("sample@production").version == 2  # nothing moved
    finally:
        p.close()
    _sql(proj, "delete from alias_history where by = 'x'")
    p = _open(proj)
    try:
        assert p.rollback("sample", alias="production", reason="drift").version == 1  # the real one works
    finally:
        p.close()
    assert _serve(proj).ref == "sample:1"


def test_an_undeleted_version_stays_deleted(proj: Path) -> None:
    from bastion.trust import evaluate

    p = _open(proj)
    try:
        p.delete_model("sample:2", reason="leaked training data")
    finally:
        p.close()
    _sql(proj, "update models set deleted_at = null, deleted_by = null where name = 'sample' and version = 2")
    p = _open(proj)
    try:
        report = evaluate(p, "sample:2", "production", purpose="serve")
        assert not report.ok and "row says it is live" in report.checks["version"].detail
    finally:
        p.close()
    report = _verify(proj)
    assert any("sample:2 was deleted by audited entry" in m for m in report.mismatches), report.problems


def test_the_drift_reference_comes_from_the_audited_lineage(proj: Path) -> None:
    from bastion.errors import VerificationError as Refused
    from bastion.monitor.runner import reference_for_model

    p = _open(proj)
    try:
        _, frame, ds = reference_for_model(p, "sample:1")
        assert ds == "sample-train:1" and len(frame) > 0
        other = p.register_dataset(frame.iloc[:10], name="look-alike")
    finally:
        p.close()
    _sql(proj, f"update models set datasets_json = '[\"{other.ref}\"]' where name = 'sample' and version = 1")
    p = _open(proj)
    try:
        with pytest.raises(Refused, match=r"lineage of sample:1 in the database .* is not the one its registration"):
            reference_for_model(p, "sample:1")
    finally:
        p.close()
    assert any("lineage" in m for m in _verify(proj).mismatches)


# ------------------------------------------------------------------------ (a) the signing keyring rows


def _keyring(root: Path) -> dict[str, Any]:
    ((body,),) = _sql(root, "select body from shared_documents where name = 'signing-keyring'")
    return dict(json.loads(body))


def _set_keyring(root: Path, doc: dict[str, Any]) -> None:
    con = sqlite3.connect(root / ".bastion" / "bastion.db")
    try:
        con.execute("update shared_documents set body = ?, revision = revision + 1 where name = 'signing-keyring'",
                    (json.dumps(doc),))
        con.commit()
    finally:
        con.close()


def test_un_revoking_a_key_in_the_database_is_refused(proj: Path) -> None:
    from bastion.crypto.signing.keys import revoke_signing_key
    from bastion.gates.signatures import verify_version

    p = _open(proj)
    try:
        revoke_signing_key(p, "release", reason="laptop stolen")
        assert not verify_version(p, "sample:1").valid
    finally:
        p.close()
    doc = _keyring(proj)
    for k in doc["keys"]:  # (a) flips the row back to active
        k.update(status="active", revoked_at=None, revoked_reason=None)
    _set_keyring(proj, doc)
    p = _open(proj)
    try:
        status = verify_version(p, "sample:1")
        assert not status.valid and "laptop stolen" in status.reason
    finally:
        p.close()
    with pytest.raises(VerificationError, match="revoked"):
        _serve(proj)


def test_a_key_added_to_the_keyring_rows_is_not_trusted(proj: Path, tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization

    from bastion.crypto.signing import TrustStore, sign_model, verify_model
    from bastion.crypto.signing.keys import SigningKey, generate_private_key, public_key_fingerprint

    rogue = generate_private_key()
    pem = rogue.public_key().public_bytes(serialization.Encoding.PEM,
                                          serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    doc = _keyring(proj)
    fp = public_key_fingerprint(rogue.public_key())
    doc["keys"].append({**doc["keys"][0], "name": "rogue", "fingerprint": fp, "public_key": pem,
                        "key_file": None, "status": "active"})
    _set_keyring(proj, doc)
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "w.bin").write_bytes(b"\x00" * 64)
    bundle = sign_model(tmp_path / "m", SigningKey(name="rogue", private_key=rogue))
    p = _open(proj)
    try:
        trust = TrustStore.from_project(p)
        [k] = [k for k in trust.keys if k.name == "rogue"]
        assert k.status == "revoked" and "outside Bastion" in (k.revoked_reason or "")
        with pytest.raises(VerificationError, match="outside Bastion"):
            verify_model(tmp_path / "m", bundle, trust)
        # the legitimate key still verifies the legitimate signature
        from bastion.gates.signatures import verify_version

        assert verify_version(p, "sample:1").valid
    finally:
        p.close()


def test_a_public_key_swapped_under_its_fingerprint_is_refused(proj: Path) -> None:
    from cryptography.hazmat.primitives import serialization

    from bastion.crypto.signing import TrustStore
    from bastion.crypto.signing.keys import generate_private_key

    doc = _keyring(proj)
    doc["keys"][0]["public_key"] = generate_private_key().public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    _set_keyring(proj, doc)
    p = _open(proj)
    try:
        [k] = TrustStore.from_project(p).keys
        assert k.status == "revoked" and "not the" in (k.revoked_reason or "")
    finally:
        p.close()


# ------------------------------------------------------------------------------ (a) the API key rows


def _digest(key: str) -> str:
    import hashlib

    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


def test_api_key_rows_edited_in_the_database_are_refused(proj: Path) -> None:
    from sqlalchemy import insert, update

    from bastion.audit.checkpoints import write_checkpoint
    from bastion.errors import AuthError
    from bastion.serve.auth import ApiKeyStore, Authenticator, create_api_key, revoke_api_key
    from bastion.store.schema import api_keys

    p = _open(proj)
    try:
        auth = Authenticator(ApiKeyStore(p.db, recheck_s=0.0, project=p))
        predict = create_api_key(p, "app", ["predict"])
        gone = create_api_key(p, "old", ["admin"])
        victim = create_api_key(p, "victim", ["admin"])
        revoke_api_key(p, "old", reason="left the team")
        assert auth.authenticate(f"Bearer {predict.key}").roles == frozenset({"predict"})
        assert auth.authenticate(f"Bearer {victim.key}").allows("admin")
        rogue = "bst_0badc0de_" + "A" * 43
        with p.db.write() as conn:  # (a): widen, un-revoke, add a row with an entry, swap a digest
            conn.execute(update(api_keys).where(api_keys.c.id == predict.record.id)
                         .values(roles_json='["predict", "admin"]'))
            conn.execute(update(api_keys).where(api_keys.c.id == gone.record.id).values(revoked_at=None))
            conn.execute(insert(api_keys).values(id="0badc0de", seq=99, name="rogue", roles_json='["admin"]',
                                                 digest=_digest(rogue), created_at="x", created_by="x"))
            p.audit.append(conn, action="keys.api.create", subject="api-key:0badc0de",
                           details={"name": "rogue", "roles": ["admin"], "digest": _digest(rogue)})
            conn.execute(update(api_keys).where(api_keys.c.id == victim.record.id)
                         .values(digest=_digest(f"bst_{victim.record.id}_" + "B" * 43)))
        p.audited("note.after", "x", {})
        write_checkpoint(p)  # a later legitimate checkpoint covers the forged entry, but does not vouch for it
        assert auth.authenticate(f"Bearer {predict.key}").roles == frozenset({"predict"})  # narrowed back
        for key in (gone.key, rogue, f"bst_{victim.record.id}_" + "B" * 43):
            with pytest.raises(AuthError):
                auth.authenticate(f"Bearer {key}")
        assert auth.authenticate(f"Bearer {create_api_key(p, 'new', ['explain']).key}").allows("explain")
    finally:
        p.close()


def test_dashboard_user_rows_edited_in_the_database_cannot_log_in(proj: Path) -> None:
    from argon2 import PasswordHasher
    from sqlalchemy import insert, update

    from bastion.errors import AuthError
    from bastion.store.schema import ui_users
    from bastion.ui.users import UserStore

    p = _open(proj)
    try:
        users = UserStore(p)
        users.add("vic", "viewer-password", role="viewer")
        users.add("boss", "boss-password!", role="admin")
        assert users.authenticate("vic", "viewer-password").role == "viewer"
        mine = PasswordHasher().hash("attacker-password")
        with p.db.write() as conn:  # (a): raise a role, swap in a password of one's own, add a user
            conn.execute(update(ui_users).where(ui_users.c.name == "vic").values(role="admin"))
            conn.execute(update(ui_users).where(ui_users.c.name == "boss").values(pw_hash=mine))
            conn.execute(insert(ui_users).values(name="eve", role="admin", pw_hash=mine, created_at="x",
                                                 created_by="x", changed_at="x"))
        for name, password in (("vic", "viewer-password"), ("boss", "attacker-password"),
                               ("eve", "attacker-password")):
            with pytest.raises(AuthError, match="Unknown user or wrong password"):
                users.authenticate(name, password)
        assert "role" in users.unproven("vic", users._row("vic") or {})
        users.add("vic", "viewer-password", role="viewer", replace=True)  # the admin repairs it: audited
        assert users.authenticate("vic", "viewer-password").role == "viewer"
    finally:
        p.close()


# ------------------------------------------------------------ (c) the project folder: the anchoring files


def test_deleting_the_audit_public_key_does_not_turn_the_checks_off(proj: Path) -> None:
    _forge_promote(proj, 2)
    (proj / ".bastion" / "keys" / "audit-ed25519.pub").unlink()
    with pytest.raises(VerificationError, match=r"audit public key .* is missing, but the audit chain records"):
        _serve(proj)
    report = _verify(proj)
    assert not report.ok and any("is missing" in a for a in report.anchors)
    code, out = _cli("audit", "verify")
    assert code == 1 and "audit public key" in out
    # and the missing key is not silently replaced by a new one
    (proj / ".bastion" / "keys" / "audit-ed25519.pem").unlink()
    code, out = _cli("audit", "checkpoint")
    assert code == 2 and "not made while the chain names one" in out
    assert not (proj / ".bastion" / "keys" / "audit-ed25519.pem").exists()


def test_replacing_the_audit_key_files_is_refused_and_a_witness_names_it(proj: Path, tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    witness = tmp_path / "witness"
    code, _ = _cli("audit", "checkpoint", "--export", str(witness))
    assert code == 0
    keys = proj / ".bastion" / "keys"
    new = Ed25519PrivateKey.generate()
    (keys / "audit-ed25519.pem").write_bytes(new.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    (keys / "audit-ed25519.pub").write_bytes(new.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    _forge_promote(proj, 2)  # the forger now signs checkpoints (and vouches) with a key of their own
    with pytest.raises(VerificationError, match="the key file was replaced"):
        _serve(proj)
    report = _verify(proj, witness=witness)
    assert not report.ok
    assert any("the key file was replaced" in a for a in report.anchors)
    assert any("audit key was replaced" in w for w in report.witness)


def test_deleting_the_head_file_with_the_unsealed_tail_is_found(proj: Path) -> None:
    p = _open(proj)
    try:
        p.audited("model.note", "sample:1", {"n": 1})  # entries after the newest checkpoint (unsealed)
        p.audited("model.note", "sample:1", {"n": 2})
    finally:
        p.close()
    (newest,) = _sql(proj, "select max(seq) from audit_log where action = 'audit.checkpoint'")[0]
    _sql(proj, f"delete from audit_log where seq > {newest}")  # (a) drops the unsealed tail
    head = proj / ".bastion" / "audit-head.log"
    head.unlink()  # (c) and the file that anchors it
    report = _verify(proj)
    assert not report.ok and any("head file" in a and "missing" in a for a in report.anchors), report.problems
    code, out = _cli("audit", "verify")
    assert code == 1 and "audit head file" in out
    # the next write makes the file again: still named, since the file now starts later than the chain says
    p = _open(proj)
    try:
        p.audited("model.note", "sample:1", {"n": 3})
    finally:
        p.close()
    assert head.is_file()
    report = _verify(proj)
    assert any("was deleted and made again" in a for a in report.anchors), report.problems
    # re-running init does not hide it either
    code, _ = _cli("init")
    assert code == 0 and not _verify(proj).ok
    # the operator checks and resets it, with a reason (audited); then it verifies
    code, out = _cli("audit", "verify", "--reset-head")
    assert code == 2 and "--reason" in out
    code, out = _cli("audit", "verify", "--reset-head", "--reason", "checked against the witness")
    assert code == 0, out
    p = _open(proj)
    try:
        [reset] = p.audit.entries(action="audit.head.reset")
        assert reset.details["reason"] == "checked against the witness"
    finally:
        p.close()


def test_expect_head_finds_a_full_rollback_of_database_store_and_folder(proj: Path, tmp_path: Path) -> None:
    """Everyone-at-once (database, store and folder restored to an older state together) is consistent: only a
    head kept outside (a ticket, another machine) tells. `audit verify --json` gives it."""
    from bastion.audit.checkpoints import checkpoint_store, list_checkpoints
    from bastion.config import load_settings

    snapshot = tmp_path / "snapshot"
    shutil.copytree(proj / ".bastion", snapshot)  # the older state
    settings = load_settings(proj)
    before = {cp.digest for cp in list_checkpoints(settings)[0]}
    p = _open(proj)
    try:
        p.promote("sample:2", alias="production")
    finally:
        p.close()
    code, out = _cli("audit", "verify", "--json")
    assert code == 0
    doc = json.loads(out[out.index("{"):])
    noted = f"{doc['entries']}:{doc['head_hash']}"
    # roll everything back: the database and head file from the snapshot, the newer checkpoints deleted
    for cp in list_checkpoints(settings)[0]:
        if cp.digest not in before:
            checkpoint_store(settings).delete(cp.digest)
    for name in ("bastion.db", "bastion.db-wal", "bastion.db-shm", "audit-head.log"):
        (proj / ".bastion" / name).unlink(missing_ok=True)
        if (snapshot / name).exists():
            shutil.copy2(snapshot / name, proj / ".bastion" / name)
    assert _verify(proj).ok  # consistent: nothing inside can tell
    report = _verify(proj, expect_head=noted)
    assert not report.ok and any("expected head" in a for a in report.anchors)
    code, out = _cli("audit", "verify", "--expect-head", noted)
    assert code == 1 and "expected head" in out
    code, out = _cli("audit", "verify", "--expect-head", "12:nothex")
    assert code == 2 and "SEQ:HASH" in out


# ------------------------------------------------------------------------------------ (b) store only


def test_swapping_artifacts_between_versions_is_refused(proj: Path) -> None:
    from bastion.config import load_settings

    p = _open(proj)
    try:
        d1, d2 = p.get_model("sample:1").digest, p.get_model("sample:2").digest
    finally:
        p.close()
    store = Path(load_settings(proj).artifacts)
    h1, h2 = d1.split(":")[1], d2.split(":")[1]
    f1, f2 = store / "sha256" / h1[:2] / h1[2:], store / "sha256" / h2[:2] / h2[2:]
    os.chmod(f1, 0o600)
    f1.write_bytes(f2.read_bytes())  # v2's bytes under v1's name
    with pytest.raises(VerificationError, match=r"signature|digest"):
        _serve(proj)


# ------------------------------------------------------------------------------- one on PostgreSQL


def test_a_forged_promote_on_postgres_is_refused(tmp_path: Path, pg_url: str) -> None:
    # the same attack on the shared PostgreSQL of a team (the alias evidence only: no signing or gate needed)
    from sklearn.linear_model import LogisticRegression
    from sqlalchemy import update

    from bastion.audit.checkpoints import init_audit_key, write_checkpoint
    from bastion.project import init_project
    from bastion.store.schema import aliases
    from bastion.trust import evaluate

    p = init_project(tmp_path / "pg", database_url=pg_url)
    try:
        init_audit_key(p)
        model = LogisticRegression().fit([[0.0], [1.0]], [0, 1])
        v1, v2 = (p.log_model(model, name="m") for _ in range(2))
        p.promote(v1.ref, alias="production")

        def alias_ok(ref: str) -> tuple[bool, str]:
            ev = evaluate(p, ref, "production", None, purpose="check", requires=["alias"]).checks["alias"]
            return ev.ok, ev.detail

        assert alias_ok(v1.ref)[0]
        with p.db.write() as conn:
            p.audit.append(conn, action="model.promote", subject=v2.ref,
                           details={"alias": "production", "digest": v2.digest})
            conn.execute(update(aliases).where(aliases.c.name == "m").values(version=v2.version))
        p.audited("note.after", "x", {})
        write_checkpoint(p)
        ok, why = alias_ok(v2.ref)
        assert not ok and "vouches" in why
    finally:
        p.close()
    assert not _verify(tmp_path / "pg").ok


_H = "ab" * 32


@pytest.mark.parametrize(("text", "want"), [
    (f"12:{_H}", (12, _H)),
    (_H, (None, _H)),
    (f" 7:{_H.upper()} ", (7, _H)),
    ("12:" + "ab" * 31, None),            # too short
    (f"12:{_H}\n" + "x", None),           # a second line
    (f"-1:{_H}", None),                   # not a sequence number
    (f"x:{_H}", None),
    (f"12:{_H}zz", None),
    ("", None),
])
def test_expect_head_parsing(text: str, want: tuple[int | None, str] | None) -> None:
    from bastion.audit.verify import parse_expected_head
    from bastion.errors import ConfigError

    if want is None:
        with pytest.raises(ConfigError, match="SEQ:HASH"):
            parse_expected_head(text)
    else:
        assert parse_expected_head(text) == want


def test_a_second_folder_gets_no_second_audit_key(two_folders: Any) -> None:
    from bastion.audit.checkpoints import audit_key_paths, init_audit_key
    from bastion.data.protect import init_project_keys
    from bastion.errors import KeyManagementError

    a, b = two_folders
    fp = init_audit_key(a)
    with pytest.raises(KeyManagementError, match="not made while the chain names one"):
        init_audit_key(b)
    init_project_keys(b, passphrase=None)  # `bastion keys init` in folder B: its master key, no audit key
    assert not audit_key_paths(b.settings)[0].exists()
    assert [e.subject for e in b.audit.entries(action="keys.audit.init")] == [fp]
