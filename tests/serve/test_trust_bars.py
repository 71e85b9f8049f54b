"""Issue 13's bars, each on a private copy of one signed, scanned, gated, promoted project with an audit key
(the serving tests' session sample project, so no second one is built):
edits made to the store behind Bastion's back are refused by the server and named by `audit verify`.
"""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bastion.errors import BastionError, VerificationError
from tests.cli_inprocess import run_cli


@pytest.fixture
def copy(sample_template: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A private copy of the serving tests' sample project (v1 promoted to production, v2 signed and gated),
    given an audit key the way `bastion keys init` does (its first checkpoint covers the whole chain)."""
    from bastion.audit.checkpoints import init_audit_key, write_checkpoint
    from bastion.project import open_project

    root = tmp_path / "copy"
    shutil.copytree(sample_template.root, root)
    monkeypatch.chdir(root)
    p = open_project(root)
    try:
        init_audit_key(p)
        p.audited("test.marker", "after-key", {})
        write_checkpoint(p)
    finally:
        p.close()
    yield root


def _sql(root: Path, *statements: str) -> None:
    con = sqlite3.connect(root / ".bastion" / "bastion.db")
    try:
        for s in statements:
            con.execute(s)
        con.commit()
    finally:
        con.close()


def _verify(root: Path) -> Any:
    from bastion.audit.verify import verify_project
    from bastion.project import open_project

    p = open_project(root)
    try:
        return verify_project(p)
    finally:
        p.close()


def _cli(*args: str) -> tuple[int, str]:
    code, out, err = run_cli(*args)
    return code, out + err


def test_the_untouched_copy_serves_and_verifies(copy: Path, sample_template: Any) -> None:
    from bastion.project import open_project
    from bastion.serve import load_trusted

    report = _verify(copy)
    assert report.ok, report.problems
    assert report.checkpoints.checkpoints >= 2
    p = open_project(copy)
    try:
        m = load_trusted(p, "sample@production")
        assert m.ref == sample_template.refs[0] and m.trust.checks["alias"].ok
    finally:
        p.close()
    code, out = _cli("audit", "verify")
    assert code == 0 and "signed checkpoint" in out


def test_truncation_with_the_head_file_deleted_is_found(copy: Path) -> None:
    con = sqlite3.connect(copy / ".bastion" / "bastion.db")
    (newest_signed,) = con.execute(
        "select max(json_extract(details_json, '$.seq')) from audit_log where action = 'audit.checkpoint'"
    ).fetchone()
    con.close()
    _sql(copy, f"delete from audit_log where seq >= {int(newest_signed)}")
    (copy / ".bastion" / "audit-head.log").unlink()
    report = _verify(copy)
    assert not report.ok
    assert f"..{int(newest_signed)} were deleted" in report.chain.problem
    code, out = _cli("audit", "verify")
    assert code == 1 and "signed checkpoint" in out and "deleted" in out


def test_an_alias_moved_in_the_database_alone_is_refused_by_serve(copy: Path, sample_template: Any) -> None:
    from bastion.project import open_project
    from bastion.serve import load_trusted

    _sql(copy, "update aliases set version = 2 where name = 'sample' and alias = 'production'")
    p = open_project(copy)
    try:
        assert p.get_model("sample@production").ref == sample_template.refs[1]  # the table says version 2 …
        with pytest.raises(VerificationError, match=r"alias: the alias table points sample@production at version 2"):
            load_trusted(p, "sample@production")  # … which is signed and gated, but was never promoted
        refused = p.audit.entries(action="serve.load.refused")
        assert refused and "alias table" in refused[0].details["reason"]
    finally:
        p.close()


def test_the_same_alias_move_is_found_by_audit_verify(copy: Path) -> None:
    _sql(copy, "update aliases set version = 2 where name = 'sample' and alias = 'production'")
    report = _verify(copy)
    assert report.chain.ok and not report.ok
    assert any("alias sample@production points at version 2 in the table" in m for m in report.mismatches)
    code, out = _cli("audit", "verify")
    assert code == 1 and "sample@production" in out


def test_a_trailing_newline_alias_is_refused(copy: Path) -> None:
    from bastion.project import open_project
    from bastion.serve import load_trusted

    code, out = _cli("model", "promote", "sample:2", "--alias", "production\n")
    assert code == 2 and "Invalid alias" in out
    p = open_project(copy)
    try:
        with pytest.raises(BastionError):
            load_trusted(p, "sample@production\n")
        assert p.get_model("sample@production").version == 1  # nothing moved
    finally:
        p.close()


def test_deleting_a_newer_failed_gate_does_not_serve_the_model_again(copy: Path, sample_template: Any) -> None:
    from bastion.gates.run import run_gate
    from bastion.project import open_project
    from bastion.serve import load_trusted

    p = open_project(copy)
    try:
        strict = {"version": 1, "name": "strict", "target": sample_template.target,
                  "checks": {"performance": {"thresholds": {"accuracy": 1.0}}}}
        hold = sample_template.frame.iloc[-200:]
        failed = run_gate(p, sample_template.refs[0], strict, hold, sample_template.target)
        assert not failed.passed
    finally:
        p.close()
    _sql(copy, "delete from attachments where id in (select id from attachments where doc_kind in "
               "('gate', 'attestation') order by id desc limit 2)")
    p = open_project(copy)
    try:
        with pytest.raises(VerificationError, match=r"newest audited gate run .* is missing from the store"):
            load_trusted(p, "sample@production")
    finally:
        p.close()
    report = _verify(copy)
    assert any("was audited but its row is gone" in m for m in report.mismatches)


def test_a_consistently_rewritten_chain_fails_its_signed_checkpoints(copy: Path) -> None:
    import json

    from bastion.audit.log import GENESIS, canonical, entry_hash

    con = sqlite3.connect(copy / ".bastion" / "bastion.db")
    rows = con.execute("select seq, ts, actor, action, subject, details_json from audit_log order by seq").fetchall()
    prev = GENESIS
    for seq, ts, actor, action, subject, details_json in rows:  # rewrite every entry as its admin could
        d = json.loads(details_json)
        if action == "model.promote":
            d["reason"] = "rewritten"
        details_json = canonical(d).decode()
        h = entry_hash(seq, ts, actor, action, subject, details_json, prev)
        con.execute("update audit_log set details_json = ?, prev_hash = ?, hash = ? where seq = ?",
                    (details_json, prev, h, seq))
        prev = h
    con.commit()
    con.close()
    (copy / ".bastion" / "audit-head.log").unlink()
    report = _verify(copy)
    assert not report.ok and "signed checkpoint" in report.chain.problem


def test_a_forged_or_missing_checkpoint_is_named(copy: Path) -> None:
    from bastion.audit.checkpoints import checkpoint_store, list_checkpoints
    from bastion.config import load_settings

    settings = load_settings(copy)
    cps, _ = list_checkpoints(settings)
    assert len(cps) >= 2
    store = checkpoint_store(settings)
    store.delete(cps[0].digest)  # an old one gone from the sequence
    report = _verify(copy)
    assert any(f"checkpoint {cps[0].number} of" in p and "missing" in p for p in report.checkpoints.problems)


def test_switching_the_database_gives_no_false_alarm(copy: Path, tmp_path: Path) -> None:
    from bastion.project import open_project

    other = tmp_path / "other.db"
    with open(copy / "bastion.toml", "a", encoding="utf-8") as f:
        f.write(f'database_url = "sqlite:///{other}"\n')
    p = open_project(copy)
    try:
        p.audited("project.switch", "db", {})
        assert p.audit.verify().ok
    finally:
        p.close()
    report = _verify(copy)
    assert report.ok, report.problems


def test_files_bastion_writes_are_private(copy: Path) -> None:
    from bastion.project import open_project

    p = open_project(copy)
    try:
        p.audited("test.mode", "x", {})
    finally:
        p.close()
    home = copy / ".bastion"
    for f in ("audit-head.log", "bastion.db", "keys/audit-ed25519.pem", "keys/audit-ed25519.pub"):
        assert (home / f).stat().st_mode & 0o077 == 0, f
    assert home.stat().st_mode & 0o077 == 0


def test_one_load_verifies_each_signature_and_attestation_once(copy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import bastion.gates.attestation as attestation
    import bastion.gates.signatures as signatures
    from bastion.project import open_project
    from bastion.serve import load_trusted

    calls = {"signature": 0, "attestation": 0, "materialize": 0}
    real_sig, real_att = signatures.verify_version, attestation.verify_attestation

    def sig(*a: Any, **k: Any) -> Any:
        calls["signature"] += 1
        return real_sig(*a, **k)

    def att(*a: Any, **k: Any) -> Any:
        calls["attestation"] += 1
        return real_att(*a, **k)

    monkeypatch.setattr(signatures, "verify_version", sig)
    monkeypatch.setattr(attestation, "verify_attestation", att)
    p = open_project(copy)
    real_mat = p.model_path

    def mat(*a: Any, **k: Any) -> Any:
        calls["materialize"] += 1
        return real_mat(*a, **k)

    monkeypatch.setattr(p, "model_path", mat)
    try:
        load_trusted(p, "sample@production")
    finally:
        p.close()
    # one signature check (its fresh verified copy also proves the digest), one attestation check, and
    # no separate digest pass: the artifact is hashed once to verify it (the load reads it once more)
    assert calls == {"signature": 1, "attestation": 1, "materialize": 1}


def test_a_witness_finds_the_tail_and_its_checkpoints_deleted_together(copy: Path, tmp_path: Path) -> None:
    from bastion.audit.checkpoints import checkpoint_store, list_checkpoints
    from bastion.audit.verify import verify_project
    from bastion.config import load_settings
    from bastion.project import open_project

    witness = tmp_path / "witness"
    code, _ = _cli("audit", "checkpoint", "--export", str(witness))
    assert code == 0 and (witness / "audit-key.pub").is_file()
    settings = load_settings(copy)
    cps, _ = list_checkpoints(settings)
    newest = max(cps, key=lambda c: c.number)
    _sql(copy, f"delete from audit_log where seq >= {cps[0].seq + 1}")  # DB admin
    for cp in cps[1:]:
        checkpoint_store(settings).delete(cp.digest)  # and store admin, together
    (copy / ".bastion" / "audit-head.log").unlink()
    p = open_project(copy)
    try:
        assert verify_project(p).ok  # what is left is consistent: only a witness can tell
        report = verify_project(p, witness=witness)
    finally:
        p.close()
    assert not report.ok and f"..{newest.seq} were deleted" in report.chain.problem


def test_verify_seals_the_head_and_checkpoint_makes_a_missing_key(copy: Path, sample_template: Any,
                                                                  tmp_path: Path) -> None:
    import json

    con = sqlite3.connect(copy / ".bastion" / "bastion.db")
    (before,) = con.execute("select max(seq) from audit_log").fetchone()
    con.close()
    code, _ = _cli("audit", "verify")
    assert code == 0
    _sql(copy, f"delete from audit_log where seq >= {before}")  # the entry sealed by that verify
    (copy / ".bastion" / "audit-head.log").unlink()
    code, out = _cli("audit", "verify")
    assert code == 1 and "deleted" in out
    legacy = tmp_path / "legacy"
    shutil.copytree(sample_template.root, legacy)  # made before audit keys existed
    import os

    os.chdir(legacy)
    code, out = _cli("audit", "checkpoint", "--json")
    assert code == 0 and json.loads(out[out.index("{"):])["newest"]["number"] >= 1
    assert (legacy / ".bastion" / "keys" / "audit-ed25519.pem").stat().st_mode & 0o777 == 0o600
